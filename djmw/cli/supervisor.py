"""Run N worker processes (``djmw work --processes N``), like ``script/delayed_job -n N``.

The supervisor starts each child as ``python -m djmw work ... --process-index i``,
forwards SIGTERM/SIGINT to all of them (a second signal is forwarded too, which makes
the children interrupt their jobs), and restarts a child that dies while no shutdown
was asked for and that exited non-zero, after a short backoff. It exits 0 when every child exited 0.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from djmw.logs import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)

RESTART_DELAY = 1.0


class Supervisor:
    """Start, watch and stop N ``djmw work`` child processes.

    Args:
        child_args: the ``djmw`` arguments of one child, without ``--processes``.
        processes: how many children.
    """

    def __init__(self, child_args: Sequence[str], processes: int) -> None:
        self.child_args = list(child_args)
        self.processes = processes
        self.children: list[subprocess.Popen[bytes] | None] = [None] * processes
        self._signals = 0

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "djmw", *self.child_args, "--process-index", str(index)]
        return subprocess.Popen(command)  # noqa: S603 - our own interpreter and arguments

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        """Run until every child has exited after a shutdown; return the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.children = [self._spawn(index) for index in range(self.processes)]
        codes: dict[int, int] = {}
        while len(codes) < self.processes:
            time.sleep(0.1)
            for index, child in enumerate(self.children):
                if child is None or index in codes:
                    continue
                code = child.poll()
                if code is None:
                    continue
                if code == 0 or self._signals:
                    codes[index] = code
                    continue
                logger.error(
                    "worker process %d (pid %d) exited with %d; restarting it",
                    index,
                    child.pid,
                    code,
                )
                time.sleep(RESTART_DELAY)
                self.children[index] = self._spawn(index)
        return 0 if all(code == 0 for code in codes.values()) else 1
