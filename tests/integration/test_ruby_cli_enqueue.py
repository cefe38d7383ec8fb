"""Rows written by ``djmw enqueue`` are run by Ruby's delayed_job worker.

Each kind the command writes (a Struct job, an ActiveJob job, a class method call and a
record method call) goes into a table created by Ruby's migration; the real Ruby worker
(tests/ruby/work.rb) runs them all and records what it received.

Skipped without Ruby, except under CI, where the suite must not go weaker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import rubyenv

from djmw.backends import open_backend
from djmw.cli import main

pytestmark = [pytest.mark.ruby, pytest.mark.usefixtures("ruby_activejob")]


def test_ruby_runs_every_kind_djmw_enqueue_writes(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ruby's worker completes the struct, activejob and method rows of `djmw enqueue`
    and calls each with the arguments given as JSON."""
    database = rubyenv.ruby_database(db_url)
    rubyenv.create_schema(database)
    backend = open_backend(db_url)
    backend._execute("INSERT INTO users (id, name) VALUES (1, 'Ann')")
    backend.close()
    commands = [
        ["NewsletterJob", "--args", '{"text": "from the command", "emails": ["a@b.c"]}'],
        ["ReportJob", "--kind", "activejob", "--args", '[7, "x"]', "--queue", "reports"],
        ["User.cleanup", "--kind", "method", "--args", "[30]"],
        ["User#activate!", "--kind", "method", "--record-id", "1", "--args", '["iPhone"]'],
    ]
    for priority, command in enumerate(commands):
        assert main(["enqueue", *command, "--priority", str(priority), "--database", db_url]) == 0
    assert capsys.readouterr().out.count("enqueued job") == len(commands)

    record = tmp_path / "record.jsonl"
    proc = rubyenv.run_ruby(
        "work.rb", "--max-attempts", "1", "--quiet", database=database,
        env={"DJ_RECORD": str(record)},
    )  # fmt: skip
    assert proc.stdout.count(" COMPLETED after ") == len(commands), proc.stdout
    calls = rubyenv.read_records(record)
    assert [call["call"] for call in calls] == [
        "NewsletterJob#perform",
        "ReportJob#perform",
        "User.cleanup",
        "User#activate!",
    ]
    assert calls[1]["args"] == [7, "x"]
    assert calls[2]["args"] == [30]
    backend = open_backend(db_url)
    try:
        assert backend.jobs() == []
    finally:
        backend.close()
