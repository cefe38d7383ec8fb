"""Run at most N jobs of one name at a time in this process; the others come back later.

Use this when a job calls something that cannot take many callers at once (a report
generator, a partner API with a connection cap) and the worker runs ``--threads N``.

Drop in::

    from recipes.limit_concurrency import LimitConcurrency

    chain = djmw.default_middlewares(handlers)
    chain.insert(3, LimitConcurrency(limits={"ReportJob": 2}))   # after LogOutcome
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

A job over its limit waits up to ``wait`` seconds for a slot, then is put back with
``run_at`` = now + ``retry_in`` and its attempts unchanged (``last_error`` says why).

delayed_job equivalent: none (Betterment delayed and Sidekiq Enterprise have limiters).

Caveats: the limit is per process; with ``--processes N`` or several hosts the fleet runs
up to N times the limit. A job put back is logged as a failed attempt that charged nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta

import attrs

from djmw import CallNext, Job, Outcome, Rescheduled


class ConcurrencyLimited(Exception):
    """The job's name had no free slot; it was put back without charging an attempt."""


@attrs.frozen(kw_only=True)
class LimitConcurrency:
    """At most ``limits[name]`` concurrent runs per job name in this process.

    Where: inside DecodeYAML (the name is known) and LogOutcome (the put-back is
    logged), outside MarkFailed (it returns its own outcome, which nothing must count).

    Args:
        limits: job name -> maximum concurrent runs; other names are not limited.
        wait: seconds a job waits for a slot before it is put back.
        retry_in: seconds until a put-back job is eligible again.
    """

    limits: Mapping[str, int]
    wait: float = 0.0
    retry_in: float = 5.0
    _slots: dict[str, threading.BoundedSemaphore] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        slots = {name: threading.BoundedSemaphore(n) for name, n in self.limits.items()}
        object.__setattr__(self, "_slots", slots)

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the job in a slot, or put it back when none frees up in time."""
        slot = self._slots.get(job.display_name)
        if slot is None:
            return call_next(job)
        acquired = (
            slot.acquire(timeout=self.wait) if self.wait > 0 else slot.acquire(blocking=False)
        )
        if not acquired:
            error = ConcurrencyLimited(
                f"{self.limits[job.display_name]} {job.display_name} jobs already running; "
                f"put back for {self.retry_in:g} s, attempts unchanged"
            )
            run_at = job.clock() + timedelta(seconds=self.retry_in)
            return Rescheduled(run_at=run_at, attempts=job.attempts, error=error)
        try:
            return call_next(job)
        finally:
            slot.release()
