"""Run several workers in one process and shut them down on signals, with a grace period.

The shutdown level of the process only goes up, and duplicates of one event count once:

- level 1, graceful: every worker stops reserving; running jobs finish and their outcomes
  are recorded, locks are cleared, and the process exits 0. The first SIGTERM or SIGINT.
- level 2, hard: running jobs are interrupted and their rows unlocked with attempts
  unchanged; the process exits 1. A second SIGTERM or SIGINT, or the end of the grace
  period after level 1.
- level 3, quit: SIGQUIT. The same as hard, at once: no wait for jobs to unwind beyond a
  moment, rows unlocked from a fresh connection, exit 1.

Under ``djmw work --processes N`` the supervisor sends each child its own level over a
control socket, and the child takes the higher of that and the signals it got itself. A
terminal's Ctrl-C, or systemd's TERM to the whole control group, reaches the supervisor
and every child at once: each counts it once, so one Ctrl-C stays graceful. The child
reports its job totals back on the same socket, and stops gracefully if the socket
closes (the supervisor is gone).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from djmw._signal_safe import run_off_handler
from djmw.errors import DjmwError
from djmw.logs import LOGGER_NAME
from djmw.worker import Worker

logger = logging.getLogger(LOGGER_NAME)

#: How long interrupted workers get to unlock their rows before the process gives up.
INTERRUPT_WAIT = 5.0
#: How long SIGQUIT lets interrupted jobs unwind before unlocking from outside.
QUIT_WAIT = 1.0
#: Shutdown levels (see the module docstring).
GRACEFUL, HARD, QUIT = 1, 2, 3
#: The signals that stop workers.
SHUTDOWN_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
#: How often a child sends its totals to the supervisor (when they changed).
REPORT_EVERY = 0.1


class ControlChannel:
    """A child's end of the supervisor's control socket: levels in, totals out.

    Messages are JSON lines: ``{"level": n}`` from the supervisor, ``{"succeeded": s,
    "failed": f}`` from the child. ``closed`` turns True at end of file.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.closed = False
        self._buffer = b""

    def levels(self) -> list[int]:
        """Return the levels received since the last call (non-blocking)."""
        received: list[int] = []
        while not self.closed:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                level = json.loads(line).get("level")
            except (ValueError, AttributeError):
                continue
            if isinstance(level, int):
                received.append(level)
        return received

    def report(self, succeeded: int, failed: int) -> None:
        """Send this process's job totals; a supervisor that is gone is ignored."""
        line = json.dumps({"succeeded": succeeded, "failed": failed}).encode() + b"\n"
        try:
            self.sock.setblocking(True)
            self.sock.sendall(line)
        except OSError:
            self.closed = True
        finally:
            self.sock.setblocking(False)


class WorkerPool:
    """Threads of workers in this process, each with its own connection and name.

    Args:
        workers: the workers (not started); names must be unique.
        grace: seconds running jobs get to finish after the first signal.
        control: the supervisor's control channel, for a ``--processes`` child.

    Note:
        Signal handlers can only be installed from the main thread; ``run`` must be
        called there. A job blocked in a C call ignores the interrupt; after
        ``INTERRUPT_WAIT`` seconds its row is unlocked from a new connection and the
        process exits 1 anyway (the job's thread dies with the process).
    """

    def __init__(
        self,
        workers: Sequence[Worker],
        *,
        grace: float = 30.0,
        control: ControlChannel | None = None,
    ) -> None:
        self.workers = list(workers)
        self.grace = grace
        self.control = control
        self._signals = 0
        self._supervisor_level = 0
        self._quit = False
        self._wake = threading.Event()
        self._reported: tuple[int, int] | None = None
        self._reported_at = 0.0

    @property
    def level(self) -> int:
        """The shutdown level: 0 running, 1 graceful, 2 hard, 3 quit."""
        if self._quit:
            return QUIT
        return min(max(self._signals, self._supervisor_level), HARD)

    @property
    def totals(self) -> tuple[int, int]:
        """Jobs run by this process's workers: (succeeded, failed)."""
        return (
            sum(worker.totals[0] for worker in self.workers),
            sum(worker.totals[1] for worker in self.workers),
        )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Plain attributes only: the main thread may be inside ``self._wake.wait`` holding
        # the event's lock right now, so setting the event here could wait forever.
        if signum == signal.SIGQUIT:
            self._quit = True
        else:
            self._signals += 1
        run_off_handler(self._wake.set)

    def install_signal_handlers(self) -> None:
        """Route SIGTERM, SIGINT and SIGQUIT to this pool.

        Then unblock them: a supervisor starts its children with them blocked, so that
        one sent while the child was starting is taken here, once.
        """
        for signum in SHUTDOWN_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)

    def run(self, *, install_signals: bool = True) -> int:
        """Start every worker, wait, handle signals; return the process exit code."""
        for worker in self.workers:
            worker.prepare()
        if install_signals:
            self.install_signal_handlers()
        self._listen()
        if self.level:  # told to stop while it was starting: start nothing
            return 0
        for worker in self.workers:
            worker.start()
        try:
            return self._watch()
        finally:
            self._report(final=True)

    def _watch(self) -> int:
        deadline: float | None = None
        while any(worker.alive for worker in self.workers):
            self._wake.wait(0.1)
            self._wake.clear()
            self._listen()
            level = self.level
            if level >= QUIT:
                return self._quit_now()
            if deadline is None and (level >= GRACEFUL or self._crashed()):
                deadline = time.monotonic() + self.grace
                for worker in self.workers:
                    worker.stop()
            if level >= HARD or (deadline is not None and time.monotonic() > deadline):
                return self._hard_stop()
            self._report()
        return 0 if all(w.status in ("stopped", "done") for w in self.workers) else 1

    def _crashed(self) -> bool:
        return any(worker.status == "crashed" for worker in self.workers)

    def _listen(self) -> None:
        if self.control is None or self.control.closed:
            return
        for level in self.control.levels():
            self._supervisor_level = max(self._supervisor_level, level)
            if level >= QUIT:
                self._quit = True
        if self.control.closed and self._supervisor_level < GRACEFUL:
            logger.error("The supervisor is gone; stopping this worker process")
            self._supervisor_level = GRACEFUL

    def _report(self, *, final: bool = False) -> None:
        if self.control is None:
            if final and len(self.workers) > 1:
                succeeded, failed = self.totals
                logger.info(
                    "%d workers: %d jobs processed, %d succeeded, %d failed",
                    len(self.workers),
                    succeeded + failed,
                    succeeded,
                    failed,
                )
            return
        totals = self.totals
        now = time.monotonic()
        if totals != self._reported and (final or now - self._reported_at >= REPORT_EVERY):
            self.control.report(*totals)
            self._reported, self._reported_at = totals, now

    def _hard_stop(self) -> int:
        return self._interrupt_all(
            "Interrupting running jobs; their rows are unlocked, attempts unchanged",
            INTERRUPT_WAIT,
        )

    def _quit_now(self) -> int:
        return self._interrupt_all(
            "SIGQUIT: interrupting running jobs and unlocking their rows at once", QUIT_WAIT
        )

    def _interrupt_all(self, message: str, wait: float) -> int:
        """Interrupt every worker's job; unlock from outside the rows of any still running
        after ``wait`` seconds. Returns the exit code of a hard stop, 1."""
        logger.info(message)
        for worker in self.workers:
            worker.interrupt()
        deadline = time.monotonic() + wait
        for worker in self.workers:
            worker.join(max(deadline - time.monotonic(), 0.0))
        for worker in self.workers:
            if worker.alive:
                _unlock_from_outside(worker)
        return 1


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
