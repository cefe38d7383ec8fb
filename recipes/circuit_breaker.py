"""A circuit breaker around a failing dependency: after N failures in a row, stop trying.

Use this when jobs call one service (a payment gateway, a search cluster) that can be
down for minutes: instead of every job spending an attempt against it, the breaker
opens and puts jobs back untried until the service has had time to recover.

Drop in::

    from recipes.circuit_breaker import CircuitBreaker

    chain = djmw.default_middlewares(handlers)
    chain.insert(3, CircuitBreaker(names={"ChargeJob", "RefundJob"}, failures=5, reset_after=60))
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

States: closed (jobs run; ``failures`` failed attempts in a row open it), open (jobs are
put back with ``run_at`` = now + ``retry_in`` and attempts unchanged, for
``reset_after`` seconds), half-open (one job tries: success closes, failure re-opens).

delayed_job equivalent: none (Sidekiq Enterprise and stoplight gems in Ruby).

Caveats: per process; every process of a fleet trips its own breaker. Only the chosen
job names (or ``errors`` types, when given) count and are held back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from datetime import timedelta

import attrs

from djmw import CallNext, Job, Outcome, Rescheduled, Succeeded


class CircuitOpen(Exception):
    """The breaker is open: the job was put back untried, attempts unchanged."""


@attrs.define(eq=False)
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial_running: bool = False


@attrs.frozen(kw_only=True)
class CircuitBreaker:
    """Hold back the jobs of ``names`` while their dependency keeps failing.

    Where: inside DecodeYAML (names are known) and LogOutcome (held-back jobs are
    logged), outside MarkFailed (it returns its own outcome, which nothing must count).

    Args:
        names: the job names behind the breaker.
        failures: failed attempts in a row that open it.
        reset_after: seconds it stays open before one job may try.
        retry_in: seconds until a held-back job is eligible again.
        errors: count only failures with these exception types (None = any).
        clock: monotonic seconds (``time.monotonic``; tests pass a fake).
    """

    names: Collection[str]
    failures: int = 5
    reset_after: float = 60.0
    retry_in: float = 30.0
    errors: tuple[type[BaseException], ...] | None = None
    clock: Callable[[], float] = time.monotonic
    _state: _State = attrs.field(factory=_State, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        with self._lock:
            return self._state_name()

    def _state_name(self) -> str:
        opened_at = self._state.opened_at
        if opened_at is None:
            return "closed"
        return "open" if self.clock() - opened_at < self.reset_after else "half-open"

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the job, or put it back untried while the breaker is open."""
        if job.display_name not in self.names:
            return call_next(job)
        with self._lock:
            state = self._state_name()
            hold = state == "open" or (state == "half-open" and self._state.trial_running)
            if state == "half-open" and not hold:
                self._state.trial_running = True
        if hold:
            error = CircuitOpen(
                f"circuit open after {self.failures} failures in a row; put back for "
                f"{self.retry_in:g} s, attempts unchanged"
            )
            run_at = job.clock() + timedelta(seconds=self.retry_in)
            return Rescheduled(run_at=run_at, attempts=job.attempts, error=error)
        try:
            outcome = call_next(job)
        except BaseException:
            with self._lock:
                self._state.trial_running = False
            raise
        self._record(outcome)
        return outcome

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self._state.trial_running = False
            if isinstance(outcome, Succeeded):
                self._state.failures, self._state.opened_at = 0, None
                return
            if self.errors is not None and not isinstance(outcome.error, self.errors):
                return
            self._state.failures += 1
            if self._state.failures >= self.failures or self._state.opened_at is not None:
                self._state.opened_at = self.clock()
