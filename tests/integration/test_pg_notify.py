"""PostgreSQL's notify trigger: which writes notify, and idle workers that wake on them.

``djmw schema --notify`` installs a trigger that NOTIFYs ``djmw_<table>`` when a row
becomes ready; an idle worker LISTENs and reserves at once instead of sleeping out its
``sleep_delay``. Without the trigger the worker polls, as on every other database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from djmw import Handlers, Job, Worker
from djmw.backends import ReserveRequest, open_backend
from djmw.backends.postgresql import PostgresqlBackend

pytestmark = pytest.mark.postgresql
OK = "--- !ruby/struct:OkJob\nn: 1\n"


@pytest.fixture
def db(pg_url: str) -> Iterator[PostgresqlBackend]:
    """A PostgreSQL backend with delayed_jobs and the notify trigger installed."""
    backend = open_backend(pg_url)
    assert isinstance(backend, PostgresqlBackend)
    backend.create_schema()
    backend.install_notify()
    yield backend
    backend.close()


def notifications(pg_url: str, action: object) -> list[str]:
    """Run ``action()`` while LISTENing on djmw_delayed_jobs; return the payloads heard."""
    listener = psycopg.connect(pg_url, autocommit=True)
    try:
        listener.execute('LISTEN "djmw_delayed_jobs"')
        action()  # type: ignore[operator]
        return [n.payload for n in listener.notifies(timeout=0.5)]
    finally:
        listener.close()


def test_the_trigger_notifies_when_a_row_becomes_ready(pg_url: str, db: PostgresqlBackend) -> None:
    """Insert, reschedule (run_at), un-fail (failed_at) and unlock notify, with the queue
    as payload; a claim, a permanent failure and a delete do not."""
    assert notifications(pg_url, lambda: db.enqueue(OK, queue="mail")) == ["mail"]
    job_id = db.enqueue(OK)
    set_row = "UPDATE delayed_jobs SET {} WHERE id = %s"

    def run(assignments: str) -> None:
        db._execute(set_row.format(assignments), [job_id])

    assert notifications(pg_url, lambda: run("locked_by = 'w', locked_at = now()")) == []
    assert notifications(pg_url, lambda: run("failed_at = now()")) == []
    assert notifications(pg_url, lambda: run("failed_at = NULL")) == []  # still locked
    assert notifications(pg_url, lambda: run("locked_by = NULL, locked_at = NULL")) == [""]
    assert notifications(pg_url, lambda: run("run_at = now()")) == [""]
    assert notifications(pg_url, lambda: run("attempts = 3")) == []
    assert notifications(pg_url, lambda: db._execute("DELETE FROM delayed_jobs")) == []


def test_a_bulk_insert_notifies_once_per_queue(pg_url: str, db: PostgresqlBackend) -> None:
    """1,000 rows inserted in one transaction give one notification per queue, not 1,000."""

    def bulk() -> None:
        db._execute(
            "INSERT INTO delayed_jobs (handler, run_at, queue) "
            "SELECT %s, now(), CASE WHEN n %% 2 = 0 THEN 'a' ELSE 'b' END "
            "FROM generate_series(1, 1000) AS n",
            [OK],
        )

    assert sorted(notifications(pg_url, bulk)) == ["a", "b"]


def idle_worker(pg_url: str, ran: list[int], **options: object) -> Worker:
    """A started worker with a sleep_delay far longer than any test waits."""
    options.setdefault("sleep_delay", 600)
    worker = Worker(
        database=pg_url,
        handlers=Handlers({"OkJob": lambda job: ran.append(job.id)}),
        name="listener",
        **options,  # type: ignore[arg-type]
    )
    worker.start()
    wait_until(lambda: worker.status == "sleeping", "the worker to go idle")
    loop = worker._loop
    assert loop is not None
    backend = loop.backend
    if isinstance(backend, PostgresqlBackend) and backend.listen:
        # "sleeping" comes just before the LISTEN: a notification sent before it is lost.
        wait_until(lambda: backend._listening, "the worker to listen")
    return worker


def wait_until(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_an_idle_worker_wakes_on_an_insert(pg_url: str, db: PostgresqlBackend) -> None:
    """With the trigger, a worker sleeping a 600 s sleep_delay runs a new job at once,
    and again for a job enqueued from another connection later."""
    ran: list[int] = []
    worker = idle_worker(pg_url, ran)
    try:
        for _ in range(3):
            other = open_backend(pg_url)
            job_id = other.enqueue(OK)
            other.close()
            wait_until(lambda job_id=job_id: job_id in ran, "the woken worker to run the job")
            wait_until(lambda: worker.status == "sleeping", "the worker to go idle again")
    finally:
        worker.stop()
        worker.join(10)
    assert worker.status == "stopped"
    assert db.jobs() == []


def test_a_notification_for_a_future_job_only_costs_one_empty_reserve(
    pg_url: str, db: PostgresqlBackend
) -> None:
    """A job scheduled for later notifies too; the woken worker finds nothing ready and
    goes back to sleep, leaving the row alone."""
    ran: list[int] = []
    worker = idle_worker(pg_url, ran)
    try:
        assert worker._loop is not None
        backend = worker._loop.backend
        assert isinstance(backend, PostgresqlBackend)
        future = db.enqueue(OK, run_at=db.clock() + timedelta(hours=1))
        wait_until(lambda: backend.stats["wakeups"] == 1, "the worker to wake")
        wait_until(lambda: worker.status == "sleeping", "the worker to sleep again")
    finally:
        worker.stop()
        worker.join(10)
    assert ran == []
    assert [job.id for job in db.jobs()] == [future]


def test_stop_ends_a_listening_sleep_at_once(pg_url: str, db: PostgresqlBackend) -> None:
    """stop() during the LISTEN wait ends the worker without waiting out sleep_delay."""
    worker = idle_worker(pg_url, [])
    worker.stop()
    worker.join(10)
    assert worker.status == "stopped"


def test_without_the_trigger_workers_poll(pg_url: str, db: PostgresqlBackend) -> None:
    """After --remove-notify nothing wakes a sleeping worker; it finds the job when its
    sleep_delay is over, as on any other database."""
    db.remove_notify()
    ran: list[int] = []
    worker = idle_worker(pg_url, ran, sleep_delay=1.5)
    try:
        # Due already: a row due just after the worker's last look would count as the
        # next run_at it knows of, and end its sleep early by design.
        job_id = db.enqueue(OK, run_at=db.clock() - timedelta(seconds=10))
        time.sleep(0.5)
        assert ran == []  # still asleep: nothing woke it
        wait_until(lambda: job_id in ran, "the polling worker to run the job")
    finally:
        worker.stop()
        worker.join(10)
    backend = worker.connect()
    assert isinstance(backend, PostgresqlBackend)
    assert not backend.notify_installed()
    backend.close()


def test_a_lost_listening_connection_is_reopened(pg_url: str, db: PostgresqlBackend) -> None:
    """When the server ends the listening session, the idle worker reconnects within about
    a second, LISTENs again and is woken by the next insert (its sleep_delay is 600 s)."""
    ran: list[int] = []
    worker = idle_worker(f"{pg_url}?application_name=listener", ran)
    try:
        assert worker._loop is not None
        backend = worker._loop.backend
        assert isinstance(backend, PostgresqlBackend)
        db._execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'listener'"
        )
        wait_until(lambda: backend.stats["reconnects"] == 1, "the worker to reconnect")
        wait_until(lambda: worker.status == "sleeping", "the worker to go idle again")
        job_id = db.enqueue(OK)
        wait_until(lambda: job_id in ran, "the notification to wake the worker")
    finally:
        worker.stop()
        worker.join(10)
    assert worker.status == "stopped"


def test_notifications_do_not_pile_up_while_the_worker_is_busy(
    pg_url: str, db: PostgresqlBackend
) -> None:
    """A woken worker stops listening until it is idle again: the 50 inserts made while it
    works leave no notifications queued on its connection to wake it again later."""

    release = threading.Event()
    ran: list[int] = []

    def slow(job: Job) -> None:
        ran.append(job.id)
        release.wait(30)

    worker = Worker(
        database=pg_url, handlers=Handlers({"OkJob": slow}), name="busy", sleep_delay=600
    )
    worker.start()
    try:
        wait_until(lambda: worker.status == "sleeping", "the worker to go idle")
        first = db.enqueue(OK)
        wait_until(lambda: first in ran, "the first job to start")
        for _ in range(50):
            db.enqueue(OK, run_at=db.clock() + timedelta(hours=1))
        assert worker._loop is not None
        backend = worker._loop.backend
        assert isinstance(backend, PostgresqlBackend)
        release.set()
        wait_until(lambda: worker.status == "sleeping", "the worker to go idle again")
        time.sleep(0.5)  # queued notifications would wake it now, and count
        assert backend.stats["wakeups"] == 1
        assert ran == [first]
    finally:
        release.set()
        worker.stop()
        worker.join(10)


def test_wait_for_jobs_returns_true_only_when_notified(pg_url: str, db: PostgresqlBackend) -> None:
    """Backend.wait_for_jobs: True when it starts listening or a notification ended the
    wait, False on timeout or stop."""
    stop = threading.Event()
    assert db.wait_for_jobs(0.2, stop) is True  # it was not listening: reserve again first
    assert db.wait_for_jobs(0.2, stop) is False
    other = open_backend(pg_url)
    other.enqueue(OK)
    other.close()
    assert db.wait_for_jobs(30, stop) is True
    stop.set()
    assert db.wait_for_jobs(30, stop) is False


@pytest.mark.parametrize("prefetch", [1, 3])
def test_a_claim_right_after_starting_to_listen_stops_listening(
    pg_url: str, db: PostgresqlBackend, prefetch: int
) -> None:
    """A worker that starts listening reserves once at once; when that claim finds work
    it UNLISTENs, so the inserts made while it works queue no notifications on its
    connection: the next idle wait starts listening afresh and then times out."""
    stop = threading.Event()
    assert db.wait_for_jobs(0.2, stop) is True  # now listening
    other = open_backend(pg_url)
    other.enqueue(OK)
    request = ReserveRequest(worker_name="w", now=db.clock(), max_run_time=3600)
    if prefetch == 1:
        assert db.reserve(request) is not None
    else:
        assert len(db.reserve_many(request, prefetch)) == 1
    for _ in range(5):
        other.enqueue(OK, run_at=db.clock() + timedelta(hours=1))
    other.close()
    assert db.wait_for_jobs(0.2, stop) is True  # listening again: reserve once
    assert db.wait_for_jobs(0.5, stop) is False  # nothing stale wakes it
    assert db.stats["wakeups"] == 0
