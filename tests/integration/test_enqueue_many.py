"""djmw.enqueue_many: bulk inserts on real MariaDB and SQLite, rows a worker runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

import djmw
from djmw import Handlers, NewJob, Worker
from djmw.backends import open_backend
from djmw.job import Job

OK = "--- !ruby/struct:OkJob\nn: {}\n"


def test_rows_come_back_with_their_ids_in_order(db_url: str) -> None:
    """2,500 handlers in batches of 1,000: the ids returned are the rows' ids in input
    order, and each row has delayed_job's enqueue columns."""
    db = open_backend(db_url)
    db.create_schema()
    handlers = [OK.format(index) for index in range(2_500)]
    ids = djmw.enqueue_many(db, handlers, queue="bulk", priority=3)
    assert len(ids) == len(set(ids)) == 2_500
    rows = {row.id: row for row in db.jobs()}
    assert [_text(rows[job_id].handler) for job_id in ids] == handlers
    row = rows[ids[-1]]
    assert (row.queue, row.priority, row.attempts, row.locked_by, row.failed_at) == (
        "bulk",
        3,
        0,
        None,
        None,
    )
    assert row.run_at is not None
    assert row.run_at == row.created_at
    db.close()


def test_one_insert_statement_per_batch(db_url: str) -> None:
    """Five rows with batch_size=2 reach the backend as three INSERTs of 2, 2 and 1 rows."""
    db = open_backend(db_url)
    db.create_schema()
    sizes: list[int] = []
    original = db.enqueue_many

    def counting(rows: list[NewJob]) -> list[int]:
        sizes.append(len(rows))
        return original(rows)

    db.enqueue_many = counting  # type: ignore[method-assign]
    ids = djmw.enqueue_many(db, [OK.format(index) for index in range(5)], batch_size=2)
    assert sizes == [2, 2, 1]
    assert len(db.jobs()) == len(ids) == 5
    db.close()


def test_new_job_rows_keep_their_own_columns_and_a_worker_runs_them(db_url: str) -> None:
    """NewJob items carry their priority, run_at and queue; a worker then runs the due
    ones in priority order and leaves the future one."""
    db = open_backend(db_url)
    db.create_schema()
    now = db.clock().replace(microsecond=0)
    future = now + timedelta(hours=1)
    ids = djmw.enqueue_many(
        db,
        [
            NewJob(handler=OK.format(1), priority=5),
            NewJob(handler=OK.format(2), priority=-1, queue="fast"),
            NewJob(handler=OK.format(3), run_at=future),
        ],
    )
    scheduled = db.job(ids[2])
    assert scheduled is not None
    assert scheduled.run_at == future
    ran: list[int] = []

    def record(job: Job) -> None:
        ran.append(job.id)

    worker = Worker(database=db_url, handlers=Handlers({"OkJob": record}), name="w")
    assert worker.work_off(10) == (2, 0)
    worker.close()
    assert ran == [ids[1], ids[0]]
    assert [row.id for row in db.jobs()] == [ids[2]]
    db.close()


def test_a_url_opens_and_closes_its_own_connection(db_url: str) -> None:
    """With a URL, enqueue_many connects, inserts and closes; the rows are there."""
    db = open_backend(db_url)
    db.create_schema()
    ids = djmw.enqueue_many(db_url, [OK.format(1), OK.format(2)])
    assert [row.id for row in db.jobs()] == ids
    db.close()


def test_bad_items_and_batch_sizes_fail_before_any_insert(db_url: str) -> None:
    """A non-handler item or a batch_size of 0 raises with a message naming it; no row
    is written."""
    db = open_backend(db_url)
    db.create_schema()
    with pytest.raises(TypeError, match=r"item 1 is a int"):
        djmw.enqueue_many(db, [OK.format(1), 7])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer"):
        djmw.enqueue_many(db, [OK.format(1)], batch_size=0)
    assert db.jobs() == []
    db.close()


def test_empty_input_inserts_nothing(db_url: str) -> None:
    """No items: no statement, an empty list."""
    db = open_backend(db_url)
    db.create_schema()
    assert djmw.enqueue_many(db, []) == []
    assert db.jobs() == []
    db.close()


def _text(handler: str | bytes | None) -> str:
    return handler.decode() if isinstance(handler, bytes) else str(handler)
