"""Outcomes: what the chain decided about one job. Only the backend turns them into writes."""

from __future__ import annotations

import traceback
from datetime import datetime

import attrs

from djmw.errors import error_message


@attrs.frozen
class Succeeded:
    """The job ran; the backend deletes its row (delayed_job has no "completed" state).

    Attributes:
        value: whatever the perform function returned, for middlewares that want it.
    """

    value: object = None


@attrs.frozen(kw_only=True)
class Rescheduled:
    """The attempt failed and the job runs again at ``run_at``.

    The backend writes attempts, run_at, last_error, clears locked_at/locked_by and sets
    updated_at, in one UPDATE.
    """

    run_at: datetime
    attempts: int
    error: BaseException


@attrs.frozen(kw_only=True)
class Failed:
    """The job will not run again.

    With ``delete`` the row is deleted (delayed_job's ``destroy_failed_jobs``); otherwise
    failed_at, attempts and last_error are written and the lock columns are left as they
    were, as delayed_job does.

    Attributes:
        attempts: the attempts value to store.
        error: the exception that made the job fail (the last attempt's, for exhaustion).
        delete: delete the row instead of keeping it.
        exhausted: True when retries were used up (logged as ``FAILED permanently because
            of N consecutive failures``).
    """

    attempts: int
    error: BaseException
    delete: bool = False
    exhausted: bool = False


Outcome = Succeeded | Rescheduled | Failed
OUTCOME_TYPES = (Succeeded, Rescheduled, Failed)


def error_text(error: BaseException) -> str:
    """Return delayed_job's last_error text: the message, a newline, the backtrace lines.

    Frames are listed innermost first, as Ruby prints them.
    """
    frames = traceback.extract_tb(error.__traceback__)
    lines = [f"{frame.filename}:{frame.lineno}:in `{frame.name}'" for frame in reversed(frames)]
    text = "\n".join([error_message(error), *lines])
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_class_name(error: BaseException) -> str:
    """Return the error's class name as log lines show it (``ValueError``, ``JobTimeout``)."""
    return type(error).__name__
