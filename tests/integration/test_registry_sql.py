"""The worker registry's table and statements on real MariaDB, PostgreSQL and SQLite."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from djmw import Handlers, Worker
from djmw.backends import WorkerRecord, open_backend
from djmw.backends.base import SqlBackend
from djmw.cli import main
from djmw.errors import ConfigurationError
from djmw.job import Job
from djmw.testing import ManualClock

T0 = datetime(2026, 1, 1, 12, 0, 0, 250_000)
TABLE = "delayed_workers"
JOB = "--- !ruby/struct:J {}\n"


def backend_at(db_url: str, clock: ManualClock) -> SqlBackend:
    backend = open_backend(db_url, clock=clock)
    backend.create_schema()
    backend.check_schema()
    return backend


def record(name: str, beat: datetime, **columns: object) -> WorkerRecord:
    values: dict[str, object] = {"host": "h", "pid": 7, "queues": None, "started_at": beat}
    values.update(columns)
    return WorkerRecord(name=name, heartbeat_at=beat, **values)  # type: ignore[arg-type]


def lock(db: SqlBackend, job_id: int, by: str, at: datetime, failed: bool = False) -> Job:
    m = db.mark
    db._execute(
        f"UPDATE delayed_jobs SET locked_by = {m}, locked_at = {m}, failed_at = {m} WHERE id = {m}",
        [by, db._stamp(at), db._stamp(at) if failed else None, job_id],
    )
    job = db.job(job_id)
    assert job is not None
    return job


def test_register_replace_beat_and_unregister(db_url: str) -> None:
    """A registration returns the row it replaced (same name); a beat writes now (at full
    precision) and the job id, and says False once the row is gone."""
    clock = ManualClock(T0)
    db = backend_at(db_url, clock)
    first = record("w", T0, queues=("a", None), pid=1)
    assert db.register_worker(TABLE, first) is None
    assert db.workers(TABLE) == [first]
    second = record("w", T0 + timedelta(seconds=1), pid=2)
    assert db.register_worker(TABLE, second) == first
    clock.advance(5)
    assert db.beat(TABLE, "w", 42)
    assert db.beat(TABLE, "w", 42)  # an unchanged row is still there (MySQL's row count)
    assert db.workers(TABLE) == [
        WorkerRecord(
            name="w",
            host="h",
            pid=2,
            queues=None,
            started_at=T0 + timedelta(seconds=1),
            heartbeat_at=T0 + timedelta(seconds=5),
            job_id=42,
        )
    ]
    db.unregister_worker(TABLE, "w")
    assert db.workers(TABLE) == []
    assert not db.beat(TABLE, "w", None)
    db.close()


def test_take_over_only_a_registered_dead_workers_old_lock(db_url: str) -> None:
    """The lock moves to the rescuer only while the row is held by that worker, unfailed,
    locked before the cutoff, and the worker is registered with a heartbeat before it."""
    now = T0 + timedelta(minutes=10)
    clock = ManualClock(now)
    db = backend_at(db_url, clock)
    before = now - timedelta(seconds=60)
    old = now - timedelta(minutes=5)
    db.register_worker(TABLE, record("dead", old))
    db.register_worker(TABLE, record("alive", now))
    cases = {
        "dead, old lock": lock(db, db.enqueue(JOB), "dead", old),
        "dead, recent lock": lock(db, db.enqueue(JOB), "dead", now - timedelta(seconds=5)),
        "dead, failed": lock(db, db.enqueue(JOB), "dead", old, failed=True),
        "alive": lock(db, db.enqueue(JOB), "alive", old),
        "unregistered": lock(db, db.enqueue(JOB), "ruby", old),
    }
    taken = {what: db.take_over(TABLE, job, "rescuer", before) for what, job in cases.items()}
    assert [what for what, job in taken.items() if job is not None] == ["dead, old lock"]
    job = taken["dead, old lock"]
    assert job is not None
    assert (job.locked_by, job.attempts) == ("rescuer", 0)
    # Taken already: a second rescuer gets nothing.
    assert db.take_over(TABLE, cases["dead, old lock"], "other", before) is None
    db.close()


def test_a_dead_worker_is_forgotten_once_it_holds_no_unfailed_lock(db_url: str) -> None:
    """forget_worker keeps a dead worker's row while it holds an unfailed lock, and never
    removes a worker that beats."""
    now = T0 + timedelta(minutes=10)
    clock = ManualClock(now)
    db = backend_at(db_url, clock)
    before = now - timedelta(seconds=60)
    old = now - timedelta(minutes=5)
    db.register_worker(TABLE, record("dead", old))
    db.register_worker(TABLE, record("alive", now))
    held = lock(db, db.enqueue(JOB), "dead", old)
    lock(db, db.enqueue(JOB), "dead", old, failed=True)
    assert [w.name for w in db.dead_workers(TABLE, before)] == ["dead"]
    assert not db.forget_worker(TABLE, "dead", before)
    assert not db.forget_worker(TABLE, "alive", before)
    db.unlock(held)
    assert db.forget_worker(TABLE, "dead", before)
    assert [w.name for w in db.workers(TABLE)] == ["alive"]
    db.close()


def test_workers_refuse_to_start_without_the_registry_table(db_url: str) -> None:
    """A table made by a Rails migration alone: the worker names the missing registry
    table and both ways out; `djmw schema` creates only what is missing (the jobs are kept)
    and the worker starts; registry=False starts without it."""
    db = open_backend(db_url)
    db.create_schema()
    db._execute(f"DROP TABLE {TABLE}")
    job_id = db.enqueue(JOB)
    handlers = Handlers({"J": lambda job: None})
    with pytest.raises(ConfigurationError) as info:
        Worker(database=db_url, handlers=handlers).prepare()
    message = str(info.value)
    assert "worker registry table 'delayed_workers' does not exist" in message
    assert "djmw schema" in message
    assert "--no-registry" in message
    assert Worker(database=db_url, handlers=handlers, registry=False).work_off(0) == (0, 0)
    assert main(["schema", "--database", db_url]) == 0
    assert db.job(job_id) is not None
    Worker(database=db_url, handlers=handlers).prepare()
    db.close()


def test_a_prefixed_jobs_table_gets_a_prefixed_registry(db_url: str) -> None:
    """create_schema for `app_delayed_jobs` creates `app_delayed_workers`, which the worker
    uses by default."""
    db = open_backend(db_url, table="app_delayed_jobs")
    db.create_schema()
    db.check_registry("app_delayed_workers")
    with pytest.raises(ConfigurationError):
        db.check_registry(TABLE)
    Worker(database=db_url, table="app_delayed_jobs", handlers=Handlers({"J": print})).prepare()
    db.close()


def test_the_registry_rescues_on_the_database(db_url: str) -> None:
    """A Worker finds a registered worker dead on the database, charges its job (attempts
    1, last_error; due 6 s after the last heartbeat, so at once), runs it, and removes the
    dead worker from the registry."""
    now = T0 + timedelta(minutes=10)
    clock = ManualClock(now)
    db = backend_at(db_url, clock)
    last_beat = now - timedelta(minutes=2)
    db.register_worker(TABLE, record("dead", last_beat))
    job_id = lock(db, db.enqueue(JOB), "dead", now - timedelta(minutes=3)).id
    ran: list[tuple[int, int, str | None]] = []
    worker = Worker(
        database=db_url,
        handlers=Handlers({"J": lambda job: ran.append((job.id, job.attempts, job.last_error))}),
        clock=clock,
        name="rescuer",
        sleep_delay=0.05,
        heartbeat_interval=0.05,
    ).start()
    try:
        deadline = time.monotonic() + 30
        while not ran and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
        worker.join(10)
    # Due at last_beat + 6 s, long past: run at once, as its second attempt.
    assert ran == [(job_id, 1, "worker dead died while running this job")]
    assert db.workers(TABLE) == []
    db.close()
