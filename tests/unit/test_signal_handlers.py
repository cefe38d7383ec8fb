"""Signal handlers never wait for a lock their own thread may hold.

A Python signal handler runs in the main thread between any two bytecodes. The pool's
handler used to call ``Event.set()`` on the event its main loop waits on; a signal landing
just after ``Event.wait`` took the event's lock back made the handler wait for that lock
forever: the process then ignored every later signal and its supervisor's messages,
and its worker went on reserving jobs. These tests put each handler in that position:
called by a thread that holds the lock, which must not deadlock, and whose effect must
still happen once the lock is let go.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import djmw
from djmw import _signal_safe
from djmw.cli.pool import GRACEFUL, QUIT, WorkerPool
from djmw.loop import Loop
from djmw.testing import InMemoryBackend
from djmw.worker import _ctrl_c_stops

HANDLERS = djmw.Handlers({"NoopJob": lambda job: None})


def _returns_while_holding(lock: object, handler: Callable[[], object]) -> bool:
    """Call ``handler`` in a thread that holds ``lock``; True if it returned within 5 s."""
    returned = threading.Event()

    def hold_and_call() -> None:
        with lock:  # type: ignore[attr-defined]
            handler()
            returned.set()

    thread = threading.Thread(target=hold_and_call, daemon=True)
    thread.start()
    return returned.wait(5)


def _loop() -> Loop:
    backend = InMemoryBackend()
    worker = djmw.Worker(backend=lambda: backend, handlers=HANDLERS, name="w")
    worker.prepare()
    assert worker._loop is not None
    return worker._loop


@pytest.mark.parametrize(("signum", "level"), [(signal.SIGTERM, GRACEFUL), (signal.SIGQUIT, QUIT)])
def test_the_pool_handler_returns_while_its_wake_event_is_locked(signum: int, level: int) -> None:
    """The pool's handler, run while the main loop holds its wake event's condition lock
    (a signal just after ``Event.wait`` woke), returns at once; the level is taken and
    the event is set once the lock is free."""
    pool = WorkerPool([])
    condition = pool._wake._cond  # type: ignore[attr-defined]
    assert _returns_while_holding(condition, lambda: pool._on_signal(signum, None))
    assert pool.level == level
    assert pool._wake.wait(5)


@pytest.fixture
def ctrl_c_handler() -> Iterator[tuple[Loop, Callable[[], object]]]:
    """The SIGINT handler ``Worker.run()`` installs in the main thread, and its loop."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has another handler in this test process")
    loop = _loop()
    with _ctrl_c_stops(loop):
        handler = signal.getsignal(signal.SIGINT)
        assert callable(handler)
        yield loop, lambda: handler(signal.SIGINT, None)


def test_ctrl_c_returns_while_the_stop_event_is_locked(
    ctrl_c_handler: tuple[Loop, Callable[[], object]],
) -> None:
    """Ctrl-C under ``Worker.run()`` while the loop holds its stop event's lock (asleep in
    ``wait_for_jobs`` and just woken): the handler returns at once, and the loop is
    stopped once the lock is free."""
    loop, press = ctrl_c_handler
    condition = loop._stop._cond  # type: ignore[attr-defined]
    assert _returns_while_holding(condition, press)
    assert loop._stop.wait(5)


def test_a_second_ctrl_c_returns_while_the_job_lock_is_held(
    ctrl_c_handler: tuple[Loop, Callable[[], object]],
) -> None:
    """The second Ctrl-C, while the loop holds the lock around its current job (a job
    starting or ending), returns at once; the interrupt lands once the lock is free."""
    loop, press = ctrl_c_handler
    press()
    assert loop._stop.wait(5)
    assert _returns_while_holding(loop._job_lock, press)
    deadline = threading.Event()
    for _ in range(50):
        if loop.interrupted:
            break
        deadline.wait(0.1)
    assert loop.interrupted


def test_a_signal_while_the_interpreter_shuts_down_does_not_raise(monkeypatch: Any) -> None:
    """No thread can start while the interpreter shuts down (a second signal racing the
    exit): the handler still records the level and raises nothing into the main thread."""

    def refuse(*args: object) -> int:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(_signal_safe._thread, "start_new_thread", refuse)
    pool = WorkerPool([])
    pool._on_signal(signal.SIGTERM, None)
    assert pool.level == GRACEFUL
