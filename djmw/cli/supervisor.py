"""Run N worker processes (``djmw work --processes N``), like ``script/delayed_job -n N``.

The supervisor starts each child as ``python -m djmw work ... --process-index i
--control-fd F``, with one end of a socket pair as its control channel
(``djmw.cli.pool.ControlChannel``).

Signals: each SIGTERM or SIGINT the supervisor receives raises the fleet's shutdown
level by one (1 graceful, 2 hard), SIGQUIT sets it to 3 (quit at once), and the level is
sent to every child, which takes the higher of it and the signals it got itself. So one
Ctrl-C at a terminal, or one TERM to the whole process group or control group, is
graceful whichever processes it reaches; a second one is hard.

Crashes: a child that exits non-zero while no shutdown was asked for is restarted after
a backoff of 1 s, doubling with each consecutive crash of that child up to 60 s (a child
that ran at least 60 s starts again from 1 s). Each crash is logged with its exit status
or signal; the child's own last line says why. After ``max_crashes`` crashes within
``crash_window`` seconds the supervisor stops the fleet gracefully and exits 1.

At the end it logs the fleet's totals: jobs processed, succeeded and failed, by every
child it started. It exits 0 when every child's last run exited 0.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import attrs

from djmw.cli.pool import GRACEFUL, HARD, QUIT, SHUTDOWN_SIGNALS
from djmw.logs import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)

#: The first restart delay after a crash, and the most it doubles to.
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0


@attrs.define(eq=False)
class _Child:
    """One child slot: its current process, control socket and crash history."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    control: socket.socket | None = None
    started_at: float = 0.0
    crashes: int = 0
    restart_at: float | None = None
    exit_code: int | None = None
    buffer: bytes = b""
    #: (succeeded, failed) of the current process and of every earlier one.
    totals: tuple[int, int] = (0, 0)
    earlier: tuple[int, int] = (0, 0)
    starts: int = 0


