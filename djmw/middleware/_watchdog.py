"""One timer thread for many deadlines: cheaper than a threading.Timer per job."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

#: Rebuild the heap once this many cancelled deadlines are waiting in it.
_PURGE_AT = 256


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
            self._watchdog._cancelled()


class Watchdog:
    """Run callbacks at monotonic deadlines from a single daemon thread, started lazily.

    The thread is woken only when a new deadline comes before every pending one, and
    cancelled deadlines are purged in bulk, so a busy worker (a deadline per job) costs
    a heap push per job, not a thread wake-up, and memory stays bounded.

    Limits: callbacks run one after another on the watchdog's thread, so they must be
    short (setting a flag, raising into another thread, sending a signal).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._dead = 0

    def schedule(self, delay: float, callback: Callable[[], None]) -> Deadline:
        """Run ``callback`` after ``delay`` seconds unless the returned Deadline is cancelled."""
        deadline = Deadline(time.monotonic() + delay, callback, self)
        with self._cond:
            if self._dead >= _PURGE_AT and self._dead * 2 >= len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2].active]
                heapq.heapify(self._heap)
                self._dead = 0
            earliest = not self._heap or deadline.when < self._heap[0][0]
            heapq.heappush(self._heap, (deadline.when, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="djmw watchdog", daemon=True)
                self._thread.start()
            elif earliest:
                self._cond.notify()
        return deadline

    def _cancelled(self) -> None:
        with self._cond:
            self._dead += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and not self._heap[0][2].active:
                    heapq.heappop(self._heap)
                    self._dead = max(self._dead - 1, 0)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, due = heapq.heappop(self._heap)
            if due.active:
                due.active = False
                due.callback()
