"""``--log-format json``: one JSON object per log line, with the job's fields.

delayed_job's text lines stay the default; this formatter is for log stores that index
fields. Job lines (from LogOutcome) carry the job's fields; worker lines carry the
worker's name; a handler's own lines, logged from the job's thread, carry the worker too.
"""

from __future__ import annotations

import json
import logging
import time

#: The fields every line has, then the job fields LogOutcome adds, in output order.
FIELDS = (
    "time",
    "level",
    "logger",
    "worker",
    "job_id",
    "job_name",
    "queue",
    "attempts",
    "duration_s",
    "queue_time_s",
    "outcome",
    "error_class",
    "message",
)
_JOB_FIELDS = FIELDS[4:12]
_THREAD_PREFIX = "djmw "
_string = json.encoder.encode_basestring  # the C encoder of one JSON string


def _json(value: object) -> str:
    # The values of a log line are str, int, float, bool or None: written directly, which
    # costs a third of a JSONEncoder pass over a dict; anything else becomes its str.
    if isinstance(value, str):
        return _string(value)
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int or (kind is float and value == value and value not in (_INF, -_INF)):  # noqa: PLR0124
        return repr(value)
    return _string(str(value))


_INF = float("inf")


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON.

    Fields: ``time`` (UTC, ISO 8601 with milliseconds and ``Z``), ``level`` (lower
    case), ``logger``, ``worker``, ``message``; on job lines ``job_id``, ``job_name``,
    ``queue``, ``attempts`` (prior failed attempts); on the line after a run also
    ``duration_s``, ``queue_time_s``, ``outcome`` (``succeeded``, ``rescheduled``,
    ``failed``) and ``error_class``; ``exception`` when the record has a traceback.
    A field with no value is null; a value JSON cannot hold is written as its ``str``.
    """

    _second: int = -1
    _prefix: str = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime per second of log lines
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one JSON line (no newline at the end)."""
        parts = [
            f'{{"time": "{self._time(record.created)}", "level": "{record.levelname.lower()}", '
            f'"logger": {_string(record.name)}, "worker": {_json(_worker(record))}'
        ]
        fields = record.__dict__
        for key in _JOB_FIELDS:
            if key in fields:
                parts.append(f'"{key}": {_json(fields[key])}')
        parts.append(f'"message": {_string(record.getMessage())}')
        if record.exc_info:
            parts.append(f'"exception": {_string(self.formatException(record.exc_info))}')
        return ", ".join(parts) + "}"


def _worker(record: logging.LogRecord) -> object:
    worker = record.__dict__.get("worker")
    if worker is not None:
        return worker
    thread = record.threadName or ""
    return thread[len(_THREAD_PREFIX) :] if thread.startswith(_THREAD_PREFIX) else None


def use_json_logs(logger: logging.Logger) -> None:
    """Switch every handler of ``logger`` to JsonFormatter."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
