"""Raise an exception inside another thread (CPython's PyThreadState_SetAsyncExc)."""

from __future__ import annotations

import ctypes


def raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Schedule ``exc_type`` in thread ``thread_id``; None cancels a pending one.

    The interpreter delivers it at the thread's next bytecode boundary: a blocking C call
    (``time.sleep``, a socket read) is not broken until it returns.
    """
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )
