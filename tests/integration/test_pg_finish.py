"""PostgreSQL's finishing write with the next claim, in each of its three forms.

``finish_sql``: ``statement`` (the default: one statement with data-modifying CTEs),
``pipeline`` (two statements, one implicit transaction, one round trip) or ``separate``
(the write, then the claim). All three must leave the rows exactly alike, and a failed
combined transaction must fall back to writing the outcome on its own.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from djmw import Handlers, Job, Worker
from djmw.backends import open_backend
from djmw.backends.postgresql import PostgresqlBackend
from djmw.errors import ConfigurationError
from djmw.middleware import ScheduleRetry, default_middlewares
from djmw.outcome import Succeeded
from djmw.testing import ManualClock

pytestmark = pytest.mark.postgresql
T0 = datetime(2026, 1, 1, 12, 0, 0)
OK = "--- !ruby/struct:OkJob\nn: 1\n"
FLAKY = "--- !ruby/struct:FlakyJob\nn: 1\n"


@pytest.mark.parametrize("finish_sql", ["pipeline", "statement", "separate"])
def test_every_form_leaves_the_same_rows(pg_url: str, finish_sql: str) -> None:
    """Successes are deleted, a job failing once with no backoff runs again in the same
    batch, a permanent failure keeps its lock columns; every job ran the expected times.
    ``unknown_jobs="fail"``: the job with no perform function is that permanent failure."""
    clock = ManualClock(T0)
    db = open_backend(pg_url, clock=clock)
    db.create_schema()
    oks = [db.enqueue(OK) for _ in range(5)]
    flaky = db.enqueue(FLAKY)
    broken = db.enqueue("--- !ruby/struct:NoSuchJob\nn: 1\n")
    runs: list[int] = []

    def ok(job: Job) -> None:
        runs.append(job.id)

    def flaky_job(job: Job) -> None:
        runs.append(job.id)
        if job.attempts == 0:
            msg = "first try fails"
            raise RuntimeError(msg)

    handlers = Handlers({"OkJob": ok, "FlakyJob": flaky_job})
    chain = [
        ScheduleRetry(backoff=lambda attempts: 0) if isinstance(m, ScheduleRetry) else m
        for m in default_middlewares(handlers)
    ]
    worker = Worker(
        database=pg_url,
        handlers=handlers,
        middlewares=chain,
        clock=clock,
        name="finisher",
        backend_options={"finish_sql": finish_sql},
        unknown_jobs="fail",
    )
    assert worker.work_off(20) == (6, 2)
    worker.close(clear_locks=False)
    assert sorted(runs) == sorted([*oks, flaky, flaky])
    (row,) = db.jobs()
    assert (row.id, row.attempts, row.failed_at, row.locked_by) == (broken, 0, T0, "finisher")
    db.close()


def test_a_failed_combined_transaction_writes_the_outcome_alone(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When the claim of the combined transaction fails, nothing of it happened; a
    warning names the error, the outcome is then written on its own and the claim is
    tried again."""
    clock = ManualClock(T0)
    db = open_backend(pg_url, clock=clock)
    assert isinstance(db, PostgresqlBackend)
    db.create_schema()
    first = db.enqueue(OK, run_at=T0 - timedelta(seconds=2))
    second = db.enqueue(OK, run_at=T0 - timedelta(seconds=1))
    worker = Worker(database=pg_url, handlers=Handlers({"OkJob": lambda job: None}), clock=clock)
    request = worker._request(frozenset())
    job = db.reserve(request)
    assert job is not None
    assert job.id == first
    real_claim = db._claim
    calls: list[int] = []

    def broken_once(request: object, **options: object) -> tuple[str, list[object]]:
        calls.append(1)
        if len(calls) == 1:
            return "SELECT 1/0", []
        return real_claim(request, **options)  # type: ignore[arg-type]

    db._claim = broken_once  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="djmw.backend"):
        nxt = db.finish_and_reserve(job, Succeeded(), request)
    warned = [r.getMessage() for r in caplog.records if "next claim" in r.getMessage()]
    assert len(warned) == 1
    assert "division by zero" in warned[0]
    assert nxt is not None
    assert nxt.id == second
    assert [row.id for row in db.jobs()] == [second]
    db.close()


def test_an_unknown_finish_sql_is_refused(pg_url: str) -> None:
    """A finish_sql other than the three forms fails at start, naming them."""
    with pytest.raises(ConfigurationError, match="pipeline, statement or separate"):
        open_backend(pg_url, finish_sql="batch")
