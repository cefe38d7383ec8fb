"""LogOutcome: delayed_job's log lines for each job, through the standard logging module."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import attrs

from djmw.chain import CallNext
from djmw.errors import PayloadDecodeError, error_message
from djmw.job import Job
from djmw.logs import LOGGER_NAME, as_logger, job_prefix
from djmw.outcome import Failed, Outcome, Rescheduled, Succeeded, error_class_name


def _one_line(error: BaseException) -> str:
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
    <message>`` (error). Each record carries ``job_id``, ``job_name``, ``queue`` and
    ``worker`` as extra attributes for structured handlers.

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
        extra = {
            "job_id": job.id,
            "job_name": job.name,
            "queue": job.queue,
            "worker": job.locked_by,
        }
        prefix = job_prefix(job)
        self._say(logging.INFO, "%s RUNNING", prefix, extra=extra)
        started = time.monotonic()
        outcome = call_next(job)
        match outcome:
            case Succeeded():
                elapsed = time.monotonic() - started
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
