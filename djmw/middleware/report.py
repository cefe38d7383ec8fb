"""ReportErrors: hand every failed attempt to an error reporter (Sentry, Rollbar, a log)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from djmw.chain import CallNext
from djmw.errors import ConfigurationError
from djmw.job import Job
from djmw.logs import LOGGER_NAME, job_prefix
from djmw.outcome import Failed, Outcome, Rescheduled, error_class_name

#: ``reporter(error, tags)``: tags are ``job_name``, ``job_id``, ``queue``, ``attempts``
#: and ``outcome`` (``rescheduled`` or ``failed``), all strings.
Reporter = Callable[[BaseException, Mapping[str, str]], None]

logger = logging.getLogger(LOGGER_NAME)


def _callable(instance: Any, attribute: Any, value: Any) -> None:
    if not callable(value):
        msg = f"ReportErrors: reporter must be a callable (error, tags) -> None, got {value!r}."
        raise ConfigurationError(msg)


@attrs.frozen(kw_only=True)
class ReportErrors:
    """Call ``reporter(error, tags)`` once for each attempt that did not succeed.

    A rescheduled attempt and a permanent failure are each one call, with the error the
    attempt raised (for used-up retries, the last attempt's error; an undecodable
    handler's ``PayloadDecodeError`` too). Tags: ``job_name``, ``job_id``, ``queue``
    (``""`` for NULL), ``attempts`` (the row's attempts after this one) and ``outcome``.
    A reporter that raises is logged and ignored: reporting never changes a job's outcome.

    Where: right inside DecodeYAML, outside MarkFailed, like LogOutcome: it must see the
    final outcome. ``recipes/sentry_on_failure.py`` builds a Sentry reporter on it.

    Args:
        reporter: the callable to hand errors to.
        report_exhausted_only: report only failures that end the job (``Failed``), not
            every rescheduled attempt.
    """

    reporter: Reporter = attrs.field(validator=_callable)
    report_exhausted_only: bool = False

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain; report a rescheduled or failed outcome."""
        outcome = call_next(job)
        if isinstance(outcome, Failed) or (
            isinstance(outcome, Rescheduled) and not self.report_exhausted_only
        ):
            tags = {
                "job_name": job.display_name,
                "job_id": str(job.id),
                "queue": job.queue or "",
                "attempts": str(outcome.attempts),
                "outcome": "failed" if isinstance(outcome, Failed) else "rescheduled",
            }
            try:
                self.reporter(outcome.error, tags)
            except Exception as exc:  # a broken reporter must not cost the job its outcome
                logger.warning(
                    "%s error reporter failed with %s: %s",
                    job_prefix(job),
                    error_class_name(exc),
                    exc,
                )
        return outcome
