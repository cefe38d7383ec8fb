"""Raise an exception inside another thread (CPython's PyThreadState_SetAsyncExc).

Cancelling a pending exception is subtle: ``PyThreadState_SetAsyncExc(id, NULL)`` leaves
the interpreter's "async exception pending" signal set when nothing was pending, and on
CPython 3.11 that stale signal makes every later eval-breaker check take the slow path,
and loops forever at the next function entry under ``sys.settrace`` (coverage, debuggers).
``drain_pending`` cancels without that flaw: it swaps in a private exception and lets the
interpreter deliver it at once, which clears the signal the normal way.
"""

from __future__ import annotations

import ctypes
import threading


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Schedule ``exc_type`` in thread ``thread_id``.

    The interpreter delivers it at the thread's next bytecode boundary: a blocking C call
    (``time.sleep``, a socket read) is not broken until it returns.
    """
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )


class _Drained(BaseException):
    """Replaces a pending exception so that ``drain_pending`` can swallow it."""


def _tick() -> None:
    """A Python call: its entry is a point where pending exceptions are delivered."""


def drain_pending() -> None:
    """Cancel any exception pending for the calling thread, and clear the signal.

    Must run in the thread that may have one pending (a job's own ``finally``).
    """
    try:
        raise_in_thread(threading.get_ident(), _Drained)
        for _ in range(1000):  # delivered at the first call; the bound is a safety net
            _tick()
    except _Drained:
        pass
