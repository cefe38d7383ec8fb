"""PostgreSQL against Ruby itself: the table Ruby's migration makes, and the claim order.

``djmw schema`` must create exactly the table delayed_job_active_record's migration makes
on PostgreSQL (ActiveRecord 6.1's postgresql adapter, Debian's ruby-pg), and djmw must
take rows in the order Ruby's worker does, NULL priorities included (PostgreSQL sorts
them last).

Skipped without Ruby, except under CI, where the suite must not go weaker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import rubyenv
from pgserver import drop_pg_database, new_pg_database

from djmw import Handlers, Job, Worker
from djmw.backends import open_backend
from djmw.cli import main

pytestmark = [
    pytest.mark.ruby,
    pytest.mark.postgresql,
    pytest.mark.usefixtures("ruby_delayed_job"),
]


def table_definition(url: str) -> dict[str, Any]:
    """delayed_jobs as the catalog describes it: columns in order, indexes, constraints."""
    backend = open_backend(url)
    try:
        columns = backend._query(
            "SELECT attnum, attname, format_type(atttypid, atttypmod), attnotnull, "
            "pg_get_expr(adbin, adrelid) FROM pg_attribute "
            "LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum "
            "WHERE attrelid = 'delayed_jobs'::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum"
        )
        indexes = backend._query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'delayed_jobs' "
            "ORDER BY indexname"
        )
        constraints = backend._query(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'delayed_jobs'::regclass ORDER BY conname"
        )
        sequences = backend._query(
            "SELECT sequencename, data_type::text, start_value, increment_by FROM pg_sequences "
            "WHERE sequencename LIKE 'delayed_jobs%%'"
        )
    finally:
        backend.close()
    return {
        "columns": columns,
        "indexes": indexes,
        "constraints": constraints,
        "sequences": sequences,
    }


def test_djmw_schema_is_the_table_rubys_migration_creates(pg_url: str) -> None:
    """Columns (order, types, NOT NULL, defaults), index, primary key and id sequence of
    `djmw schema` are those of delayed_job_active_record's migration run by Ruby."""
    rubyenv.create_schema(rubyenv.ruby_database(pg_url))
    ours = new_pg_database()
    try:
        assert main(["schema", "--database", ours]) == 0
        theirs = table_definition(pg_url)
        mine = table_definition(ours)
    finally:
        drop_pg_database(ours)
    assert [column[1] for column in theirs["columns"]][:3] == ["id", "priority", "attempts"]
    assert mine == theirs


def test_claim_order_with_null_priority_matches_ruby(pg_url: str, tmp_path: Path) -> None:
    """On a legacy table whose priority allows NULL, djmw takes rows in the order Ruby's
    worker does: -5, 0, 5, then NULL (PostgreSQL's NULLS LAST), ties by run_at."""
    database = rubyenv.ruby_database(pg_url)
    rubyenv.create_schema(database)
    backend = open_backend(pg_url)
    backend._execute("ALTER TABLE delayed_jobs ALTER COLUMN priority DROP NOT NULL")
    priorities = [None, 5, -5, 0, None, 5]

    def enqueue_rows() -> None:
        jobs = rubyenv.enqueue("bulk", database, extra_args=("--count", str(len(priorities))))
        for job, priority in zip(jobs, priorities, strict=True):
            backend._execute(
                "UPDATE delayed_jobs SET priority = %s, run_at = run_at - %s * interval '1 s' "
                "WHERE id = %s",
                [priority, 100 - job["id"], job["id"]],
            )

    enqueue_rows()
    order = {row.id: index for index, row in enumerate(backend.jobs())}
    record = tmp_path / "ruby.jsonl"
    rubyenv.run_ruby(
        "work.rb", "--work-off", "20", "--quiet", database=database, env={"DJ_RECORD": str(record)}
    )
    ruby_order = [order[call["job_id"]] for call in rubyenv.read_records(record)]

    enqueue_rows()
    order = {row.id: index for index, row in enumerate(backend.jobs())}
    ran: list[int] = []

    def counter(job: Job) -> None:
        ran.append(order[job.id])

    Worker(database=pg_url, handlers=Handlers({"CounterJob": counter}), name="djmw").work_off(20)
    backend.close()
    by_priority = sorted(
        range(len(priorities)),
        key=lambda i: (priorities[i] is None, priorities[i] or 0, i),
    )
    assert ruby_order == by_priority
    assert ran == ruby_order
