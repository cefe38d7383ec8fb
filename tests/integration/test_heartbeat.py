"""Heartbeat and SqlBackend.touch against real MariaDB and SQLite.

The stealing tests use real time (the default clock) for both workers: the second
worker's reserve compares the lock with its own "now", as in production.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

import pytest

from djmw import Handlers, Worker
from djmw.backends import open_backend
from djmw.backends.base import SqlBackend
from djmw.errors import ConfigurationError
from djmw.job import Job
from djmw.middleware import Heartbeat, default_middlewares
from djmw.outcome import Outcome, Succeeded
from djmw.testing import ManualClock, make_job

LONG_JOB = "--- !ruby/struct:LongJob {}\n"
T0 = datetime(2026, 1, 1, 12, 0, 0)
NAME = "host:a pid:1"


def backend_at(db_url: str, clock: ManualClock) -> SqlBackend:
    backend = open_backend(db_url, clock=clock)
    backend.create_schema()
    backend.check_schema()
    return backend


def lock(db: SqlBackend, job_id: int, worker: str, at: datetime) -> Job:
    m = db.mark
    db._execute(
        f"UPDATE delayed_jobs SET locked_by = {m}, locked_at = {m} WHERE id = {m}",
        [worker, db._stamp(at), job_id],
    )
    job = db.job(job_id)
    assert job is not None
    return job


def test_touch_refreshes_only_our_own_lock(db_url: str) -> None:
    """touch moves locked_at to now while locked_by matches (also when the stamp is
    unchanged), and returns False, writing nothing, for another worker's or a gone row."""
    clock = ManualClock(T0)
    db = backend_at(db_url, clock)
    job = lock(db, db.enqueue(LONG_JOB), NAME, T0)
    clock.advance(10)
    assert db.touch(job)
    assert db.touch(job)
    row = db.job(job.id)
    assert row is not None
    assert row.locked_at == T0 + timedelta(seconds=10)
    assert row.locked_by == NAME

    theirs = lock(db, job.id, "host:b pid:2", T0)
    clock.advance(10)
    assert not db.touch(job)
    row = db.job(job.id)
    assert row == theirs

    db._execute("DELETE FROM delayed_jobs")
    assert not db.touch(job)
    db.close()


def test_beats_refresh_the_lock_while_the_job_runs_and_stop_after(db_url: str) -> None:
    """Every interval the row's locked_at becomes the job clock's now; after the job
    ended no beat writes any more, and no heartbeat thread is left."""
    clock = ManualClock(T0)
    db = backend_at(db_url, clock)
    job = lock(db, db.enqueue(LONG_JOB), NAME, T0)
    job = make_job(id=job.id, locked_by=NAME, clock=clock)
    seen: list[datetime | None] = []

    def handler(job: Job) -> Outcome:
        clock.advance(60)
        time.sleep(0.5)
        row = db.job(job.id)
        seen.append(row.locked_at if row else None)
        return Succeeded()

    heartbeat = Heartbeat(interval=0.1, connect=lambda: open_backend(db_url, clock=clock))
    assert heartbeat(job, handler) == Succeeded()
    assert seen == [T0 + timedelta(seconds=60)]
    assert not [t for t in threading.enumerate() if t.name.startswith("djmw heartbeat")]
    clock.advance(60)
    time.sleep(0.3)
    row = db.job(job.id)
    assert row is not None
    assert row.locked_at == T0 + timedelta(seconds=60)
    db.close()


