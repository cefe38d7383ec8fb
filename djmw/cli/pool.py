"""Run several workers in one process and shut them down on signals, with a grace period.

First SIGTERM or SIGINT: every worker stops reserving; running jobs finish and their
outcomes are recorded, locks are cleared, and the process exits 0. A second signal, or
the end of the grace period: running jobs are interrupted and their rows unlocked with
attempts unchanged, and the process exits 1.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from djmw.errors import DjmwError
from djmw.logs import LOGGER_NAME
from djmw.worker import Worker

logger = logging.getLogger(LOGGER_NAME)

#: How long interrupted workers get to unlock their rows before the process gives up.
INTERRUPT_WAIT = 5.0


class WorkerPool:
    """Threads of workers in this process, each with its own connection and name.

    Args:
        workers: the workers (not started); names must be unique.
        grace: seconds running jobs get to finish after the first signal.

    Note:
        Signal handlers can only be installed from the main thread; ``run`` must be
        called there. A job blocked in a C call ignores the interrupt; after
        ``INTERRUPT_WAIT`` seconds its row is unlocked from a new connection and the
        process exits 1 anyway (the job's thread dies with the process).
    """

    def __init__(self, workers: Sequence[Worker], *, grace: float = 30.0) -> None:
        self.workers = list(workers)
        self.grace = grace
        self._signals = 0
        self._wake = threading.Event()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self._wake.set()

    def install_signal_handlers(self) -> None:
        """Route SIGTERM and SIGINT to this pool."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def run(self, *, install_signals: bool = True) -> int:
        """Start every worker, wait, handle signals; return the process exit code."""
        for worker in self.workers:
            worker.prepare()
        if install_signals:
            self.install_signal_handlers()
        for worker in self.workers:
            worker.start()
        deadline: float | None = None
        while any(_alive(worker) for worker in self.workers):
            self._wake.wait(0.2)
            self._wake.clear()
            if self._signals >= 1 and deadline is None:
                deadline = time.monotonic() + self.grace
                for worker in self.workers:
                    worker.stop()
            if any(worker.status == "crashed" for worker in self.workers) and deadline is None:
                deadline = time.monotonic() + self.grace
                for worker in self.workers:
                    worker.stop()
            if self._signals >= 2 or (deadline is not None and time.monotonic() > deadline):
                return self._hard_stop()
        return 0 if all(w.status in ("stopped", "done") for w in self.workers) else 1

    def _hard_stop(self) -> int:
        logger.info("Interrupting running jobs; their rows are unlocked, attempts unchanged")
        for worker in self.workers:
            worker.interrupt()
        deadline = time.monotonic() + INTERRUPT_WAIT
        for worker in self.workers:
            worker.join(max(deadline - time.monotonic(), 0.0))
        stuck = [worker for worker in self.workers if _alive(worker)]
        for worker in stuck:
            _unlock_from_outside(worker)
        return 1


def _alive(worker: Worker) -> bool:
    return worker.alive


def _unlock_from_outside(worker: Worker) -> None:
    # The worker's own connection may be mid-statement in its stuck thread: use another.
    job = worker.current_job
    try:
        backend = worker.connect()
        try:
            if job is not None:
                backend.unlock(job)
            backend.clear_locks(worker.worker_name)
        finally:
            backend.close()
    except DjmwError as exc:
        logger.error("[Worker(%s)] could not unlock its rows: %s", worker.worker_name, exc)


def worker_names(base: str | None, count: int, default: Callable[[str], str]) -> list[str]:
    """Return ``count`` unique worker names.

    With one worker: ``base`` or the default ``host:<h> pid:<p>``. With several:
    ``<base>.<i>``, or delayed_job's daemon style ``djmw.<i> host:<h> pid:<p>``.
    """
    if count == 1:
        return [base or default("")]
    if base:
        return [f"{base}.{index}" for index in range(count)]
    return [default(f"djmw.{index} ") for index in range(count)]
