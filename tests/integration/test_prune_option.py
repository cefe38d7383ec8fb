"""The worker's ``prune_failed_after`` option on real MariaDB and SQLite: old failed rows
are deleted between batches, at most once per interval across every worker."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest

from djmw import Handlers, Job, Worker
from djmw.admin import Pruner
from djmw.admin.prune import TASKS_TABLE
from djmw.backends import open_backend
from djmw.backends.base import SqlBackend
from djmw.errors import ConfigurationError
from djmw.ruby import encode
from djmw.testing import InMemoryBackend, ManualClock

DAY = timedelta(days=1)
HANDLER = encode.struct_job("NewsletterJob", {})


def failed_rows(db: SqlBackend, count: int, age: timedelta) -> list[int]:
    """Insert ``count`` rows that failed ``age`` before the backend's clock."""
    ids = []
    for _ in range(count):
        job_id = db.enqueue(HANDLER)
        db._execute(
            f"UPDATE delayed_jobs SET failed_at = {db.mark}, attempts = 25 WHERE id = {db.mark}",
            [db._stamp(db.clock() - age), job_id],
        )
        ids.append(job_id)
    return ids


def test_one_prune_per_interval_across_workers(db_url: str) -> None:
    """Two workers' pruners share one interval: the first prunes, the second is refused
    until the interval has passed on the clock, then it prunes and is recorded."""
    clock = ManualClock()
    first, second = open_backend(db_url, clock=clock), open_backend(db_url, clock=clock)
    first.create_schema()
    try:
        old = failed_rows(first, 3, 40 * DAY)
        recent = failed_rows(first, 1, DAY)
        pruners = [Pruner(failed_older_than="30d", interval=600, clock=clock) for _ in range(2)]
        for pruner, backend in zip(pruners, (first, second), strict=True):
            pruner.prepare(backend)
        assert pruners[0].run(first, "host:a pid:1") == 3
        later = failed_rows(first, 2, 40 * DAY)
        assert pruners[1].run(second, "host:b pid:2") is None
        clock.advance(599)
        assert pruners[1].run(second, "host:b pid:2") is None
        assert [job.id for job in first.jobs()] == [*recent, *later]
        clock.advance(1)
        assert pruners[1].run(second, "host:b pid:2") == 2
        assert [job.id for job in first.jobs()] == recent
        assert pruners[0].run(first, "host:a pid:1") is None
        ran_by = first._query(
            f"SELECT ran_by FROM {TASKS_TABLE} WHERE task = 'prune_failed:delayed_jobs'"
        )
        assert ran_by == [("host:b pid:2",)]
        assert set(old).isdisjoint(job.id for job in first.jobs())
    finally:
        first.close()
        second.close()


def test_racing_workers_prune_once(db_url: str) -> None:
    """Eight workers asking at the same moment, each on its own connection: exactly one
    prunes, and it deletes every old failed row (at most max_rows)."""
    setup = open_backend(db_url)
    setup.create_schema()
    failed_rows(setup, 30, 40 * DAY)
    backends = [open_backend(db_url) for _ in range(8)]
    pruners = [Pruner(failed_older_than=30 * 86400, interval=3600, batch=7) for _ in backends]
    for pruner, backend in zip(pruners, backends, strict=True):
        pruner.prepare(backend)
    results: list[int | None] = [None] * len(backends)
    gate = threading.Barrier(len(backends))

    def ask(index: int) -> None:
        gate.wait()
        results[index] = pruners[index].run(backends[index], f"host:w pid:{index}")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(backends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert sorted(results, key=lambda r: r is not None) == [None] * 7 + [30]
        assert setup.jobs() == []
    finally:
        for backend in [setup, *backends]:
            backend.close()


def test_worker_prunes_between_batches(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A worker with prune_failed_after deletes old failed rows when it starts its loop,
    logs how many, runs its jobs, and keeps recent failures."""
    db = open_backend(db_url)
    db.create_schema()
    failed_rows(db, 4, 40 * DAY)
    recent = failed_rows(db, 1, 2 * DAY)
    ran: list[int] = []
    handlers = Handlers()

    @handlers.register("NewsletterJob")
    def newsletter(job: Job) -> None:
        ran.append(job.id)

    ready = db.enqueue(HANDLER)
    worker = Worker(
        database=db_url,
        handlers=handlers,
        prune_failed_after="30d",
        exit_on_complete=True,
        name="host:pruner pid:1",
    )
    with caplog.at_level(logging.INFO, logger="djmw"):
        worker.run()
    try:
        assert ran == [ready]
        assert [job.id for job in db.jobs()] == recent
        lines = [r.getMessage() for r in caplog.records if "Pruned" in r.getMessage()]
        assert lines == ["[Worker(host:pruner pid:1)] Pruned 4 failed jobs older than 30 days"]
    finally:
        db.close()


def test_bad_prune_settings_fail_at_start(db_url: str) -> None:
    """A bad duration fails at construction naming the option; a backend that is not SQL
    fails at start."""
    with pytest.raises(
        ConfigurationError, match="prune_failed_after must be seconds or a duration"
    ):
        Worker(database=db_url, prune_failed_after="soon")
    with pytest.raises(ConfigurationError, match="prune_interval must be a positive number"):
        Worker(database=db_url, prune_failed_after="1d", prune_interval=0)
    memory = InMemoryBackend()
    worker = Worker(backend=memory.factory(), prune_failed_after=3600)
    with pytest.raises(ConfigurationError, match="needs a SQL database backend"):
        worker.work_off(1)
