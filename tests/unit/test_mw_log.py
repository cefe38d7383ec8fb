"""LogOutcome: delayed_job's log lines, verbatim apart from names and numbers."""

from __future__ import annotations

import logging

import pytest

from djmw.errors import PayloadDecodeError
from djmw.middleware import LogOutcome
from djmw.outcome import Failed, Rescheduled, Succeeded
from djmw.testing import ManualClock, make_job, returning

PREFIX = "[Worker(host:w pid:1)] Job NewsletterJob (id=7)"


@pytest.fixture
def job():  # type: ignore[no-untyped-def]
    return make_job(id=7, name="NewsletterJob", locked_by="host:w pid:1", attempts=2)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_running_and_completed(job, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Success logs RUNNING then COMPLETED after <seconds with 4 decimals>."""
    caplog.set_level(logging.INFO, "djmw")
    LogOutcome()(job, returning(Succeeded()))
    running, completed = lines(caplog)
    assert running == f"{PREFIX} RUNNING"
    assert completed.startswith(f"{PREFIX} COMPLETED after 0.0")
    assert len(completed.rsplit(" ", 1)[1].split(".")[1]) == 4


def test_queue_is_named_when_set(caplog: pytest.LogCaptureFixture) -> None:
    """A job with a queue logs ' (queue=<q>)' after the id."""
    caplog.set_level(logging.INFO, "djmw")
    LogOutcome()(make_job(id=1, name="J", locked_by="w", queue="mail"), returning())
    assert lines(caplog)[0] == "[Worker(w)] Job J (id=1) (queue=mail) RUNNING"


def test_failure_with_retry(job, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """A rescheduled job logs FAILED (<prior attempts> prior attempts) with <Class>: <msg>."""
    caplog.set_level(logging.INFO, "djmw")
    outcome = Rescheduled(run_at=ManualClock()(), attempts=3, error=ArgumentError("boom"))
    LogOutcome()(job, returning(outcome))
    assert lines(caplog)[-1] == f"{PREFIX} FAILED (2 prior attempts) with ArgumentError: boom"


def test_exhausted(job, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Used-up retries log the FAILED line, then FAILED permanently because of n failures."""
    caplog.set_level(logging.INFO, "djmw")
    LogOutcome()(job, returning(Failed(attempts=3, error=ArgumentError("boom"), exhausted=True)))
    assert lines(caplog)[-2:] == [
        f"{PREFIX} FAILED (2 prior attempts) with ArgumentError: boom",
        f"{PREFIX} FAILED permanently because of 3 consecutive failures",
    ]


def test_deserialization(job, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """An undecodable handler logs delayed_job's DeserializationError line."""
    caplog.set_level(logging.INFO, "djmw")
    error = PayloadDecodeError("Job failed to load: bad")
    LogOutcome()(job, returning(Failed(attempts=2, error=error)))
    assert lines(caplog)[-1] == (
        f"{PREFIX} FAILED permanently with Delayed::DeserializationError: Job failed to load: bad"
    )


class ArgumentError(Exception):
    """Stands in for Ruby's ArgumentError so the log line reads the same."""
