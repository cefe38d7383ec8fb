"""Batch claims (``Worker(prefetch=K)``) and precise idle wake-ups, on real MariaDB and SQLite.

Each test runs once per database. The worker's clock is a ManualClock unless the test
needs real time; rows are real delayed_jobs rows.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest

from djmw import Handlers, Succeeded, Worker
from djmw.backends import ReserveRequest, open_backend
from djmw.backends.base import SqlBackend
from djmw.job import Job
from djmw.testing import ManualClock

OK = "--- !ruby/struct:OkJob\nn: 1\n"
T0 = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def backend_at(db_url: str, clock: ManualClock) -> SqlBackend:
    backend = open_backend(db_url, clock=clock)
    backend.create_schema()
    backend.check_schema()
    return backend


def request(name: str, clock: ManualClock, **filters: object) -> ReserveRequest:
    return ReserveRequest(worker_name=name, now=clock(), max_run_time=3600.0, **filters)  # type: ignore[arg-type]


def test_a_batch_claim_locks_k_rows_in_reserve_order(db_url: str, clock: ManualClock) -> None:
    """reserve_many locks up to K rows, in priority then run_at order, each with the
    worker's locked_by and locked_at; another worker's claim gets the next rows only."""
    db = backend_at(db_url, clock)
    late = db.enqueue(OK, priority=0, run_at=T0 - timedelta(seconds=10))
    early = db.enqueue(OK, priority=0, run_at=T0 - timedelta(seconds=20))
    urgent = db.enqueue(OK, priority=-5, run_at=T0)
    rest = [db.enqueue(OK, priority=3, run_at=T0) for _ in range(2)]
    jobs = db.reserve_many(request("first", clock), 3)
    assert [job.id for job in jobs] == [urgent, early, late]
    for job in jobs:
        row = db.job(job.id)
        assert row is not None
        assert (row.locked_by, row.locked_at, row.attempts) == ("first", T0, 0)
        assert (job.locked_by, job.locked_at) == ("first", T0)
    other = open_backend(db_url, clock=clock)
    taken = other.reserve_many(request("second", clock), 5)
    assert [job.id for job in taken] == rest
    assert other.reserve_many(request("third", clock), 5) == []
    other.close()
    db.close()


def test_the_previous_outcome_rides_on_the_claim(db_url: str, clock: ManualClock) -> None:
    """reserve_many(finish=...) deletes the finished job and claims the next rows."""
    db = backend_at(db_url, clock)
    ids = [db.enqueue(OK) for _ in range(3)]
    (first,) = db.reserve_many(request("w", clock), 1)
    jobs = db.reserve_many(request("w", clock), 5, finish=(first, Succeeded()))
    assert [job.id for job in jobs] == ids[1:]
    assert db.job(first.id) is None
    db.close()


def test_start_next_refreshes_locked_at_with_the_previous_write(
    db_url: str, clock: ManualClock
) -> None:
    """As a prefetched job starts, its locked_at moves to now, in the round trip that
    deletes the job before it; the returned Job carries the new locked_at."""
    db = backend_at(db_url, clock)
    for _ in range(2):
        db.enqueue(OK)
    first, second = db.reserve_many(request("w", clock), 2)
    clock.advance(90)
    started = db.start_next(second, finish=(first, Succeeded()))
    assert started is not None
    assert started.locked_at == T0 + timedelta(seconds=90)
    assert db.job(first.id) is None
    row = db.job(second.id)
    assert row is not None
    assert (row.locked_by, row.locked_at) == ("w", T0 + timedelta(seconds=90))
    db.close()


def test_start_next_skips_a_row_another_worker_took(db_url: str, clock: ManualClock) -> None:
    """A prefetched row whose lock is no longer ours (taken after it expired) does not
    start: start_next returns None and leaves the other worker's lock alone."""
    db = backend_at(db_url, clock)
    for _ in range(2):
        db.enqueue(OK)
    first, second = db.reserve_many(request("w", clock), 2)
    clock.advance(4000)  # past max_run_time: anyone may take the waiting row
    thief = open_backend(db_url, clock=clock)
    stolen = thief.reserve_many(request("thief", clock), 2)
    assert [job.id for job in stolen] == [first.id, second.id]
    assert db.start_next(second, finish=(first, Succeeded())) is None
    for job in stolen:  # the guarded DELETE left the thief's row too
        row = db.job(job.id)
        assert row is not None
        assert row.locked_by == "thief"
    thief.close()
    db.close()


def test_a_prefetching_worker_runs_every_job_once_in_order(db_url: str, clock: ManualClock) -> None:
    """Worker(prefetch=4) runs ten jobs in reserve order, each once, and deletes them."""
    db = backend_at(db_url, clock)
    ids = [db.enqueue(OK, priority=10 - index) for index in range(10)]
    ran: list[int] = []
    worker = Worker(
        database=db_url,
        handlers=Handlers({"OkJob": lambda job: ran.append(job.id)}),
        clock=clock,
        name="w",
        prefetch=4,
    )
    assert worker.work_off(100) == (10, 0)
    worker.close()
    assert ran == list(reversed(ids))
    assert db.jobs() == []
    db.close()


def test_rows_not_started_are_given_back_without_an_attempt(
    db_url: str, clock: ManualClock
) -> None:
    """work_off(2) with prefetch=5 runs two jobs and unlocks the three it claimed ahead,
    attempts 0, leaving the others untouched."""
    db = backend_at(db_url, clock)
    ids = [db.enqueue(OK) for _ in range(8)]
    worker = Worker(
        database=db_url,
        handlers=Handlers({"OkJob": lambda job: None}),
        clock=clock,
        name="w",
        prefetch=5,
    )
    assert worker.work_off(2) == (2, 0)
    rows = db.jobs()
    assert [row.id for row in rows] == ids[2:]
    assert all((row.locked_by, row.locked_at, row.attempts) == (None, None, 0) for row in rows)
    worker.close(clear_locks=False)
    db.close()


