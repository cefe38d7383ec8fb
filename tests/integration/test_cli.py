"""The djmw command: schema creates delayed_job_active_record's table; demo runs real rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from djmw.backends import open_backend
from djmw.cli import main


def test_schema_creates_the_migration_table(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`djmw schema` creates delayed_jobs with the migration's columns, types and index."""
    assert main(["schema", "--database", db_url]) == 0
    assert "is ready" in capsys.readouterr().out
    backend = open_backend(db_url)
    try:
        backend.check_schema()
        if db_url.startswith("mysql"):
            columns = dict(
                backend._query(
                    "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'delayed_jobs'"
                )
            )
            assert columns == {
                "id": "bigint(20)",
                "priority": "int(11)",
                "attempts": "int(11)",
                "handler": "text",
                "last_error": "text",
                "run_at": "datetime",
                "locked_at": "datetime",
                "failed_at": "datetime",
                "locked_by": "varchar(255)",
                "queue": "varchar(255)",
                "created_at": "datetime(6)",
                "updated_at": "datetime(6)",
            }
            index = backend._query(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                "AND INDEX_NAME = 'delayed_jobs_priority' ORDER BY SEQ_IN_INDEX"
            )
            assert [row[0] for row in index] == ["priority", "run_at"]
        elif db_url.startswith("postgresql"):
            columns = dict(
                backend._query(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'delayed_jobs'::regclass AND attnum > 0"
                )
            )
            assert columns == {
                "id": "bigint",
                "priority": "integer",
                "attempts": "integer",
                "handler": "text",
                "last_error": "text",
                "run_at": "timestamp without time zone",
                "locked_at": "timestamp without time zone",
                "failed_at": "timestamp without time zone",
                "locked_by": "character varying",
                "queue": "character varying",
                "created_at": "timestamp(6) without time zone",
                "updated_at": "timestamp(6) without time zone",
            }
            (index,) = backend._query(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'delayed_jobs_priority'"
            )
            assert index[0].endswith("USING btree (priority, run_at)")
        else:
            index = backend._query("PRAGMA index_info('delayed_jobs_priority')")
            assert [row[2] for row in index] == ["priority", "run_at"]
    finally:
        backend.close()


def test_demo_runs_real_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`djmw demo` fills an SQLite file with Rails-style rows and reports each outcome."""
    assert main(["demo", "--database", f"sqlite:///{tmp_path / 'demo.db'}"]) == 0
    out = capsys.readouterr().out
    assert "job 4 FlakyJob: succeeded, row deleted" in out
    assert "job 5 BrokenJob: failed after 1 attempt(s)" in out
    assert (
        "job 6 (bad YAML): failed after 0 attempt(s), row kept with failed_at; last_error: Job failed to load:"
        in out
    )


@pytest.mark.postgresql
def test_schema_notify_installs_and_removes_the_trigger(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`djmw schema --notify` installs the notify trigger (twice is fine);
    `--remove-notify` removes it and its function."""
    from djmw.backends.postgresql import PostgresqlBackend

    assert main(["schema", "--database", pg_url, "--notify"]) == 0
    assert main(["schema", "--database", pg_url, "--notify"]) == 0
    assert "notify trigger installed: channel 'djmw_delayed_jobs'" in capsys.readouterr().out
    backend = open_backend(pg_url)
    assert isinstance(backend, PostgresqlBackend)
    try:
        assert backend.notify_installed()
        assert main(["schema", "--database", pg_url, "--remove-notify"]) == 0
        assert "notify trigger removed" in capsys.readouterr().out
        assert not backend.notify_installed()
        functions = backend._query("SELECT 1 FROM pg_proc WHERE proname LIKE 'djmw_notify%%'")
        assert functions == []
    finally:
        backend.close()


def test_schema_notify_needs_postgresql(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--notify` on a database other than PostgreSQL fails, saying it needs PostgreSQL."""
    assert main(["schema", "--database", sqlite_url, "--notify"]) == 2
    assert "need PostgreSQL (LISTEN/NOTIFY)" in capsys.readouterr().err
