"""Start at most ``rate`` jobs per second (a token bucket), per job name or for all jobs.

Use this when jobs call an API with a rate limit (e-mail provider, payment gateway) and
you would rather wait than collect 429 errors and spend retries.

Drop in::

    from recipes.rate_limit import RateLimit

    chain = djmw.default_middlewares(handlers)
    chain.insert(3, RateLimit(rate=10, burst=20, names={"UserMailer.welcome"}))
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

A job waits for its token when one comes within ``max_wait`` seconds; otherwise it is
put back with ``run_at`` = the moment its token would come, attempts unchanged.

delayed_job equivalent: none (Betterment delayed's README suggests a rate-limited queue).

Caveats: the bucket is per process (shared by its threads); a fleet of N processes
starts up to N x ``rate`` jobs per second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from datetime import timedelta

import attrs

from djmw import CallNext, Job, Outcome, Rescheduled


class RateLimited(Exception):
    """No token came in time; the job was put back without charging an attempt."""


@attrs.define(eq=False)
class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; thread-safe.

    ``take()`` returns 0.0 when a token was taken, else the seconds until one comes
    (nothing is taken then).
    """

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = attrs.field(init=False)
    _stamp: float = attrs.field(init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens, self._stamp = self.burst, self.clock()

    def take(self) -> float:
        """Take one token now, or say how long until one is there."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


@attrs.frozen(kw_only=True)
class RateLimit:
    """Rate-limit the start of jobs with a token bucket.

    Where: inside DecodeYAML (names are known) and LogOutcome, outside MarkFailed.

    Args:
        rate: tokens per second.
        burst: the bucket's size (jobs that may start at once after a quiet spell).
        names: limit only these job names (None = every job).
        per_name: one bucket per job name instead of one for all.
        max_wait: seconds a job may wait for its token before it is put back.
        sleep: how to wait (``time.sleep``; tests pass a fake).
        clock: the buckets' clock (``time.monotonic``).
    """

    rate: float
    burst: float = 1.0
    names: Collection[str] | None = None
    per_name: bool = False
    max_wait: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def _bucket(self, name: str) -> TokenBucket:
        key = name if self.per_name else ""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.clock)
            return bucket

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Wait for a token (or put the job back), then run it."""
        name = job.display_name
        if self.names is not None and name not in self.names:
            return call_next(job)
        bucket = self._bucket(name)
        while (delay := bucket.take()) > 0:
            if delay > self.max_wait:
                error = RateLimited(
                    f"rate limit of {self.rate:g}/s reached; put back for {delay:.3f} s, "
                    "attempts unchanged"
                )
                run_at = job.clock() + timedelta(seconds=delay)
                return Rescheduled(run_at=run_at, attempts=job.attempts, error=error)
            self.sleep(delay)
        return call_next(job)
