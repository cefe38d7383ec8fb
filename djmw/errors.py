"""The errors djmw raises, all under one base class.

```
DjmwError
├── ConfigurationError        bad worker, middleware or config-file entry (raised at start)
├── MiddlewareContractError   a middleware returned something that is not an Outcome
├── BackendError              database trouble; the driver's error is in __cause__
│   └── OutcomeNotRecorded    a finished job's outcome could not be written
└── JobError                  about one job; carries job_id when known
    ├── JobTimeout            EnforceTimeout fired (a retryable failed attempt)
    ├── AttemptFailed         CountAttempts' record of one charged failed attempt
    └── PermanentJobError     never retried; MarkFailed turns it into Failed
        ├── PayloadDecodeError   the handler YAML cannot be loaded (attempts unchanged)
        │   └── UnknownJobError  no perform function is registered for the job's name
        └── RetriesExhausted     ScheduleRetry gave up; the last error is in .error
```

Handlers raise `PermanentJobError` (also exported as `djmw.PermanentError`) to fail
a job at once without retries, the equivalent of dj-consumer's `{:failed? true}`.
"""

from __future__ import annotations


def error_message(error: BaseException) -> str:
    """Return ``str(error)`` safely: never raises, and always encodable as UTF-8.

    An exception whose ``__str__`` raises is named ``<unprintable X>``; lone surrogates
    (file names from ``os.fsdecode``) are backslash-escaped, so the text can be stored.
    """
    try:
        text = str(error)
    except Exception:  # a broken __str__ must not cost the job its outcome
        text = f"<unprintable {type(error).__name__}>"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class DjmwError(Exception):
    """Base class of every error djmw raises."""


class ConfigurationError(DjmwError):
    """A worker, middleware or config-file entry is wrong; raised before any job runs."""


class MiddlewareContractError(DjmwError):
    """A middleware returned a value that is not an Outcome.

    The message names the middleware; the usual cause is a missing ``return call_next(job)``.
    """


class BackendError(DjmwError):
    """The database failed; the driver's exception is chained as ``__cause__``."""


class OutcomeNotRecorded(BackendError):
    """A finished job's outcome could not be written; its row stays locked by the worker."""


class JobError(DjmwError):
    """An error about one job.

    Args:
        message: a sentence saying what went wrong.
        job_id: the ``delayed_jobs.id`` of the job, when known.
    """

    def __init__(self, message: str = "", *, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobTimeout(JobError):
    """The job ran longer than its max_run_time; counted as an ordinary failed attempt."""


class AttemptFailed(JobError):
    """One failed attempt, already counted by CountAttempts.

    Args:
        attempts: the job's attempts after this failure was counted.
        error: the exception the attempt raised.
    """

    def __init__(self, *, attempts: int, error: BaseException, job_id: int | None = None) -> None:
        super().__init__(
            f"attempt {attempts} of job {job_id} failed: {error_message(error)}", job_id=job_id
        )
        self.attempts = attempts
        self.error = error

    @property
    def permanent(self) -> bool:
        """True when the handler asked for no retry by raising a PermanentJobError."""
        return isinstance(self.error, PermanentJobError)


class PermanentJobError(JobError):
    """Fail the job now, without retries (the row keeps failed_at and last_error)."""


class PayloadDecodeError(PermanentJobError):
    """The handler YAML cannot be turned into a job; the message starts ``Job failed to load:``."""


class UnknownJobError(PayloadDecodeError):
    """The handler decoded, but no perform function is registered under the job's name."""


class RetriesExhausted(PermanentJobError):
    """ScheduleRetry gave up after max_attempts failed attempts.

    Args:
        attempts: the job's attempts, now equal to (or past) max_attempts.
        error: the exception of the last attempt.
    """

    def __init__(self, *, attempts: int, error: BaseException, job_id: int | None = None) -> None:
        super().__init__(
            f"job {job_id} failed permanently because of {attempts} consecutive failures",
            job_id=job_id,
        )
        self.attempts = attempts
        self.error = error