def describe_exit(code: int) -> str:
    """Say how a child ended: ``exited with status 1`` or ``was killed by signal 9 (SIGKILL)``."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-code}{name}"


def restart_delay(crashes: int) -> float:
    """The backoff before restarting a child after its ``crashes``-th consecutive crash."""
    return float(min(RESTART_DELAY * 2 ** max(crashes - 1, 0), MAX_RESTART_DELAY))


class Supervisor:
    """Start, watch and stop N ``djmw work`` child processes.

    Args:
        child_args: the ``djmw`` arguments of one child, without ``--processes``.
        processes: how many children.
        max_crashes: crashes within ``crash_window`` that make the supervisor give up.
        crash_window: seconds over which crashes are counted.
    """

    def __init__(
        self,
        child_args: Sequence[str],
        processes: int,
        *,
        max_crashes: int = 10,
        crash_window: float = 300.0,
    ) -> None:
        self.child_args = list(child_args)
        self.processes = processes
        self.max_crashes = max_crashes
        self.crash_window = crash_window
        self.children = [_Child(index) for index in range(processes)]
        self._signals = 0
        self._quit = False
        self._sent_level = 0
        self._gave_up = False
        self._crash_times: collections.deque[float] = collections.deque()

    @property
    def level(self) -> int:
        """The fleet's shutdown level: 0 running, 1 graceful, 2 hard, 3 quit."""
        if self._quit:
            return QUIT
        level = min(self._signals, HARD)
        return max(level, GRACEFUL) if self._gave_up else level

    def _spawn(self, child: _Child) -> None:
        ours, theirs = socket.socketpair()
        command = [
            sys.executable,
            "-m",
            "djmw",
            *self.child_args,
            "--process-index",
            str(child.index),
            "--control-fd",
            str(theirs.fileno()),
        ]
        # The child starts with the shutdown signals blocked (the mask survives exec): one
        # that reaches it while Python starts stays pending instead of killing it half-way,
        # and its pool takes it once its handlers are in place. Here they are only held
        # back for the time of the fork.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)
        try:
            # Our own interpreter and arguments.
            child.process = subprocess.Popen(command, pass_fds=(theirs.fileno(),))  # noqa: S603
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            theirs.close()
        ours.setblocking(False)
        child.control, child.buffer = ours, b""
        child.started_at, child.restart_at, child.exit_code = time.monotonic(), None, None
        child.earlier = (child.earlier[0] + child.totals[0], child.earlier[1] + child.totals[1])
        child.totals = (0, 0)
        child.starts += 1
        if self.level:
            self._send(child, self.level)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGQUIT:
            self._quit = True
        else:
            self._signals += 1

    def run(self) -> int:
        """Run until every child has exited after a shutdown; return the exit code."""
        for signum in SHUTDOWN_SIGNALS:
            signal.signal(signum, self._on_signal)
        for child in self.children:
            self._spawn(child)
        while not all(self._finished(child) for child in self.children):
            time.sleep(0.1)
            self._broadcast()
            for child in self.children:
                self._read(child)
                self._watch(child)
        self._log_totals()
        if self._gave_up:
            return 1
        return 0 if all(child.exit_code == 0 for child in self.children) else 1

    def _finished(self, child: _Child) -> bool:
        return child.exit_code is not None and child.restart_at is None

    def _broadcast(self) -> None:
        level = self.level
        if level > self._sent_level:
            self._sent_level = level
            for child in self.children:
                self._send(child, level)

    def _send(self, child: _Child, level: int) -> None:
        if child.control is None:
            return
        try:
            child.control.setblocking(True)
            child.control.sendall(json.dumps({"level": level}).encode() + b"\n")
            child.control.setblocking(False)
        except OSError:  # the child is gone; its exit is handled by _watch
            pass

    def _read(self, child: _Child) -> None:
        if child.control is None:
            return
        while True:
            try:
                data = child.control.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                break
            child.buffer += data
        *lines, child.buffer = child.buffer.split(b"\n")
        for line in lines:
            try:
                report = json.loads(line)
                child.totals = (int(report["succeeded"]), int(report["failed"]))
            except (ValueError, KeyError, TypeError):
                continue

    def _watch(self, child: _Child) -> None:
        now = time.monotonic()
        if child.restart_at is not None:
            if self.level:
                # Shutting down: it stays stopped. Its crash was logged and handled (the
                # restart was pending), so it does not make a graceful stop a failure.
                child.restart_at, child.exit_code = None, 0
            elif now >= child.restart_at:
                self._spawn(child)
            return
        if child.process is None or child.exit_code is not None:
            return
        code = child.process.poll()
        if code is None:
            return
        self._read(child)
        if child.control is not None:
            child.control.close()
            child.control = None
        child.exit_code = code
        if code == 0 or self.level:
            return
        self._crashed(child, code, now)

    def _crashed(self, child: _Child, code: int, now: float) -> None:
        pid = child.process.pid if child.process is not None else 0
        ran = now - child.started_at
        child.crashes = 1 if ran >= MAX_RESTART_DELAY else child.crashes + 1
        self._crash_times.append(now)
        while self._crash_times and self._crash_times[0] < now - self.crash_window:
            self._crash_times.popleft()
        crashes = len(self._crash_times)
        if crashes >= self.max_crashes:
            logger.error(
                "worker process %d (pid %d) %s after %.1f s; %d crashes within %g s: "
                "stopping the other worker processes and exiting",
                child.index,
                pid,
                describe_exit(code),
                ran,
                crashes,
                self.crash_window,
            )
            self._gave_up = True
            return
        delay = restart_delay(child.crashes)
        logger.error(
            "worker process %d (pid %d) %s after %.1f s; restarting it in %g s "
            "(crash %d of %d allowed within %g s)",
            child.index,
            pid,
            describe_exit(code),
            ran,
            delay,
            crashes,
            self.max_crashes,
            self.crash_window,
        )
        child.restart_at = now + delay

    def _log_totals(self) -> None:
        succeeded = sum(child.earlier[0] + child.totals[0] for child in self.children)
        failed = sum(child.earlier[1] + child.totals[1] for child in self.children)
        starts = sum(child.starts for child in self.children)
        logger.info(
            "Fleet of %d worker processes (%d started, pid %d): %d jobs processed, "
            "%d succeeded, %d failed",
            self.processes,
            starts,
            os.getpid(),
            succeeded + failed,
            succeeded,
            failed,
        )
