"""Crash accounting and the worker registry with real `djmw work` processes, on every database.

Each test starts worker processes with ``tests.rescue_handlers``, which record every run
in a ``job_log`` table of the same database before the job does anything else, kills or
pauses them with real signals, and checks the rows afterwards. Short registry intervals
(``--heartbeat-interval``, ``--dead-worker-timeout``) keep the tests quick; the recovery
times they print are measured, not asserted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rescue_handlers import create_job_log, job_log

from djmw.backends import open_backend
from djmw.backends.base import SqlBackend

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "delayed_workers"
SLEEP_30 = "--- !ruby/struct:SleepJob\nseconds: 30\n"
SLEEP_0 = "--- !ruby/struct:SleepJob\nseconds: 0\n"
NOOP = "--- !ruby/struct:NoopJob\nn: 1\n"


@pytest.fixture
def db(db_url: str) -> SqlBackend:
    """delayed_jobs, delayed_workers and job_log in a fresh database."""
    backend = open_backend(db_url)
    backend.create_schema()
    backend.check_schema()
    create_job_log(db_url)
    return backend


def djmw(url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``djmw work`` on ``url`` with the crash handlers, output to ``log``."""
    env = {**os.environ, "DJMW_RECORD_URL": url, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    command = [sys.executable, "-m", "djmw", "work", "--database", url]
    command += ["--handlers", "rescue_handlers:handlers", "--sleep-delay", "0.2", *args]
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait until ``condition()``; return the seconds it took, fail after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def stop(proc: subprocess.Popen[bytes]) -> int:
    """TERM a worker (or supervisor) and return its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def test_poison_job_fails_after_three_crashes_under_processes(
    db_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """A handler that SIGKILLs its own process, max_attempts 3 from its config(), under
    `--processes 2` with the default (pid-based) names: every crash is charged by a live
    worker through the registry, so after three crashes the row is failed with attempts 3
    and `worker <name> died while running this job`; every other job ran exactly once,
    and the fleet still runs jobs enqueued afterwards."""
    poison = db.enqueue("--- !ruby/struct:PoisonJob {}\n")
    others = [db.enqueue(NOOP) for _ in range(20)]
    log = tmp_path / "fleet.log"
    registry = ("--heartbeat-interval", "0.5", "--dead-worker-timeout", "2")
    fleet = djmw(db_url, log, "--processes", "2", *registry)
    try:
        waited = wait_for(
            lambda: (row := db.job(poison)) is not None and row.failed_at is not None,
            180,
            "the poison job to fail",
        )
        row = db.job(poison)
        assert row is not None
        assert row.attempts == 3
        assert row.last_error is not None
        assert row.last_error.startswith("worker host:")
        assert row.last_error.endswith(" died while running this job")
        runs = job_log(db_url)
        poison_runs = [(attempt, pid) for job_id, attempt, pid, _ in runs if job_id == poison]
        assert [attempt for attempt, _ in poison_runs] == [0, 1, 2]
        assert len({pid for _, pid in poison_runs}) == 3  # three processes died
        assert sorted(job_id for job_id, *_ in runs if job_id != poison) == others
        later = [db.enqueue(NOOP) for _ in range(5)]
        wait_for(lambda: all(db.job(j) is None for j in later), 60, "the fleet to run new jobs")
    finally:
        status = stop(fleet)
    assert status == 0, log.read_text()
    assert sorted(j for j, *_ in job_log(db_url) if j != poison) == sorted(others + later)
    assert db.workers(REGISTRY) == []
    print(f"\npoison job failed after 3 crashes in {waited:.1f} s, attempts {row.attempts}")


def test_same_name_restart_charges_the_crash(db_url: str, db: SqlBackend, tmp_path: Path) -> None:
    """kill -9 mid-job, restart under the same name: at start the worker charges the job
    its earlier incarnation held (attempts 1, `worker w1 died while running this job`) and
    runs it again after the backoff (6 s after the crash)."""
    job_id = db.enqueue(SLEEP_30)
    log = tmp_path / "w1.log"
    first = djmw(db_url, log, "--name", "w1")
    wait_for(lambda: len(job_log(db_url)) == 1, 30, "the job to start")
    first.kill()
    first.wait()
    db._execute(f"UPDATE delayed_jobs SET handler = {db.mark} WHERE id = {job_id}", [SLEEP_0])
    killed = time.monotonic()
    again = djmw(db_url, log, "--name", "w1")
    try:
        wait_for(lambda: db.job(job_id) is None, 60, "the job to run again")
    finally:
        assert stop(again) == 0
    recovery = time.monotonic() - killed
    assert [(attempt, worker) for _, attempt, _, worker in job_log(db_url)] == [
        (0, "w1"),
        (1, "w1"),
    ]
    assert "Job SleepJob (id=1) FAILED (0 prior attempts) with WorkerDied: worker w1 died" in (
        log.read_text()
    )
    print(f"\nkill -9, restart with the same name: the job ran again {recovery:.1f} s later")


def test_kill_9_then_another_name_rescues_the_job(
    db_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """kill -9 mid-job, then another worker under a new name: it finds the dead worker's
    heartbeat older than the timeout and runs the job again with attempts + 1, within the
    timeout plus one poll of the crash; the dead worker's registry row is removed, and the
    live one's at its clean exit."""
    job_id = db.enqueue(SLEEP_30)
    registry = ("--heartbeat-interval", "1", "--dead-worker-timeout", "6")
    first = djmw(db_url, tmp_path / "a.log", "--name", "a", *registry)
    wait_for(lambda: len(job_log(db_url)) == 1, 30, "the job to start")
    assert [w.name for w in db.workers(REGISTRY)] == ["a"]
    first.kill()
    first.wait()
    killed = time.monotonic()
    db._execute(f"UPDATE delayed_jobs SET handler = {db.mark} WHERE id = {job_id}", [SLEEP_0])
    other = djmw(db_url, tmp_path / "b.log", "--name", "b", *registry)
    try:
        wait_for(lambda: len(job_log(db_url)) == 2, 60, "the job to run again")
        recovery = time.monotonic() - killed
        wait_for(lambda: db.job(job_id) is None, 30, "the job to finish")
        assert [w.name for w in db.workers(REGISTRY)] == ["b"]
    finally:
        assert stop(other) == 0
    assert [(attempt, worker) for _, attempt, _, worker in job_log(db_url)] == [(0, "a"), (1, "b")]
    assert db.workers(REGISTRY) == []
    text = (tmp_path / "b.log").read_text()
    assert "Job SleepJob (id=1) FAILED (0 prior attempts) with WorkerDied: worker a died" in text
    print(
        f"\nkill -9, another worker under a new name: the job ran again {recovery:.1f} s after "
        "the kill (dead_worker_timeout 6 s, heartbeat 1 s, sleep_delay 0.2 s)"
    )


def test_a_paused_worker_past_the_timeout_loses_its_job(
    db_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """While a worker beats, another worker leaves its long job alone, even past the
    timeout. Paused with SIGSTOP past the timeout, it is taken for dead: the other worker
    charges the attempt (max_attempts 1, so the job fails). Resumed, its late success is
    refused by the locked_by guard and logged, the row keeps the rescuer's outcome, it
    is registered again (its row kept or written anew), and nothing ran twice."""
    job_id = db.enqueue("--- !ruby/struct:PauseJob\nseconds: 6\nmax_attempts: 1\n")
    registry = ("--heartbeat-interval", "0.5", "--dead-worker-timeout", "2")
    paused = djmw(db_url, tmp_path / "a.log", "--name", "a", *registry)
    wait_for(lambda: len(job_log(db_url)) == 1, 30, "the job to start")
    rescuer = djmw(db_url, tmp_path / "b.log", "--name", "b", *registry)
    try:
        wait_for(lambda: len(db.workers(REGISTRY)) == 2, 30, "the second worker to register")
        time.sleep(3)  # past the timeout, while the first worker beats
        row = db.job(job_id)
        assert row is not None
        assert (row.locked_by, row.attempts, row.failed_at) == ("a", 0, None)
        paused.send_signal(signal.SIGSTOP)
        rescued = wait_for(
            lambda: (row := db.job(job_id)) is not None and row.failed_at is not None,
            30,
            "the job to be rescued",
        )
        paused.send_signal(signal.SIGCONT)
        wait_for(
            lambda: "no longer locked by a" in (tmp_path / "a.log").read_text(),
            30,
            "the paused worker's refused write",
        )
        wait_for(lambda: "a" in [w.name for w in db.workers(REGISTRY)], 30, "it to register again")
    finally:
        os.kill(paused.pid, signal.SIGCONT)
        statuses = (stop(paused), stop(rescuer))
    assert statuses == (0, 0)
    row = db.job(job_id)
    assert row is not None
    assert row.failed_at is not None
    assert row.attempts == 1
    assert row.last_error == "worker a died while running this job"
    assert [(attempt, worker) for _, attempt, _, worker in job_log(db_url)] == [(0, "a")]
    print(f"\nSIGSTOP: the paused worker's job was rescued {rescued:.1f} s after the pause")


@pytest.mark.parametrize("rescuer", ["w1", "w2"], ids=["same-name", "new-name"])
def test_a_batch_claim_crash_charges_only_the_running_job(
    db_url: str, db: SqlBackend, tmp_path: Path, rescuer: str
) -> None:
    """kill -9 a `--prefetch 5` worker while it runs the second of five rows it claimed
    together: the rescuer (the same name restarting, or another worker through the
    registry) charges the running row only (attempts 1, WorkerDied); the three rows it had
    claimed ahead and not started are given back with attempts unchanged, and all run."""
    ids = [db.enqueue(handler) for handler in (NOOP, SLEEP_30, NOOP, NOOP, NOOP)]
    registry = ("--heartbeat-interval", "1", "--dead-worker-timeout", "6")
    log = tmp_path / "w.log"
    first = djmw(db_url, log, "--name", "w1", "--prefetch", "5", *registry)
    wait_for(lambda: len(job_log(db_url)) == 2, 30, "the second job to start")
    first.kill()
    first.wait()
    held = [job.id for job in db.locked_jobs("w1")]
    assert held == ids[1:]  # the running row and the three claimed ahead
    db._execute(f"UPDATE delayed_jobs SET handler = {db.mark} WHERE id = {ids[1]}", [SLEEP_0])
    again = djmw(db_url, log, "--name", rescuer, *registry)
    try:
        wait_for(lambda: db.jobs() == [], 60, "every job to run")
    finally:
        assert stop(again) == 0
    runs = sorted((job_id, attempt) for job_id, attempt, _, _ in job_log(db_url))
    assert runs == [
        (ids[0], 0),
        (ids[1], 0),
        (ids[1], 1),
        (ids[2], 0),
        (ids[3], 0),
        (ids[4], 0),
    ]
    text = log.read_text()
    assert f"Job SleepJob (id={ids[1]}) FAILED (0 prior attempts) with WorkerDied" in text
    assert "Gave back 3 jobs that worker w1 had claimed ahead and not started" in text
    assert text.count("WorkerDied") == 1
