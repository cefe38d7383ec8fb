"""Hand a signal handler's work to a new thread, so that the handler takes no lock.

A Python signal handler runs in the main thread between two bytecodes, wherever that
thread happens to be: possibly inside ``threading.Event.wait`` just after it took the
event's condition lock back, inside a logging handler, or inside a ``with lock:`` block.
If the handler then takes the same non-reentrant lock (``Event.set()``, ``Worker.stop()``,
a log line), the main thread waits for itself forever. So handlers here only update plain
attributes and start a bare thread (``_thread.start_new_thread``, which takes no Python
lock) to do the rest; that thread waits, if it must, until the main thread lets go.
"""

from __future__ import annotations

import _thread
import contextlib
from collections.abc import Callable


def run_off_handler(action: Callable[[], object]) -> None:
    """Run ``action`` in a new thread and return at once; for use in signal handlers.

    Limits: ``action`` runs a moment later, in no particular order with another one
    started by a later signal; an exception it raises goes to ``sys.unraisablehook``.
    While the interpreter shuts down no thread can start: ``action`` is dropped then
    (the process is ending; there is nothing left to wake or stop).
    """
    with contextlib.suppress(RuntimeError):  # "can't create new thread at ... shutdown"
        _thread.start_new_thread(action, ())
