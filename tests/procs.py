"""Helpers for tests that run ``djmw`` as real processes (see tests/crash_handlers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = "tests.crash_handlers:handlers"


def djmw(
    command: Sequence[str],
    *,
    log: Path,
    url: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """Start ``python -m djmw <command>`` in its own process group, output to ``log``.

    With ``url``, the handlers of tests/crash_handlers.py record their runs there.
    """
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if url is not None:
        environment["DJMW_RECORD_URL"] = url
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "djmw", *command],
            env=environment,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def work(url: str, *args: str, log: Path, handlers: str = HANDLERS) -> subprocess.Popen[bytes]:
    """Start ``djmw work`` on ``url`` with the crash-test handlers."""
    return djmw(["work", "--database", url, "--handlers", handlers, *args], log=log, url=url)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """Wait for ``proc``; on a timeout kill its whole group and fail."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"djmw did not exit within {timeout} s")


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (Linux)."""
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found
