"""MarkFailed: a permanent error or used-up retries becomes Failed."""

from __future__ import annotations

import attrs

from djmw.chain import CallNext
from djmw.errors import (
    PayloadDecodeError,
    PermanentJobError,
    RetriesExhausted,
)
from djmw.job import Job
from djmw.outcome import Failed, Outcome
from djmw.validation import boolean


@attrs.frozen(kw_only=True)
class MarkFailed:
    """Turn permanent errors into ``Failed``: the row is kept with failed_at and last_error.

    Where: outside ScheduleRetry (which raises RetriesExhausted) and CountAttempts.

    Handles: RetriesExhausted (attempts used up), a PermanentJobError raised by the
    handler (counted as an attempt when CountAttempts is in the chain), and a
    PayloadDecodeError (attempts unchanged). Any other exception passes through; the
    worker then unlocks the row without charging an attempt.

    Args:
        delete_failed: delete failed rows instead of keeping them. delayed_job's default
            (``destroy_failed_jobs = true``) deletes them; djmw keeps them by default so
            that no job and no reason for a failure is lost. A job's ``destroy_failed``
            override wins; it is ignored for undecodable handlers, as in delayed_job.
    """

    delete_failed: bool = attrs.field(default=False, validator=boolean)

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain; convert permanent errors to Failed."""
        try:
            return call_next(job)
        except PermanentJobError as exc:
            undecodable = isinstance(exc, PayloadDecodeError)
            return Failed(
                attempts=exc.stored_attempts(job.attempts),
                error=exc.recorded_error(),
                delete=self.delete_failed if undecodable else self._delete(job),
                exhausted=isinstance(exc, RetriesExhausted),
            )

    def _delete(self, job: Job) -> bool:
        return job.destroy_failed if job.destroy_failed is not None else self.delete_failed
