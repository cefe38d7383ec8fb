"""Signals to real ``djmw work`` processes, on MariaDB and SQLite, by each delivery path.

A terminal's Ctrl-C sends SIGINT to every process of the foreground group, and systemd's
default ``KillMode=control-group`` sends TERM to every process of the service: under
``--processes`` the supervisor and each child receive the same signal at once. One such
event must stay graceful (the running job finishes and is recorded, exit 0); a second,
distinct signal is hard (the job is interrupted, its row unlocked with attempts
unchanged, exit 1); SIGQUIT stops at once (row unlocked, no attempt charged, exit 1).
Each case runs with the signal sent to the supervisor (or single process) only, and to
the whole process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_handlers import runs
from procs import ROOT, children, finish, wait_for, work

from djmw.backends.base import SqlBackend

DELIVERY = ["supervisor", "group"]


def _send(proc: subprocess.Popen[bytes], signum: int, delivery: str) -> None:
    if delivery == "group":
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)


def _start(
    proc_url: str, db: SqlBackend, tmp_path: Path, seconds: float, processes: str
) -> tuple[int, subprocess.Popen[bytes], Path]:
    job_id = db.enqueue(f"--- !ruby/struct:SleepJob\nseconds: {seconds}\n")
    log = tmp_path / "work.log"
    args = ["--sleep-delay", "0.1", "--grace", "60", "--processes", processes]
    proc = work(proc_url, *args, log=log)
    wait_for(lambda: len(runs(proc_url)) == 1, 30, "the job to start")
    return job_id, proc, log


@pytest.mark.parametrize("processes", ["1", "2"])
@pytest.mark.parametrize("delivery", DELIVERY)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_one_signal_is_graceful(
    proc_url: str,
    db: SqlBackend,
    tmp_path: Path,
    *,
    processes: str,
    delivery: str,
    signum: int,
) -> None:
    """One INT (Ctrl-C) or TERM, to the supervisor or to the whole group: the running job
    finishes and is recorded (row deleted), nothing is left locked, exit 0."""
    job_id, proc, log = _start(proc_url, db, tmp_path, 2, processes)
    _send(proc, signum, delivery)
    assert finish(proc) == 0, log.read_text()
    assert db.job(job_id) is None
    assert [attempt for _, attempt, _, _ in runs(proc_url)] == [0]
    text = log.read_text()
    assert f"Job SleepJob (id={job_id}) COMPLETED" in text
    assert "Interrupting" not in text


@pytest.mark.parametrize("processes", ["1", "2"])
@pytest.mark.parametrize("delivery", DELIVERY)
def test_a_second_distinct_signal_is_hard(
    proc_url: str, db: SqlBackend, tmp_path: Path, processes: str, delivery: str
) -> None:
    """TERM, then a separate INT: the job is interrupted, its row unlocked with attempts 0
    and no last_error, and the interrupted line names the job; exit 1."""
    job_id, proc, log = _start(proc_url, db, tmp_path, 60, processes)
    _send(proc, signal.SIGTERM, delivery)
    wait_for(lambda: "Exiting..." in log.read_text(), 30, "the graceful stop to begin")
    _send(proc, signal.SIGINT, delivery)
    assert finish(proc) == 1, log.read_text()
    row = db.job(job_id)
    assert row is not None
    assert (row.attempts, row.locked_by, row.locked_at, row.last_error) == (0, None, None, None)
    text = log.read_text()
    assert f"Job SleepJob (id={job_id}) interrupted by shutdown" in text
    assert "<unknown job>" not in text


@pytest.mark.parametrize("processes", ["1", "2"])
@pytest.mark.parametrize("delivery", DELIVERY)
def test_sigquit_stops_at_once(
    proc_url: str, db: SqlBackend, tmp_path: Path, processes: str, delivery: str
) -> None:
    """QUIT: no grace period; the running job's row is unlocked with attempts unchanged
    and the process exits 1 while the job still had a minute to run."""
    job_id, proc, log = _start(proc_url, db, tmp_path, 60, processes)
    _send(proc, signal.SIGQUIT, delivery)
    assert finish(proc, timeout=20) == 1, log.read_text()
    row = db.job(job_id)
    assert row is not None
    assert (row.attempts, row.locked_by, row.locked_at, row.last_error) == (0, None, None, None)
    assert "SIGQUIT" in log.read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_while_the_children_start_is_graceful(
    proc_url: str, db: SqlBackend, tmp_path: Path, signum: int
) -> None:
    """A group signal sent the moment the children exist, while they are still loading
    Python: nobody dies half-way with a traceback, nothing is restarted, exit 0."""
    log = tmp_path / "work.log"
    proc = work(proc_url, "--processes", "2", "--sleep-delay", "0.1", log=log)
    wait_for(lambda: len(children(proc.pid)) == 2, 60, "the supervisor to start its children")
    os.killpg(proc.pid, signum)
    assert finish(proc) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text
    assert "restarting" not in text


RUN_SCRIPT = """
import sys, djmw
from tests.crash_handlers import handlers
worker = djmw.Worker(database=sys.argv[1], handlers=handlers, sleep_delay=0.1)
worker.run()
print("status", worker.status)
"""


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_worker_run_in_the_main_thread(
    proc_url: str, db: SqlBackend, tmp_path: Path, presses: int
) -> None:
    """Worker.run() in a script's main thread: one Ctrl-C lets the job finish (row
    deleted), a second interrupts it (row unlocked, attempts 0); never a failed attempt."""
    job_id = db.enqueue("--- !ruby/struct:SleepJob\nseconds: 2\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJMW_RECORD_URL": proc_url}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, proc_url],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    wait_for(lambda: len(runs(proc_url)) == 1, 30, "the job to start")
    for _ in range(presses):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
    out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert "status stopped" in out
    row = db.job(job_id)
    if presses == 1:
        assert row is None
    else:
        assert row is not None
        assert (row.attempts, row.locked_by, row.last_error) == (0, None, None)
