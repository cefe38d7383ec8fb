"""The shared watchdog: callbacks at their deadlines, cancellation, bounded memory."""

from __future__ import annotations

import threading
import time

from djmw.middleware._watchdog import Watchdog


def test_callbacks_run_in_deadline_order_and_cancelled_ones_never() -> None:
    """Deadlines fire in time order whatever the scheduling order; a cancelled one does not."""
    watchdog = Watchdog()
    fired: list[str] = []
    done = threading.Event()
    watchdog.schedule(0.2, lambda: (fired.append("late"), done.set()))
    watchdog.schedule(0.05, lambda: fired.append("early"))
    watchdog.schedule(0.1, lambda: fired.append("cancelled")).cancel()
    assert done.wait(5)
    assert fired == ["early", "late"]


def test_cancelled_deadlines_do_not_pile_up() -> None:
    """A worker scheduling and cancelling a 4 h deadline per job keeps the heap small."""
    watchdog = Watchdog()
    for _ in range(10_000):
        watchdog.schedule(4 * 3600, lambda: None).cancel()
    assert len(watchdog._heap) < 600


def test_a_new_earlier_deadline_wakes_the_thread() -> None:
    """A short deadline scheduled after a long one still fires on time."""
    watchdog = Watchdog()
    watchdog.schedule(3600, lambda: None)
    fired = threading.Event()
    started = time.monotonic()
    watchdog.schedule(0.05, fired.set)
    assert fired.wait(5)
    assert time.monotonic() - started < 2


def test_a_deadline_per_job_does_not_wake_the_thread_per_job() -> None:
    """Scheduling and cancelling one long deadline per job, as EnforceTimeout does, leaves
    the thread asleep: only a deadline earlier than the one it sleeps until wakes it."""
    watchdog = Watchdog()
    watchdog.schedule(4 * 3600, lambda: None).cancel()
    time.sleep(0.1)  # let the thread start and go to sleep
    before = watchdog.wakeups
    for _ in range(2_000):
        watchdog.schedule(4 * 3600, lambda: None).cancel()
    assert watchdog.wakeups - before < 20
