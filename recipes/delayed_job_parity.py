"""The delayed_job parity chain: failed jobs are deleted, retries have no jitter.

Use this when djmw shares a table with Ruby workers and every row must end exactly as
delayed_job 4.1 would leave it, including ``destroy_failed_jobs = true`` (the default in
Ruby, where a job that fails for good is deleted and only the log keeps its error).

Drop in::

    from recipes.delayed_job_parity import parity_middlewares

    worker = djmw.Worker(database=url, handlers=handlers,
                         middlewares=parity_middlewares(handlers))

delayed_job equivalent: ``Delayed::Worker.destroy_failed_jobs = true``,
``max_attempts = 25``, ``max_run_time = 4.hours``, ``reschedule_at`` = attempts**4 + 5.

Caveats: a deleted failed job cannot be inspected or retried; djmw's default keeps it.
"""

from __future__ import annotations

from djmw import Handlers, Middleware
from djmw.middleware import (
    CountAttempts,
    DecodeYAML,
    EnforceTimeout,
    LogOutcome,
    MarkFailed,
    RunHooks,
    ScheduleRetry,
    delayed_job_backoff,
)


def parity_middlewares(handlers: Handlers, *, max_attempts: int = 25) -> list[Middleware]:
    """Return the default chain with delayed_job's defaults: delete failed, n⁴ + 5 s, 25 tries."""
    return [
        DecodeYAML(),
        RunHooks(handlers=handlers),
        LogOutcome(),
        MarkFailed(delete_failed=True),
        ScheduleRetry(max_attempts=max_attempts, backoff=delayed_job_backoff),
        CountAttempts(),
        EnforceTimeout(),
    ]