def test_a_lost_lock_ends_the_beats_with_a_warning(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When another worker holds the row, the beat logs it once and stops beating."""
    clock = ManualClock(T0)
    db = backend_at(db_url, clock)
    job_id = db.enqueue(LONG_JOB)
    lock(db, job_id, "host:b pid:2", T0)
    job = make_job(id=job_id, locked_by=NAME, clock=clock)
    with caplog.at_level(logging.WARNING, logger="djmw.heartbeat"):
        Heartbeat(interval=0.05, connect=lambda: open_backend(db_url, clock=clock))(
            job, lambda j: time.sleep(0.4) or Succeeded()
        )
    lost = [r for r in caplog.records if "no longer locked by host:a pid:1" in r.getMessage()]
    assert len(lost) == 1
    row = db.job(job_id)
    assert row is not None
    assert row.locked_at == T0
    db.close()


def test_beat_errors_are_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    """A heartbeat that cannot reach its database logs each failure; the job succeeds."""
    heartbeat = Heartbeat(
        interval=0.05, connect=lambda: open_backend("sqlite:////nonexistent-dir/jobs.db")
    )
    job = make_job(locked_by=NAME)
    with caplog.at_level(logging.ERROR, logger="djmw.heartbeat"):
        outcome = heartbeat(job, lambda j: time.sleep(0.3) or Succeeded("done"))
    assert outcome == Succeeded("done")
    failures = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    assert len(failures) >= 2


def test_unlocked_job_runs_without_beats() -> None:
    """A job that no worker locked (a unit test's make_job) just runs: nothing to refresh."""
    before = threading.active_count()
    seen: list[int] = []

    def handler(job: Job) -> Outcome:
        seen.append(threading.active_count())
        return Succeeded()

    Heartbeat(interval=0.01, connect=lambda: open_backend("sqlite:////nonexistent-dir/jobs.db"))(
        make_job(), handler
    )
    assert seen == [before]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"interval": 0}, "interval"),
        ({"interval": -1.0}, "interval"),
        ({"interval": True}, "interval"),
        ({"interval": float("inf")}, "interval"),
    ],
)
def test_bad_configuration_names_the_field(options: dict[str, object], field: str) -> None:
    """Bad values fail at construction with a ConfigurationError naming the field."""
    with pytest.raises(ConfigurationError, match=f"Heartbeat: {field}"):
        Heartbeat(**options)  # type: ignore[arg-type]


def race(db_url: str, *, heartbeat: bool) -> tuple[float | None, tuple[int, int]]:
    """Run a 4-second job on worker A (max_run_time=2) while worker B keeps reserving.

    Returns when B took the job (seconds after A started it), or None, and A's result.
    """
    setup = open_backend(db_url)
    setup.create_schema()
    setup.enqueue(LONG_JOB)
    setup.close()
    running = threading.Event()

    def long_job(job: Job) -> None:
        running.set()
        time.sleep(4)

    handlers = Handlers({"LongJob": long_job})
    chain = default_middlewares(handlers)[:-1]  # no EnforceTimeout: see Heartbeat's limits
    if heartbeat:
        chain.insert(3, Heartbeat(interval=0.5))  # the worker gives it Worker.connect
    worker_a = Worker(
        database=db_url, handlers=handlers, middlewares=chain, max_run_time=2, name="worker A"
    )
    stolen: list[int] = []
    worker_b = Worker(
        database=db_url,
        handlers=Handlers({"LongJob": lambda job: stolen.append(job.id)}),
        max_run_time=2,
        name="worker B",
    )
    result: list[tuple[int, int]] = []
    thread = threading.Thread(target=lambda: result.append(worker_a.work_off(1)))
    thread.start()
    assert running.wait(5)
    started = time.monotonic()
    taken_after: float | None = None
    while thread.is_alive():
        if taken_after is None and worker_b.work_off(1) == (1, 0):
            taken_after = time.monotonic() - started
        time.sleep(0.1)
    thread.join()
    worker_a.close()
    worker_b.close()
    return taken_after, result[0]


def test_heartbeat_keeps_other_workers_off_a_long_job(db_url: str) -> None:
    """With beats every 0.5 s, a 4-second job outlives max_run_time=2 without being taken
    by a second worker, and its own worker records the success."""
    taken_after, result = race(db_url, heartbeat=True)
    assert taken_after is None
    assert result == (1, 0)
    check = open_backend(db_url)
    assert check.jobs() == []
    check.close()


def test_without_heartbeat_the_lock_expires_and_the_job_is_taken(db_url: str) -> None:
    """Without beats the second worker takes the 4-second job once its lock is 2 s old."""
    taken_after, _ = race(db_url, heartbeat=False)
    assert taken_after is not None
    assert 0.9 <= taken_after < 3.5
