"""One timer thread for many deadlines: cheaper than a threading.Timer per job."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Deadline:
    """A scheduled callback; ``cancel()`` keeps it from running if it has not yet."""

    __slots__ = ("active", "callback", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.active = True

    def cancel(self) -> None:
        """Do not run the callback (a no-op once it ran)."""
        self.active = False


class Watchdog:
    """Run callbacks at monotonic deadlines from a single daemon thread, started lazily.

    Limits: callbacks run one after another on the watchdog's thread, so they must be
    short (setting a flag, raising into another thread, sending a signal).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> Deadline:
        """Run ``callback`` after ``delay`` seconds unless the returned Deadline is cancelled."""
        deadline = Deadline(time.monotonic() + delay, callback)
        with self._cond:
            heapq.heappush(self._heap, (deadline.when, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="djmw watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return deadline

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and not self._heap[0][2].active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, due = heapq.heappop(self._heap)
            if due.active:
                due.callback()
