"""Real worker processes on MariaDB and PostgreSQL: concurrency, kill -9, signals, grace.

Each test starts ``python -m djmw work`` processes with ``tests.proc_handlers``, which
record every run in a ``job_log`` side table, and checks the rows afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from djmw.backends import open_backend
from djmw.backends.base import SqlBackend

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["mysql", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh MariaDB database, then a fresh PostgreSQL one: each test runs on both."""
    request.applymarker(getattr(pytest.mark, request.param))
    return str(request.getfixturevalue("mysql_url" if request.param == "mysql" else "pg_url"))


@pytest.fixture
def db(url: str) -> Iterator[SqlBackend]:
    """A backend with delayed_jobs and the job_log side table."""
    yield from proc_db(url)


def proc_db(url: str) -> Iterator[SqlBackend]:
    """Create delayed_jobs and job_log in ``url``; yield a backend on it."""
    backend = open_backend(url)
    backend.create_schema()
    backend.check_schema()
    key = "bigserial" if url.startswith("postgresql") else "bigint AUTO_INCREMENT"
    backend._execute(
        f"CREATE TABLE job_log (id {key} PRIMARY KEY, job_id bigint NOT NULL, "
        "attempt int NOT NULL, pid int NOT NULL, worker varchar(255))"
    )
    yield backend
    backend.close()


