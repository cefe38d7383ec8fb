"""LogOutcome: delayed_job's log lines for each job, through the standard logging module."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import attrs

from djmw._clock import seconds_since
from djmw.chain import CallNext
from djmw.errors import JobAborted, PayloadDecodeError, error_message
from djmw.job import Job
from djmw.logs import LOGGER_NAME, as_logger, job_prefix
from djmw.outcome import Failed, Outcome, Rescheduled, Succeeded, error_class_name

_OUTCOME_NAMES = {Succeeded: "succeeded", Rescheduled: "rescheduled", Failed: "failed"}


def _one_line(error: BaseException) -> str:
    if isinstance(error, JobAborted):  # already "SystemExit: 3"
        return error_message(error)
    return f"{error_class_name(error)}: {error_message(error)}"


@attrs.frozen(kw_only=True)
class LogOutcome:
    """Log RUNNING, ``COMPLETED after <s>``, and the FAILED lines, in delayed_job's words.

    Where: outside MarkFailed, ScheduleRetry and CountAttempts, so it sees the final
    Outcome; inside DecodeYAML, so it knows the job's name.

    Lines (after ``[Worker(<name>)] Job <name> (id=<id>)[ (queue=<q>)] ``):
    ``RUNNING`` and ``COMPLETED after %.4f`` (info); ``FAILED (<n> prior attempts) with
    <Class>: <message>``, ``FAILED permanently because of <n> consecutive failures``, and
    for undecodable handlers ``FAILED permanently with Delayed::DeserializationError:
    <message>`` (error). Each record carries ``job_id``, ``job_name``, ``queue``,
    ``worker`` and ``attempts`` (the row's prior failed attempts) as extra attributes for
    structured handlers (``--log-format json``); the lines after the run add
    ``duration_s``, ``queue_time_s`` (start of the run minus run_at), ``outcome``
    (``succeeded``, ``rescheduled``, ``failed``) and ``error_class``.

    Args:
        logger: where to log; default the ``djmw`` logger.

    Note:
        The timestamp prefix delayed_job writes is the formatter's job; ``djmw.cli`` sets
        ``%(asctime)s: %(message)s`` with delayed_job's ``%FT%T%z`` time format
        (``djmw.logs.DelayedJobFormatter``). Records carry ``funcName="LogOutcome"`` and
        no line number: the caller lookup ``Logger.info`` does per record is skipped.
    """

    logger: logging.Logger = attrs.field(
        factory=lambda: logging.getLogger(LOGGER_NAME), converter=as_logger
    )

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Log around the inner chain."""
        extra: dict[str, object] = {
            "job_id": job.id,
            "job_name": job.name,
            "queue": job.queue,
            "worker": job.locked_by,
            "attempts": job.attempts,
        }
        prefix = job_prefix(job)
        self._say(logging.INFO, "%s RUNNING", prefix, extra=extra)
        started = time.monotonic()
        run_at = job.run_at
        queue_time = seconds_since(run_at, job.clock) if run_at is not None else None
        outcome = call_next(job)
        elapsed = time.monotonic() - started
        error = None if isinstance(outcome, Succeeded) else outcome.error
        extra = {
            **extra,
            "duration_s": elapsed,
            "queue_time_s": queue_time,
            "outcome": _OUTCOME_NAMES[type(outcome)],
            "error_class": error_class_name(error) if error is not None else None,
        }
        match outcome:
            case Succeeded():
                self._say(logging.INFO, "%s COMPLETED after %.4f", prefix, elapsed, extra=extra)
            case Rescheduled(error=error):
                self._say(
                    logging.ERROR,
                    "%s FAILED (%d prior attempts) with %s",
                    prefix,
                    job.attempts,
                    _one_line(error),
                    extra=extra,
                )
            case Failed(error=PayloadDecodeError() as error):
                self._say(
                    logging.ERROR,
                    "%s FAILED permanently with Delayed::DeserializationError: %s",
                    prefix,
                    error,
                    extra=extra,
                )
            case Failed(error=error, attempts=attempts, exhausted=exhausted):
                self._say(
                    logging.ERROR,
                    "%s FAILED (%d prior attempts) with %s",
                    prefix,
                    job.attempts,
                    _one_line(error),
                    extra=extra,
                )
                if exhausted:
                    self._say(
                        logging.ERROR,
                        "%s FAILED permanently because of %d consecutive failures",
                        prefix,
                        attempts,
                        extra=extra,
                    )
                else:
                    self._say(
                        logging.ERROR,
                        "%s FAILED permanently with %s",
                        prefix,
                        _one_line(error),
                        extra=extra,
                    )
        return outcome

    def _say(self, level: int, msg: str, *args: object, extra: Mapping[str, object]) -> None:
        # Logger.info() would look up the caller's frame for every record (findCaller);
        # these records name LogOutcome as their function instead, and cost a third less.
        logger = self.logger
        if logger.isEnabledFor(level):
            record = logger.makeRecord(
                logger.name, level, __file__, 0, msg, args, None, "LogOutcome", extra
            )
            logger.handle(record)
