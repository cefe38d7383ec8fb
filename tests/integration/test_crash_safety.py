"""Crash safety with real ``djmw work`` processes, on MariaDB and SQLite.

Each test starts ``python -m djmw work`` with ``tests.crash_handlers``, whose jobs record
every run in a ``job_log`` table of the same database, and checks the rows, the exit
code and the log afterwards: a handler's own ``sys.exit``, signals to the supervisor or
to the whole process group, crashing children, reserve errors.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from crash_handlers import runs
from procs import children, finish, wait_for, work

from djmw.backends import open_backend
from djmw.backends.base import SqlBackend
from djmw.backends.mysql import MysqlBackend
from djmw.backends.sqlite import SqliteBackend

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
    proc_url: str, db: SqlBackend, tmp_path: Path, processes: str
) -> None:
    """sys.exit(3), KeyboardInterrupt and GeneratorExit in handlers: each job is charged one
    attempt with last_error naming the class, rescheduled, and the worker runs every other
    job and exits 0; under --processes 2 no child dies, so nothing is restarted."""
    rows = _exit_rows(db)
    others = [db.enqueue(f"--- !ruby/struct:NoopJob\nn: {n}\n") for n in range(20)]
    log = tmp_path / "work.log"
    args = ["--exit-on-complete", "--sleep-delay", "0.2", "--processes", processes]
    assert finish(work(proc_url, *args, log=log)) == 0
    text = log.read_text()
    _check_exit_rows(db, rows, proc_url)
    noop_runs = [job_id for job_id, _, _, _ in runs(proc_url) if job_id in others]
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
    elif isinstance(db, SqliteBackend):
        db._execute(
            "CREATE TRIGGER djmw_test_read_only BEFORE UPDATE ON delayed_jobs "
            "BEGIN SELECT RAISE(ABORT, 'the table is read-only'); END"
        )
    else:
        db._execute(
            "CREATE FUNCTION djmw_test_read_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the table is read-only'; END $$"
        )
        db._execute(
            "CREATE TRIGGER djmw_test_read_only BEFORE UPDATE ON delayed_jobs "
            "FOR EACH ROW EXECUTE FUNCTION djmw_test_read_only()"
        )


def _allow_updates(db: SqlBackend) -> None:
    """Undo ``_refuse_updates``."""
    on_table = "" if isinstance(db, MysqlBackend | SqliteBackend) else " ON delayed_jobs"
    db._execute(f"DROP TRIGGER djmw_test_read_only{on_table}")


def test_exit_on_complete_with_reserve_errors_exits_non_zero(
    proc_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """--exit-on-complete on a table that cannot be written: the reserve errors are logged,
    never read as an empty queue; the worker exits 1 with the job still pending."""
    job_id = db.enqueue("--- !ruby/struct:NoopJob\nn: 1\n")
    _refuse_updates(db)
    log = tmp_path / "work.log"
    args = ["--exit-on-complete", "--sleep-delay", "0.1", "--max-reserve-errors", "3"]
    assert finish(work(proc_url, *args, log=log)) == 1
    text = log.read_text()
    assert text.count("Error while reserving job") == 3
    assert "the table is read-only" in text
    assert "No more jobs available" not in text
    row = db.job(job_id)
    assert row is not None
    assert (row.attempts, row.locked_by) == (0, None)
    assert runs(proc_url) == []


def test_exit_on_complete_waits_out_a_passing_reserve_error(
    proc_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """A reserve error that passes does not end an --exit-on-complete run early: once the
    table can be written again the job runs, and then the worker exits 0."""
    job_id = db.enqueue("--- !ruby/struct:NoopJob\nn: 1\n")
    _refuse_updates(db)
    log = tmp_path / "work.log"
    proc = work(proc_url, "--exit-on-complete", "--sleep-delay", "0.1", log=log)
    wait_for(lambda: "Error while reserving job" in log.read_text(), 30, "a reserve error")
    _allow_updates(db)
    assert finish(proc) == 0
    assert [job for job, _, _, _ in runs(proc_url)] == [job_id]
    assert db.job(job_id) is None
    assert "No more jobs available. Exiting" in log.read_text()


# -- every way out says why; the supervisor backs off and gives up (item 6) -----------------
def test_repeated_child_crashes_back_off_then_the_supervisor_gives_up(
    proc_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """Children that die at once (every reserve fails, --max-reserve-errors 1) are
    restarted after 1 s, then 2 s, each crash logged with its exit status and the child's
    own reason; at the 4th crash within the window the supervisor stops and exits 1."""
    db.enqueue("--- !ruby/struct:NoopJob\nn: 1\n")
    _refuse_updates(db)
    log = tmp_path / "work.log"
    args = ["--processes", "2", "--sleep-delay", "0.1", "--max-reserve-errors", "1"]
    args += ["--max-crashes", "4", "--crash-window", "120"]
    assert finish(work(proc_url, *args, log=log), timeout=120) == 1
    text = log.read_text()
    crashes = re.findall(r"worker process \d \(pid \d+\) exited with status 1 after", text)
    assert len(crashes) == 4
    delays = re.findall(r"restarting it in (\d+) s \(crash (\d) of 4 allowed within 120 s\)", text)
    assert [crash for _, crash in delays] == ["1", "2", "3"]
    assert {delay for delay, _ in delays} == {"1", "2"}  # doubled for a child's 2nd crash
    assert "4 crashes within 120 s: stopping the other worker processes and exiting" in text
    reasons = "Exiting: 1 consecutive reserve errors; the last was: "
    assert text.count(reasons) >= 4
    assert "Fleet of 2 worker processes (" in text


def test_a_killed_child_is_restarted_and_the_fleet_totals_count_every_job(
    proc_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """kill -9 of a child: the supervisor says how it died and restarts it after 1 s; at
    the end it logs the fleet's totals over every child it started, and exits 0."""
    ids = [db.enqueue(f"--- !ruby/struct:NoopJob\nn: {n}\n") for n in range(20)]
    log = tmp_path / "work.log"
    proc = work(proc_url, "--processes", "2", "--sleep-delay", "0.1", log=log)
    wait_for(lambda: len(runs(proc_url)) == 20, 60, "every job to run")
    time.sleep(1)  # the children report their totals every 0.1 s
    victim = children(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: log.read_text().count("Starting job worker") == 3, 60, "the restart")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 0, log.read_text()
    text = log.read_text()
    assert f"(pid {victim}) was killed by signal 9 (SIGKILL) after" in text
    assert "restarting it in 1 s (crash 1 of 10 allowed within 300 s)" in text
    assert "Fleet of 2 worker processes (3 started, " in text
    assert "): 20 jobs processed, 20 succeeded, 0 failed" in text
    assert sorted(job for job, _, _, _ in runs(proc_url)) == ids


