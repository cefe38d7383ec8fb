"""Logging names and helpers shared by the worker, the middlewares and the command line.

delayed_job writes every line under ``[Worker(<name>)]``; the helpers here build those
prefixes, so that the worker, LogOutcome and the supervisor say the same thing.
This module imports nothing from djmw but ``errors`` and ``job``: any layer may use it.
"""

from __future__ import annotations

import logging

from djmw.errors import ConfigurationError
from djmw.job import Job

#: The logger djmw writes job and worker lines to.
LOGGER_NAME = "djmw"


def as_logger(value: object) -> logging.Logger:
    """Accept a Logger or a logger name (as config files give it)."""
    if isinstance(value, logging.Logger):
        return value
    if isinstance(value, str):
        return logging.getLogger(value)
    msg = f"logger must be a logging.Logger or a logger name, got {value!r}."
    raise ConfigurationError(msg)


def job_prefix(job: Job) -> str:
    """Return ``[Worker(<name>)] Job <name> (id=<id>)[ (queue=<q>)]`` as delayed_job's job_say."""
    queue = f" (queue={job.queue})" if job.queue is not None else ""
    return f"[Worker({job.locked_by})] Job {job.display_name} (id={job.id}){queue}"


def worker_prefix(worker_name: str) -> str:
    """Return ``[Worker(<name>)]``, the start of every worker line."""
    return f"[Worker({worker_name})]"
