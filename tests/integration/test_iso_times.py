"""run_at written with an ISO 8601 "T" (``2026-11-28T06:26:34``), by hand-written SQL or
another tool, runs when it is due, on MariaDB, PostgreSQL and SQLite, with a real ``djmw work``.

SQLite keeps times as text and compares them as text, so the worker compares run_at and
locked_at with the "T" read as a space (README, "Sharing a table with Ruby workers").
MariaDB and PostgreSQL parse the "T" into their time columns themselves.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from crash_handlers import runs
from procs import finish, work

from djmw.backends.base import SqlBackend


def _insert(db: SqlBackend, handler: str, run_at: str) -> int:
    m = db.mark
    job_id = db.enqueue(handler)
    db._execute(f"UPDATE delayed_jobs SET run_at = {m} WHERE id = {m}", [run_at, job_id])
    return job_id


def test_a_run_at_with_an_iso_t_runs_when_due(
    proc_url: str, db: SqlBackend, tmp_path: Path
) -> None:
    """A due row written as ``YYYY-MM-DDTHH:MM:SS`` runs; one written the same way for
    tomorrow waits, untouched."""
    now = db.clock().replace(microsecond=0)
    due = _insert(db, "--- !ruby/struct:NoopJob\nn: 1\n", (now - timedelta(minutes=1)).isoformat())
    later_text = (now + timedelta(days=1)).isoformat()
    later = _insert(db, "--- !ruby/struct:NoopJob\nn: 2\n", later_text)
    if proc_url.startswith("sqlite"):
        stored = db._query("SELECT run_at FROM delayed_jobs WHERE id = ?", [due])[0][0]
        assert "T" in stored  # SQLite keeps the text as written
    log = tmp_path / "work.log"
    assert finish(work(proc_url, "--exit-on-complete", "--sleep-delay", "0.1", log=log)) == 0
    assert [job for job, _, _, _ in runs(proc_url)] == [due]
    assert db.job(due) is None
    row = db.job(later)
    assert row is not None
    assert (row.attempts, row.locked_by) == (0, None)
    assert row.run_at is not None
    assert row.run_at.isoformat() == later_text
