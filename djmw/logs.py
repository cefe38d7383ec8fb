"""Logging names and helpers shared by the worker, the middlewares and the command line.

delayed_job writes every line under ``[Worker(<name>)]``; the helpers here build those
prefixes, so that the worker, LogOutcome and the supervisor say the same thing.
This module imports nothing from djmw but ``errors``, ``job`` and ``ruby.payload``: any
layer may use it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TextIO

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


#: delayed_job's line: ``<time>: <message>``, the time as ``%FT%T%z`` in UTC.
LOG_FORMAT = "%(asctime)s: %(message)s"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


class DelayedJobFormatter(logging.Formatter):
    """Format records as delayed_job writes its log: ``2026-11-28T12:00:00+0000: <message>``.

    The time is UTC with whole seconds, so its text is built once per second, not once
    per record (two records per job on a busy worker).
    """

    def __init__(self, fmt: str = LOG_FORMAT, datefmt: str = TIME_FORMAT) -> None:
        super().__init__(fmt, datefmt)
        self._second = -1
        self._text = ""

    def format(self, record: logging.LogRecord) -> str:
        """Return ``<time>: <message>``; other formats, tracebacks and stacks go the
        standard way (``logging.Formatter.format``)."""
        if (
            self._fmt != LOG_FORMAT
            or record.exc_info
            or record.exc_text
            or record.stack_info
            or type(self).formatMessage is not logging.Formatter.formatMessage
        ):
            return super().format(record)
        # Two records a job: this skips the generic path's format-string scans.
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        return f"{record.asctime}: {record.message}"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Return the record's time in UTC as ``datefmt`` (default ``%FT%T%z``)."""
        if datefmt is not None and datefmt != self.datefmt:
            return time.strftime(datefmt, time.gmtime(record.created))
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.datefmt or TIME_FORMAT, time.gmtime(second))
            self._second = second
        return self._text


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that flushes in the background instead of after every record.

    ``logging.StreamHandler`` flushes the stream after each record: a system call per
    log line, two per job. This handler writes each line to the stream's buffer and
    flushes it from a daemon thread at most ``flush_interval`` seconds later; a record
    at WARNING or above flushes at once, with everything before it. Lines keep their
    order. At exit ``logging.shutdown`` flushes what is left.

    Args:
        stream: where lines go (default ``sys.stderr``, as StreamHandler).
        flush_interval: the longest a line waits in the buffer, in seconds; 0 flushes
            every record, as StreamHandler does.

    Limits: a process killed with SIGKILL loses the lines of its last ``flush_interval``.
    A process that forks should flush the stream first (djmw's ``process`` timeout mode
    does), or the child inherits the buffered lines.
    """

    def __init__(self, stream: TextIO | None = None, *, flush_interval: float = 0.2) -> None:
        super().__init__(stream)
        self.flush_interval = flush_interval
        self._pending = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False

    def emit(self, record: logging.LogRecord) -> None:
        """Write the formatted record; flush now (WARNING and above) or soon."""
        try:
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or self.flush_interval <= 0:
            self.flush()
        elif not self._pending.is_set():
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_soon, name="djmw log flusher", daemon=True
                )
                self._flusher.start()
            self._pending.set()

    def close(self) -> None:
        """Flush what is buffered and stop the background flushes."""
        self._closed = True
        self._pending.set()  # wake the flusher so that it ends
        with contextlib.suppress(ValueError):  # the stream may be closed already
            self.flush()
        super().close()

    def _flush_soon(self) -> None:
        while not self._closed:
            self._pending.wait()
            time.sleep(self.flush_interval)
            self._pending.clear()
            with contextlib.suppress(ValueError):  # the stream was closed meanwhile
                self.flush()