def test_a_graceful_stop_gives_back_the_prefetched_rows(db_url: str) -> None:
    """stop() during a batch: the running job finishes, the rows claimed ahead are
    unlocked with attempts 0 and nothing else ran."""
    db = open_backend(db_url)
    db.create_schema()
    for _ in range(10):
        db.enqueue(OK)
    ran: list[int] = []
    holder: list[Worker] = []

    def job(job: Job) -> None:
        ran.append(job.id)
        if len(ran) == 2:
            holder[0].stop()

    worker = Worker(database=db_url, handlers=Handlers({"OkJob": job}), name="w", prefetch=6)
    holder.append(worker)
    worker.run()
    rows = db.jobs()
    assert len(ran) == 2
    assert len(rows) == 8
    assert all((row.locked_by, row.attempts) == (None, 0) for row in rows)
    db.close()


def test_prefetching_workers_racing_never_share_a_row(db_url: str) -> None:
    """Four workers claiming batches of 7 from one table run 300 jobs, each exactly once."""
    db = open_backend(db_url)
    db.create_schema()
    for _ in range(300):
        db.enqueue(OK)
    ran: list[int] = []
    lock = threading.Lock()

    def record(job: Job) -> None:
        with lock:
            ran.append(job.id)

    workers = [
        Worker(
            database=db_url,
            handlers=Handlers({"OkJob": record}),
            name=f"racer {index}",
            exit_on_complete=True,
            prefetch=7,
        )
        for index in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert len(ran) == len(set(ran)) == 300
    assert db.jobs() == []
    db.close()


def test_next_run_at_is_the_earliest_row_this_worker_could_take(
    db_url: str, clock: ManualClock
) -> None:
    """next_run_at skips due rows, rows locked by others, failed rows and rows outside
    the worker's queues; None when nothing is scheduled."""
    db = backend_at(db_url, clock)
    assert db.next_run_at(request("w", clock)) is None
    db.enqueue(OK, run_at=T0 - timedelta(seconds=1))  # due already
    db.enqueue(OK, run_at=T0 + timedelta(seconds=30), queue="other")
    wanted = T0 + timedelta(seconds=50)
    db.enqueue(OK, run_at=wanted, queue="mine")
    db.enqueue(OK, run_at=T0 + timedelta(seconds=90), queue="mine")
    locked_id = db.enqueue(OK, run_at=T0 + timedelta(seconds=20), queue="mine")
    failed_id = db.enqueue(OK, run_at=T0 + timedelta(seconds=10), queue="mine")
    stamp = db._stamp(T0)
    db._execute(
        f"UPDATE delayed_jobs SET locked_by = 'other', locked_at = {db.mark} WHERE id = {db.mark}",
        [stamp, locked_id],
    )
    db._execute(
        f"UPDATE delayed_jobs SET failed_at = {db.mark} WHERE id = {db.mark}", [stamp, failed_id]
    )
    assert db.next_run_at(request("w", clock, queues=("mine",))) == wanted
    assert db.next_run_at(request("w", clock)) == T0 + timedelta(seconds=30)
    db.close()


def test_an_idle_worker_sleeps_until_the_next_run_at(db_url: str, clock: ManualClock) -> None:
    """The idle sleep is sleep_delay, or less when a row becomes due sooner."""
    db = backend_at(db_url, clock)
    worker = Worker(
        database=db_url, handlers=Handlers({"OkJob": lambda job: None}), clock=clock, name="w"
    )
    worker.prepare()
    loop = worker._loop
    assert loop is not None
    assert loop.idle_delay() == 5.0
    db.enqueue(OK, run_at=T0 + timedelta(seconds=2))
    assert loop.idle_delay() == pytest.approx(2.001)
    clock.advance(1.5)
    assert loop.idle_delay() == pytest.approx(0.501)
    worker.close()
    db.close()


def test_a_job_scheduled_ahead_runs_without_waiting_for_the_poll(db_url: str) -> None:
    """With a 60 s poll interval, a job scheduled 1 s ahead runs once it is due: the
    worker slept until its run_at instead of the whole interval."""
    db = open_backend(db_url)
    db.create_schema()
    job_id = db.enqueue(OK, run_at=db.clock() + timedelta(seconds=1))
    done = threading.Event()
    worker = Worker(
        database=db_url,
        handlers=Handlers({"OkJob": lambda job: done.set()}),
        name="w",
        sleep_delay=60,
    )
    worker.start()
    try:
        assert done.wait(30)
    finally:
        worker.stop()
        worker.join(30)
    deadline = time.monotonic() + 10
    while db.job(job_id) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.job(job_id) is None
    db.close()


@pytest.mark.mysql
def test_servers_without_skip_locked_claim_a_batch_row_by_row(
    mysql_url: str, clock: ManualClock
) -> None:
    """With delayed_job's UPDATE ... LIMIT 1 strategy, a batch claim takes K distinct rows."""
    db = open_backend(mysql_url, clock=clock, reserve_sql="update_limit")
    db.create_schema()
    db.check_schema()
    ids = [db.enqueue(OK) for _ in range(4)]
    jobs = db.reserve_many(request("w", clock), 3)
    assert [job.id for job in jobs] == ids[:3]
    assert [row.locked_by for row in db.jobs()] == ["w", "w", "w", None]
    db.close()