def test_a_graceful_stop_while_a_child_waits_to_restart_exits_0(
    proc_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """TERM to the supervisor while a killed child waits out its restart delay: the child
    stays stopped, the others stop gracefully, and the fleet exits 0 (the crash was
    logged and handled; only giving up makes the stop a failure)."""
    log = tmp_path / "work.log"
    proc = work(proc_url, "--processes", "2", "--sleep-delay", "0.1", log=log)
    wait_for(lambda: log.read_text().count("Starting job worker") == 2, 60, "the children")
    victim = children(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: "restarting it in 1 s" in log.read_text(), 30, "the crash to be seen")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 0, log.read_text()
    assert log.read_text().count("Starting job worker") == 2


def _damage(path: str) -> None:
    """Overwrite the root pages of delayed_jobs and its index: 'disk image is malformed'."""
    conn = sqlite3.connect(path)
    roots = [r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 0")]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as file:
        for root in roots:
            file.seek(size * (root - 1))
            file.write(b"\xff" * size)


def test_a_damaged_sqlite_file_ends_the_worker_with_its_cause(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A malformed SQLite page: the worker logs each reserve error, then one line saying
    why it exits, and exits 1 (it used to exit 1 saying nothing)."""
    backend = open_backend(sqlite_url)
    backend.create_schema()
    for n in range(200):
        backend.enqueue(f"--- !ruby/struct:NoopJob\nn: {n}\n")
    backend.close()
    _damage(sqlite_url.removeprefix("sqlite:///"))
    log = tmp_path / "work.log"
    args = ["--exit-on-complete", "--sleep-delay", "0.1", "--max-reserve-errors", "2"]
    assert finish(work(sqlite_url, *args, log=log)) == 1
    text = log.read_text()
    assert (
        text.count(
            "Error while reserving job: SQLite reserve failed: database disk image is malformed"
        )
        == 2
    )
    assert (
        "Exiting: 2 consecutive reserve errors; the last was: SQLite reserve failed: "
        "database disk image is malformed" in text
    )
