"""The errors djmw raises, all under one base class.

```
DjmwError
├── ConfigurationError        bad worker, middleware or config-file entry (raised at start)
├── MiddlewareContractError   a middleware returned something that is not an Outcome
├── BackendError              database trouble; the driver's error is in __cause__
│   ├── OutcomeNotRecorded    a finished job's outcome could not be written
│   └── ReserveErrorsExceeded too many consecutive reserve errors; the loop ends
├── JobNotRegistered          class-aware: the job belongs to another runtime; given back
├── JobNotFound               the operations API was given a row id that does not exist
└── JobError                  about one job; carries job_id when known
    ├── JobTimeout            EnforceTimeout fired (a retryable failed attempt)
    │   └── TimeoutInterrupt  raised into the job's thread at the limit (internal)
    ├── ChildJobError         process mode: an exception that could not come back as itself
    ├── ChildProcessFailed    process mode: the child died without a result (retryable)
    ├── ChildTimedOut         process mode: the child was killed at the limit
    ├── AttemptFailed         CountAttempts' record of one charged failed attempt
    │   └── PermanentAttemptFailed  ...whose handler raised a PermanentJobError
    └── PermanentJobError     never retried; MarkFailed turns it into Failed
        ├── PermanentAttemptFailed  (also an AttemptFailed)
        ├── PayloadDecodeError   the handler YAML cannot be loaded (attempts unchanged)
        │   └── UnknownJobError  no perform function is registered for the job's name
        └── RetriesExhausted     ScheduleRetry gave up; the last error is in .error

BaseException
└── WorkerShutdown            raised into a running job by a hard shutdown; never a failure
```

Handlers raise `PermanentJobError` (also exported as `djmw.PermanentError`) to fail
a job at once without retries, the equivalent of dj-consumer's `{:failed? true}`.
"""

from __future__ import annotations

import functools
from typing import cast


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


class PermanentJobError(JobError):
    """Fail the job now, without retries (the row keeps failed_at and last_error).

    MarkFailed turns every PermanentJobError into ``Failed`` through two methods, which
    the subclasses that carry a counted attempt or a wrapped error override.
    """

    def stored_attempts(self, current: int) -> int:
        """The attempts value to store: ``current`` (the job's, unchanged) here."""
        return current

    def recorded_error(self) -> BaseException:
        """The exception whose text last_error records: this one here."""
        return self


class AttemptFailed(JobError):
    """One failed attempt, already counted by CountAttempts.

    Constructed with a PermanentJobError as ``error``, it is a PermanentAttemptFailed
    (also a PermanentJobError), so ScheduleRetry lets it pass and MarkFailed fails the
    job with the counted attempts.

    Args:
        attempts: the job's attempts after this failure was counted.
        error: the exception the attempt raised.
    """

    def __new__(
        cls, *, attempts: int, error: BaseException, job_id: int | None = None
    ) -> AttemptFailed:
        permanent = cls is AttemptFailed and isinstance(error, PermanentJobError)
        return super().__new__(PermanentAttemptFailed if permanent else cls)

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


class PermanentAttemptFailed(AttemptFailed, PermanentJobError):
    """A counted attempt whose handler raised a PermanentJobError: failed, never retried."""

    def stored_attempts(self, current: int) -> int:
        """The attempts after this one was counted."""
        return self.attempts

    def recorded_error(self) -> BaseException:
        """The handler's PermanentJobError."""
        return self.error


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

    def stored_attempts(self, current: int) -> int:
        """The attempts counted when retries ran out."""
        return self.attempts

    def recorded_error(self) -> BaseException:
        """The last attempt's exception."""
        return self.error


class ReserveErrorsExceeded(BackendError):
    """Too many consecutive reserve errors (delayed_job's FatalBackendError); the loop ends."""


class WorkerShutdown(BaseException):
    """Raised into a running job by ``Worker.interrupt()`` at a hard shutdown.

    A BaseException, so that no middleware (they catch Exception) turns it into a failed
    attempt: the worker unlocks the row with attempts unchanged.
    """


class JobNotRegistered(DjmwError):
    """The job belongs to another runtime; the worker unlocks it without charging an attempt.

    Raised by OnlyRegistered (class-aware reservation) for a job this worker has no
    perform function for, or cannot decode. No middleware converts it.
    """

    def __init__(self, job_id: int, display_name: str, *, undecodable: bool) -> None:
        reason = "cannot be decoded here" if undecodable else "has no perform function here"
        super().__init__(f"job {job_id} ({display_name}) {reason}; giving it back")
        self.job_id = job_id


class JobNotFound(DjmwError):
    """Row ids given to the operations API (``djmw.admin.Jobs``) that the table lacks.

    Raised before anything is written, so a typo in one id changes no row.

    Attributes:
        job_ids: the missing ids, ascending.
    """

    def __init__(self, job_ids: list[int]) -> None:
        shown = ", ".join(str(job_id) for job_id in job_ids)
        noun = "job" if len(job_ids) == 1 else "jobs"
        super().__init__(f"no {noun} with id {shown} in the table; nothing was changed.")
        self.job_ids = job_ids


class TimeoutInterrupt(JobTimeout):
    """EnforceTimeout's interrupt, raised into the job's thread at the limit.

    The middleware replaces it with a JobTimeout carrying delayed_job's full message.
    """


class ChildJobError(JobError):
    """An exception from the job's child process that could not come back as itself.

    Exceptions are sent to the worker by pickling; one that cannot be pickled (it holds a
    socket, a lock, a generator...) or that does not unpickle to an equal exception (a
    custom ``__init__`` with other parameters than ``args``) arrives as this class
    instead. ``type(error).__name__`` is the original class's name (a subclass of
    ChildJobError is made per name), so the FAILED log line reads ``MyError: message``;
    ``str(error)`` is the original message and ``last_error`` lists the child's frames.
    A ``BaseException`` that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``)
    also arrives as a ChildJobError: in the child it ends the job, never the worker.

    Attributes:
        class_name: the original exception's qualified class name.
        message: ``str()`` of the original exception.
        traceback_text: the child's formatted traceback, chained exceptions included.
    """

    def __init__(
        self, message: str, *, class_name: str, traceback_text: str, job_id: int | None = None
    ) -> None:
        super().__init__(message, job_id=job_id)
        self.class_name = class_name
        self.message = message
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (child_job_error, (self.class_name, self.message, self.traceback_text, self.job_id))


@functools.lru_cache(maxsize=256)
def _named_class(qualname: str) -> type[ChildJobError]:
    name = qualname.rpartition(".")[2] or "ChildJobError"
    namespace = {
        "__module__": "djmw.middleware._child",
        "__qualname__": qualname,
        "__doc__": ChildJobError.__doc__,
    }
    return cast(type[ChildJobError], type(name, (ChildJobError,), namespace))


def child_job_error(
    class_name: str, message: str, traceback_text: str, job_id: int | None = None
) -> ChildJobError:
    """Return a ChildJobError whose class is named like the original (``class_name``)."""
    cls = _named_class(class_name) if class_name else ChildJobError
    return cls(message, class_name=class_name, traceback_text=traceback_text, job_id=job_id)


class ChildProcessFailed(JobError):
    """The job's child process ended without a readable result (a retryable attempt).

    The message says how: ``the job's child process died with signal 9 (SIGKILL)`` (the
    kernel's OOM killer, a segfault in a C extension, a ``kill``), or ``... exited with
    status 3 without sending a result`` (``os._exit`` in the handler).
    """


class ChildTimedOut(JobError):
    """The child process was still running at the limit and was killed."""
