"""Logging names and helpers shared by the worker, the middlewares and the command line.

delayed_job writes every line under ``[Worker(<name>)]``; the helpers here build those
prefixes, so that the worker, LogOutcome and the supervisor say the same thing.
This module imports nothing from djmw but ``errors``, ``job`` and ``ruby.payload``: any
layer may use it.
"""

from __future__ import annotations

import logging

from djmw.errors import ConfigurationError
from djmw.job import Job
from djmw.ruby.payload import handler_name

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
    """Return ``[Worker(<name>)] Job <name> (id=<id>)[ (queue=<q>)]`` as delayed_job's job_say.

    A job not decoded yet (the row as reserved, in the loop's own lines) is named from
    its handler, as the chain names it.
    """
    queue = f" (queue={job.queue})" if job.queue is not None else ""
    return f"[Worker({job.locked_by})] Job {job_label(job)} (id={job.id}){queue}"


def job_label(job: Job) -> str:
    """Return the job's display name: ``job.name`` once decoded, else from its handler."""
    return job.name if job.name is not None else handler_name(job.handler)


def worker_prefix(worker_name: str) -> str:
    """Return ``[Worker(<name>)]``, the start of every worker line."""
    return f"[Worker({worker_name})]"
