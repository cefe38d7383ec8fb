"""One timer thread for many deadlines: cheaper than a threading.Timer per job."""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable

#: Rebuild the heap once this many cancelled deadlines are waiting in it.
_PURGE_AT = 256


def _nothing() -> None:
    """The callback of a cancelled deadline."""


class Deadline:
    """A scheduled callback; ``cancel()`` keeps it from running if it has not yet."""

    __slots__ = ("_watchdog", "active", "callback", "when")

    def __init__(self, when: float, callback: Callable[[], None], watchdog: Watchdog) -> None:
        self.when = when
        self.callback = callback
        self.active = True
        self._watchdog = watchdog

    def cancel(self) -> None:
        """Do not run the callback (a no-op once it ran)."""
        if self.active:
            self.active = False
            self.callback = _nothing  # the heap keeps the entry a while; not the job
            self._watchdog._cancelled()


class Watchdog:
    """Run callbacks at monotonic deadlines from a single daemon thread, started lazily.

    The thread sleeps until the earliest deadline in its heap, cancelled or not, and is
    woken only when a new deadline comes before the instant it sleeps until. A busy
    worker schedules and cancels a deadline per job, each later than the last, so it
    costs a heap push per job and no thread wake-up; cancelled deadlines are purged in
    bulk, so memory stays bounded.

    Limits: callbacks run one after another on the watchdog's thread, so they must be
    short (setting a flag, raising into another thread, sending a signal).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._dead = 0
        #: The monotonic instant the thread sleeps until (inf: until notified).
        self._wake_at = math.inf
        #: How many times the thread woke up (tests read it).
        self.wakeups = 0

    def schedule(self, delay: float, callback: Callable[[], None]) -> Deadline:
        """Run ``callback`` after ``delay`` seconds unless the returned Deadline is cancelled."""
        deadline = Deadline(time.monotonic() + delay, callback, self)
        with self._cond:
            if self._dead >= _PURGE_AT and self._dead * 2 >= len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2].active]
                heapq.heapify(self._heap)
                self._dead = 0
            heapq.heappush(self._heap, (deadline.when, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="djmw watchdog", daemon=True)
                self._thread.start()
            elif deadline.when < self._wake_at:
                self._wake_at = deadline.when
                self._cond.notify()
        return deadline

    def _cancelled(self) -> None:
        with self._cond:
            self._dead += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._heap:
                    self._wake_at = math.inf
                    self._cond.wait()
                    self.wakeups += 1
                    continue
                # Sleep until the earliest deadline even if it was cancelled: popping
                # cancelled ones early would empty the heap and make every next
                # schedule() wake this thread.
                when = self._heap[0][0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._wake_at = when
                    self._cond.wait(wait)
                    self.wakeups += 1
                    continue
                _, _, due = heapq.heappop(self._heap)
                if not due.active:
                    self._dead = max(self._dead - 1, 0)
                    continue
            due.active = False
            due.callback()