def djmw(url: str, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DJMW_RECORD_URL": url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "djmw", "work", "--database", url]
    command += ["--handlers", "tests.proc_handlers:handlers", *args]
    if log is None:
        return subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def bulk_insert(db: SqlBackend, handler: str, count: int) -> None:
    now = db._stamp(db.clock())
    rows = [(0, 0, handler, now, now, now)] * count
    with db.connection.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.executemany(
            "INSERT INTO delayed_jobs (priority, attempts, handler, run_at, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def log_rows(db: SqlBackend) -> list[tuple[int, int]]:
    return [
        (int(r[0]), int(r[1])) for r in db._query("SELECT job_id, attempt FROM job_log ORDER BY id")
    ]


def locked_rows(db: SqlBackend) -> int:
    return int(db._query("SELECT COUNT(*) FROM delayed_jobs WHERE locked_by IS NOT NULL")[0][0])


def test_four_processes_run_ten_thousand_jobs_exactly_once(
    url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """4 processes x 10,000 no-op jobs: every id runs once, nothing left, no lock, no failure."""
    bulk_insert(db, "--- !ruby/struct:NoopJob\nn: 1\n", 10_000)
    ids = {int(r[0]) for r in db._query("SELECT id FROM delayed_jobs")}
    log = tmp_path / "workers.log"
    started = time.monotonic()
    proc = djmw(url, "--processes", "4", "--exit-on-complete", "--sleep-delay", "0.2", log=log)
    assert proc.wait(timeout=600) == 0
    elapsed = time.monotonic() - started
    runs = [job_id for job_id, _ in log_rows(db)]
    assert len(runs) == len(set(runs)) == 10_000
    assert set(runs) == ids
    assert db._query("SELECT COUNT(*) FROM delayed_jobs")[0][0] == 0
    text = log.read_text()
    assert "FAILED" not in text
    deadlocks = text.count("Retrying a write after")
    reserve_errors = text.count("Error while reserving job")
    assert reserve_errors == 0
    print(
        f"\n10,000 jobs, 4 processes: {elapsed:.1f} s, {10_000 / elapsed:.0f} jobs/s, "
        f"{deadlocks} write retries, {reserve_errors} reserve errors"
    )


def test_threads_have_their_own_names_and_share_the_work(url: str, db: SqlBackend) -> None:
    """--threads 3: three workers in one process, named djmw.<i> host:<h> pid:<p>, each
    job run once."""
    bulk_insert(db, "--- !ruby/struct:NoopJob\nn: 1\n", 600)
    proc = djmw(url, "--threads", "3", "--exit-on-complete", "--sleep-delay", "0.2")
    assert proc.wait(timeout=300) == 0
    rows = db._query("SELECT job_id, pid, worker FROM job_log")
    assert len(rows) == len({row[0] for row in rows}) == 600
    names = {row[2] for row in rows}
    (pid,) = {row[1] for row in rows}
    assert names <= {f"djmw.{i} host:{socket.gethostname()} pid:{pid}" for i in range(3)}
    assert len(names) >= 2  # the threads really shared the queue
    assert locked_rows(db) == 0


def test_failing_jobs_record_every_attempt_once(url: str, db: SqlBackend, tmp_path: Path) -> None:
    """Jobs that fail twice then succeed: attempts 0, 1, 2 each recorded once per job."""
    config = tmp_path / "djmw.toml"
    config.write_text(
        "[worker]\nmiddlewares = [\n  'DecodeYAML', 'RunHooks', 'LogOutcome', 'MarkFailed',\n"
        "  { use = 'ScheduleRetry', backoff = { use = 'tenacity:wait_none' } },\n"
        "  'CountAttempts', 'EnforceTimeout',\n]\n"
    )
    bulk_insert(db, "--- !ruby/struct:FlakyJob\nfail_times: 2\n", 1_000)
    proc = djmw(
        url,
        "--config",
        str(config),
        "--processes",
        "4",
        "--exit-on-complete",
        "--sleep-delay",
        "0.2",
        log=tmp_path / "w.log",
    )
    assert proc.wait(timeout=600) == 0
    # exit_on_complete may leave a retry that became ready after a worker's last reserve.
    leftover = int(db._query("SELECT COUNT(*) FROM delayed_jobs")[0][0])
    if leftover:
        proc = djmw(url, "--config", str(config), "--exit-on-complete", "--sleep-delay", "0.2")
        assert proc.wait(timeout=120) == 0
    runs = log_rows(db)
    assert len(runs) == len(set(runs)) == 3_000
    per_job: dict[int, list[int]] = {}
    for job_id, attempt in runs:
        per_job.setdefault(job_id, []).append(attempt)
    assert all(sorted(attempts) == [0, 1, 2] for attempts in per_job.values())
    assert db._query("SELECT COUNT(*) FROM delayed_jobs")[0][0] == 0


def _start_sleep_job(
    url: str, db: SqlBackend, seconds: float, *args: str
) -> tuple[int, subprocess.Popen[bytes]]:
    job_id = db.enqueue(f"--- !ruby/struct:SleepJob\nseconds: {seconds}\n")
    proc = djmw(url, "--sleep-delay", "0.2", *args)
    wait_for(lambda: len(log_rows(db)) >= 1, 30, "the job to start")
    return job_id, proc


def test_kill_9_then_same_name_runs_the_job_again_at_once(url: str, db: SqlBackend) -> None:
    """kill -9 mid-job leaves the row locked; a restart with the same name runs it at once."""
    job_id, proc = _start_sleep_job(url, db, 30, "--name", "w1")
    proc.kill()
    proc.wait()
    row = db.job(job_id)
    assert row is not None
    assert (row.locked_by, row.attempts) == ("w1", 0)
    started = time.monotonic()
    db._execute(
        f"UPDATE delayed_jobs SET handler = %s WHERE id = {job_id}",
        ["--- !ruby/struct:SleepJob\nseconds: 0\n"],
    )
    again = djmw(url, "--name", "w1", "--exit-on-complete", "--sleep-delay", "0.2")
    assert again.wait(timeout=60) == 0
    recovery = time.monotonic() - started
    assert recovery < 30
    print(f"\nkill -9, restart with the same name: the job ran again within {recovery:.1f} s")
    assert [attempt for _, attempt in log_rows(db)] == [0, 0]
    assert db.job(job_id) is None


def test_kill_9_then_other_worker_takes_it_after_max_run_time(url: str, db: SqlBackend) -> None:
    """After kill -9, a differently named worker takes the job once the lock expires."""
    job_id, proc = _start_sleep_job(url, db, 30, "--name", "w1", "--max-run-time", "3")
    proc.kill()
    proc.wait()
    db._execute(
        f"UPDATE delayed_jobs SET handler = %s WHERE id = {job_id}",
        ["--- !ruby/struct:SleepJob\nseconds: 0\n"],
    )
    killed_at = time.monotonic()
    other = djmw(url, "--name", "w2", "--max-run-time", "3", "--sleep-delay", "0.2")
    wait_for(lambda: db.job(job_id) is None, 30, "the other worker to run the job")
    waited = time.monotonic() - killed_at
    print(
        f"\nkill -9, another worker with max_run_time 3 s: the job ran again after {waited:.1f} s"
    )
    other.send_signal(signal.SIGTERM)
    assert other.wait(timeout=30) == 0
    assert waited >= 1.0  # the lock was taken at most 3 s before the kill
    assert [attempt for _, attempt in log_rows(db)] == [0, 0]


def test_first_term_lets_the_job_finish_and_exits_0(url: str, db: SqlBackend) -> None:
    """TERM: the running job finishes and is recorded, locks are cleared, exit status 0."""
    job_id, proc = _start_sleep_job(url, db, 1.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert db.job(job_id) is None
    assert locked_rows(db) == 0


@pytest.mark.parametrize("how", ["second signal", "grace period"])
def test_hard_stop_unlocks_without_charging(url: str, db: SqlBackend, how: str) -> None:
    """A second signal, or the grace period ending, interrupts the job: row unlocked, attempts 0, exit 1."""
    job_id, proc = _start_sleep_job(url, db, 60, "--grace", "1" if how == "grace period" else "60")
    proc.send_signal(signal.SIGTERM)
    if how == "second signal":
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 1
    row = db.job(job_id)
    assert row is not None
    assert (row.attempts, row.locked_by, row.locked_at, row.last_error) == (0, None, None, None)
