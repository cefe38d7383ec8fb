"""Retries with tenacity's exponential backoff plus random jitter.

Use this when many jobs fail together (an outage of a service they call) and should not
all come back at the same second; Python-only tables can drop delayed_job's fixed
attempts⁴ + 5 s schedule.

Drop in::

    from recipes.jittered_backoff import jittered_retry

    chain = djmw.default_middlewares(handlers)
    chain[4] = jittered_retry()          # replaces the default ScheduleRetry
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

delayed_job equivalent: a payload ``reschedule_at`` method; delayed_job itself has no jitter.

Caveats: Ruby workers sharing the table still use attempts⁴ + 5 s for the jobs they run.
"""

from __future__ import annotations

import tenacity

from djmw.middleware import ScheduleRetry


def jittered_retry(
    *, max_attempts: int = 25, base: float = 5.0, cap: float = 6 * 3600.0, jitter: float = 30.0
) -> ScheduleRetry:
    """Return a ScheduleRetry waiting base·2^(n-1) seconds (capped) plus up to ``jitter`` s."""
    wait = tenacity.wait_exponential(multiplier=base, max=cap) + tenacity.wait_random(0, jitter)
    return ScheduleRetry(max_attempts=max_attempts, backoff=wait)
