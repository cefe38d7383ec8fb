"""Crash safety with real ``djmw work`` processes, on MariaDB and SQLite.

Each test starts ``python -m djmw work`` with ``tests.crash_handlers``, whose jobs record
every run in a ``job_log`` table of the same database, and checks the rows, the exit
code and the log afterwards: a handler's own ``sys.exit``, signals to the supervisor or
to the whole process group, crashing children, reserve errors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from djmw.backends import open_backend
from djmw.backends.base import SqlBackend
from djmw.backends.mysql import MysqlBackend
from tests.crash_handlers import create_job_log, runs

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = "tests.crash_handlers:handlers"


@pytest.fixture
def url(db_url: str) -> str:
    """A database (MariaDB, then SQLite) with delayed_jobs and the job_log side table."""
    backend = open_backend(db_url)
    backend.create_schema()
    backend.close()
    create_job_log(db_url)
    return db_url


@pytest.fixture
def db(url: str) -> Iterator[SqlBackend]:
    """A connection to ``url`` for the test's own reads and inserts."""
    backend = open_backend(url)
    try:
        yield backend
    finally:
        backend.close()


def djmw(
    url: str, *args: str, log: Path, handlers: str | None = HANDLERS
) -> subprocess.Popen[bytes]:
    """Start ``djmw work`` on ``url`` in its own process group, logging to ``log``."""
    env = {**os.environ, "DJMW_RECORD_URL": url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "djmw", "work", "--database", url]
    if handlers is not None:
        command += ["--handlers", handlers]
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*command, *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
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
        pytest.fail(f"djmw work did not exit within {timeout} s")


EXITS = {
    "exit3": "SystemExit: 3",
    "keyboard": "KeyboardInterrupt",
    "generator": "GeneratorExit: closed by the job",
}


def _exit_rows(db: SqlBackend) -> dict[str, int]:
    return {how: db.enqueue(f"--- !ruby/struct:ExitJob\nhow: {how}\n") for how in EXITS}


def _check_exit_rows(db: SqlBackend, rows: dict[str, int], url: str) -> None:
    attempts_at_start = [attempt for job_id, attempt, _, _ in runs(url) if job_id in rows.values()]
    assert sorted(attempts_at_start) == [0, 0, 0]  # each ran once, never again at once
    for how, job_id in rows.items():
        row = db.job(job_id)
        assert row is not None
        assert row.attempts == 1
        assert (row.last_error or "").splitlines()[0] == EXITS[how]
        assert (row.locked_by, row.locked_at, row.failed_at) == (None, None, None)
        assert row.run_at is not None
        assert row.run_at > db.clock()


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_handlers_exit_is_a_failed_attempt_and_the_worker_goes_on(
    url: str, db: SqlBackend, tmp_path: Path, processes: str
) -> None:
    """sys.exit(3), KeyboardInterrupt and GeneratorExit in handlers: each job is charged one
    attempt with last_error naming the class, rescheduled, and the worker runs every other
    job and exits 0; under --processes 2 no child dies, so nothing is restarted."""
    rows = _exit_rows(db)
    others = [db.enqueue(f"--- !ruby/struct:NoopJob\nn: {n}\n") for n in range(20)]
    log = tmp_path / "work.log"
    args = ["--exit-on-complete", "--sleep-delay", "0.2", "--processes", processes]
    assert finish(djmw(url, *args, log=log)) == 0
    text = log.read_text()
    _check_exit_rows(db, rows, url)
    noop_runs = [job_id for job_id, _, _, _ in runs(url) if job_id in others]
    assert sorted(noop_runs) == others
    for line in EXITS.values():
        assert f"FAILED (0 prior attempts) with {line}" in text
    assert "restarting" not in text
    assert "exited with" not in text


# -- reserve errors are not an empty queue (item 7) -----------------------------------------
def _refuse_updates(db: SqlBackend) -> None:
    """Make every UPDATE of delayed_jobs fail, as on a read-only database."""
    if isinstance(db, MysqlBackend):
        db._execute(
            "CREATE TRIGGER djmw_test_read_only BEFORE UPDATE ON delayed_jobs FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the table is read-only'"
        )
    else:
        db._execute(
            "CREATE TRIGGER djmw_test_read_only BEFORE UPDATE ON delayed_jobs "
            "BEGIN SELECT RAISE(ABORT, 'the table is read-only'); END"
        )


def test_exit_on_complete_with_reserve_errors_exits_non_zero(
    url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """--exit-on-complete on a table that cannot be written: the reserve errors are logged,
    never read as an empty queue; the worker exits 1 with the job still pending."""
    job_id = db.enqueue("--- !ruby/struct:NoopJob\nn: 1\n")
    _refuse_updates(db)
    log = tmp_path / "work.log"
    args = ["--exit-on-complete", "--sleep-delay", "0.1", "--max-reserve-errors", "3"]
    assert finish(djmw(url, *args, log=log)) == 1
    text = log.read_text()
    assert text.count("Error while reserving job") == 3
    assert "the table is read-only" in text
    assert "No more jobs available" not in text
    row = db.job(job_id)
    assert row is not None
    assert (row.attempts, row.locked_by) == (0, None)
    assert runs(url) == []


def test_exit_on_complete_waits_out_a_passing_reserve_error(
    url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """A reserve error that passes does not end an --exit-on-complete run early: once the
    table can be written again the job runs, and then the worker exits 0."""
    job_id = db.enqueue("--- !ruby/struct:NoopJob\nn: 1\n")
    _refuse_updates(db)
    log = tmp_path / "work.log"
    proc = djmw(url, "--exit-on-complete", "--sleep-delay", "0.1", log=log)
    wait_for(lambda: "Error while reserving job" in log.read_text(), 30, "a reserve error")
    db._execute("DROP TRIGGER djmw_test_read_only")
    assert finish(proc) == 0
    assert [job for job, _, _, _ in runs(url)] == [job_id]
    assert db.job(job_id) is None
    assert "No more jobs available. Exiting" in log.read_text()
