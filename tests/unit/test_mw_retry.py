"""ScheduleRetry: delayed_job's schedule, tenacity waits, max_attempts, per-job overrides."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from djmw.errors import AttemptFailed, ConfigurationError, PermanentJobError, RetriesExhausted
from djmw.middleware import ScheduleRetry, delayed_job_backoff, tenacity_backoff
from djmw.outcome import Rescheduled
from djmw.testing import ManualClock, make_job, raising

NOW = datetime(2026, 1, 1, 12, 0, 0)


def failed(attempts: int, error: BaseException | None = None) -> AttemptFailed:
    return AttemptFailed(attempts=attempts, error=error or ValueError("boom"), job_id=1)


def test_first_failure_runs_again_after_six_seconds() -> None:
    """After the first failure run_at = now + 1⁴ + 5 s, attempts 1, error kept."""
    error = ValueError("boom")
    job = make_job(clock=ManualClock(NOW))
    outcome = ScheduleRetry()(job, raising(failed(1, error)))
    assert outcome == Rescheduled(run_at=NOW + timedelta(seconds=6), attempts=1, error=error)


@given(st.integers(min_value=1, max_value=24))
def test_default_schedule_is_attempts_to_the_fourth_plus_five(attempts: int) -> None:
    """Every retry n < 25 is scheduled at now + n⁴ + 5 seconds, without jitter."""
    outcome = ScheduleRetry()(make_job(clock=ManualClock(NOW)), raising(failed(attempts)))
    assert isinstance(outcome, Rescheduled)
    assert outcome.run_at == NOW + timedelta(seconds=attempts**4 + 5)


def test_twenty_fifth_failure_gives_up() -> None:
    """With max_attempts 25 the 25th counted failure raises RetriesExhausted."""
    with pytest.raises(RetriesExhausted) as info:
        ScheduleRetry()(make_job(), raising(failed(25)))
    assert info.value.attempts == 25


def test_per_job_max_attempts_wins() -> None:
    """A job's max_attempts override replaces the middleware's."""
    with pytest.raises(RetriesExhausted):
        ScheduleRetry(max_attempts=25)(make_job(max_attempts=2), raising(failed(2)))


def test_tenacity_wait_is_computed_not_slept() -> None:
    """A tenacity wait gives the delay for the counted attempt number."""
    retry = ScheduleRetry(backoff=tenacity.wait_exponential(multiplier=10))
    outcome = retry(make_job(clock=ManualClock(NOW)), raising(failed(3)))
    assert isinstance(outcome, Rescheduled)
    assert outcome.run_at == NOW + timedelta(seconds=40)


@given(st.integers(min_value=1, max_value=50))
def test_tenacity_adapter_matches_the_formula_as_a_wait(attempts: int) -> None:
    """delayed_job's formula written as a tenacity wait gives the same delays."""

    def dj_wait(retry_state: tenacity.RetryCallState) -> float:
        return float(retry_state.attempt_number**4 + 5)

    assert tenacity_backoff(tenacity.wait_combine(dj_wait))(attempts) == delayed_job_backoff(
        attempts
    )


def test_job_reschedule_at_overrides_backoff() -> None:
    """A job's reschedule_at(now, attempts) decides run_at, as a Ruby payload's method does."""
    job = make_job(clock=ManualClock(NOW), reschedule_at=lambda now, n: now + timedelta(minutes=n))
    outcome = ScheduleRetry()(job, raising(failed(2)))
    assert isinstance(outcome, Rescheduled)
    assert outcome.run_at == NOW + timedelta(minutes=2)


def test_permanent_errors_pass_through() -> None:
    """A handler's PermanentJobError is not retried."""
    with pytest.raises(AttemptFailed):
        ScheduleRetry()(make_job(), raising(failed(1, PermanentJobError("no"))))


def test_uncounted_failure_keeps_attempts() -> None:
    """Without CountAttempts inside, a failure is rescheduled with attempts unchanged."""
    outcome = ScheduleRetry()(
        make_job(attempts=2, clock=ManualClock(NOW)), raising(ValueError("x"))
    )
    assert isinstance(outcome, Rescheduled)
    assert outcome.attempts == 2


@pytest.mark.parametrize("bad", [0, -1, "3", True])
def test_bad_max_attempts_is_a_configuration_error(bad: object) -> None:
    """max_attempts must be an integer >= 1; the message names the field."""
    with pytest.raises(ConfigurationError, match="max_attempts"):
        ScheduleRetry(max_attempts=bad)  # type: ignore[arg-type]


def test_bad_backoff_is_a_configuration_error() -> None:
    """A backoff that is neither a tenacity wait nor callable fails at construction."""
    with pytest.raises(ConfigurationError, match="backoff"):
        ScheduleRetry(backoff=5)  # type: ignore[arg-type]
