"""ScheduleRetry: a failed attempt with retries left becomes Rescheduled at now + backoff."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import attrs
import tenacity
from tenacity.wait import wait_base

from djmw.chain import CallNext
from djmw.errors import AttemptFailed, ConfigurationError, PermanentJobError, RetriesExhausted
from djmw.job import Job
from djmw.outcome import Outcome, Rescheduled
from djmw.validation import positive_int

#: A backoff: attempts (after the increment) -> delay. Seconds or a timedelta.
Backoff = Callable[[int], "float | timedelta"]


def delayed_job_backoff(attempts: int) -> float:
    """Return delayed_job's delay after the n-th failure: attempts⁴ + 5 seconds."""
    return float(attempts**4 + 5)


def tenacity_backoff(wait: wait_base) -> Backoff:
    """Adapt any tenacity wait strategy to a Backoff; the wait is computed, never slept.

    ``attempt_number`` is set to the job's attempts after the increment (1 after the first
    failure), which is how tenacity numbers the wait after the n-th failed call.

    Note:
        Only stateless waits are supported: the delay must depend on the attempt number
        alone (random jitter is fine).
    """

    def backoff(attempts: int) -> float:
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = attempts
        return float(wait(state))

    return backoff


def _as_backoff(value: object) -> Backoff:
    if isinstance(value, wait_base):
        return tenacity_backoff(value)
    if callable(value):
        return value
    msg = (
        f"ScheduleRetry: backoff must be a tenacity wait or a callable attempts -> seconds, "
        f"got {value!r}."
    )
    raise ConfigurationError(msg)


@attrs.frozen(kw_only=True)
class ScheduleRetry:
    """Reschedule a failed attempt at now + backoff(attempts), or give up.

    Where: outside CountAttempts (it reads the counted attempts) and inside MarkFailed
    (which turns RetriesExhausted into Failed).

    A job is retried while attempts-after-increment < max_attempts (the job's own
    ``max_attempts`` override first), so with the default of 25 a job runs at most 25
    times, as in delayed_job. A job's ``reschedule_at(now, attempts)`` override replaces
    the backoff. Permanent errors pass through untouched.

    Args:
        max_attempts: default 25.
        backoff: a tenacity wait strategy (``tenacity.wait_exponential(...)``) or a
            callable attempts -> seconds/timedelta; default attempts⁴ + 5 s.

    Note:
        "now" is the job's clock at failure time, as delayed_job's ``db_time_now``.
    """

    max_attempts: int = attrs.field(default=25, validator=positive_int)
    backoff: Backoff = attrs.field(default=delayed_job_backoff, converter=_as_backoff)

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain; turn a retryable failure into Rescheduled."""
        try:
            return call_next(job)
        except PermanentJobError:
            raise
        except AttemptFailed as failure:
            attempts, error = failure.attempts, failure.error
        except Exception as exc:  # no CountAttempts inside: nothing was counted
            attempts, error = job.attempts, exc
        max_attempts = job.max_attempts if job.max_attempts is not None else self.max_attempts
        if attempts >= max_attempts:
            raise RetriesExhausted(attempts=attempts, error=error, job_id=job.id) from error
        now = job.clock()
        if job.reschedule_at is not None:
            run_at = job.reschedule_at(now, attempts)
        else:
            delay = self.backoff(attempts)
            run_at = now + (delay if isinstance(delay, timedelta) else timedelta(seconds=delay))
        return Rescheduled(run_at=run_at, attempts=attempts, error=error)
