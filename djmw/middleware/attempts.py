"""CountAttempts: charge one attempt for each failed run, never at reserve time."""

from __future__ import annotations

import attrs

from djmw.chain import CallNext
from djmw.errors import AttemptFailed, PayloadDecodeError
from djmw.job import Job
from djmw.outcome import Outcome


@attrs.frozen
class CountAttempts:
    """Turn an exception from the inner chain into AttemptFailed carrying attempts + 1.

    Where: inside ScheduleRetry (which reads the counted value) and outside
    EnforceTimeout (so a timeout is a counted attempt, as in delayed_job).

    Note:
        A PayloadDecodeError passes through uncounted: delayed_job leaves attempts
        unchanged when a handler cannot be loaded. Successes are never counted (the row
        is deleted), and nothing is counted at reserve time, so a worker killed mid-job
        leaves attempts as they were.
    """

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain; count a failure."""
        try:
            return call_next(job)
        except PayloadDecodeError:
            raise
        except Exception as exc:
            raise AttemptFailed(attempts=job.attempts + 1, error=exc, job_id=job.id) from exc
