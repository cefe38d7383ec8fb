"""The behaviour contract (docs/contract.md), item by item, on MariaDB, PostgreSQL and SQLite.

Each test names the item of ``docs/contract.md`` it checks. Every test
runs once per database (the ``db_url`` fixture); the worker's clock is a ManualClock so
that time moves only when the test says so.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

import pytest

from djmw import Handlers, PermanentError, Worker
from djmw.backends import open_backend
from djmw.backends.base import SqlBackend
from djmw.job import Job
from djmw.testing import ManualClock

NAME = "host:test pid:1"
OK = "--- !ruby/struct:OkJob\nn: 1\n"
FAIL = "--- !ruby/struct:FailJob\nn: 1\n"
T0 = datetime(2026, 1, 1, 12, 0, 0)


def handlers(ran: list[int] | None = None) -> Handlers:
    ran = ran if ran is not None else []
    registry = Handlers()

    @registry.register("OkJob")
    def ok(job: Job) -> None:
        ran.append(job.id)

    @registry.register("FailJob")
    def fail(job: Job) -> None:
        msg = "boom"
        raise ValueError(msg)

    @registry.register("PermanentJob")
    def permanent(job: Job) -> None:
        msg = "cannot succeed"
        raise PermanentError(msg)

    return registry


def make_worker(
    db_url: str, clock: ManualClock, ran: list[int] | None = None, **options: object
) -> Worker:
    options.setdefault("name", NAME)
    return Worker(database=db_url, handlers=handlers(ran), clock=clock, **options)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def backend_at(db_url: str, clock: ManualClock, table: str = "delayed_jobs") -> SqlBackend:
    backend = open_backend(db_url, clock=clock, table=table)
    backend.create_schema()
    backend.check_schema()
    return backend


def test_item1_prefixed_table_and_unknown_columns(db_url: str, clock: ManualClock) -> None:
    """1: a prefixed table name works and extra columns (delayed_cron_job's cron) are ignored."""
    backend = backend_at(db_url, clock, table="app_delayed_jobs")
    backend._execute("ALTER TABLE app_delayed_jobs ADD COLUMN cron varchar(255)")
    job_id = backend.enqueue(OK)
    ran: list[int] = []
    worker = make_worker(db_url, clock, ran, table="app_delayed_jobs")
    assert worker.work_off(10) == (1, 0)
    assert ran == [job_id]
    assert backend.jobs() == []


def test_item2_eligibility_predicate(db_url: str, clock: ManualClock) -> None:
    """2: ready, expired-lock and own-lock rows are taken; future, fresh-lock, failed are not."""
    db = backend_at(db_url, clock)
    ready = db.enqueue(OK)
    future = db.enqueue(OK, run_at=T0 + timedelta(seconds=30))
    fresh_lock = db.enqueue(OK)
    expired_lock = db.enqueue(OK)
    own_future = db.enqueue(OK, run_at=T0 + timedelta(days=1))
    failed = db.enqueue(OK)
    m = db.mark
    lock = f"UPDATE delayed_jobs SET locked_by = {m}, locked_at = {m} WHERE id = {m}"
    db._execute(lock, ["other", db._stamp(T0 - timedelta(hours=3)), fresh_lock])
    db._execute(lock, ["other", db._stamp(T0 - timedelta(hours=4, seconds=1)), expired_lock])
    db._execute(lock, [NAME, db._stamp(T0 - timedelta(minutes=1)), own_future])
    db._execute(f"UPDATE delayed_jobs SET failed_at = {m} WHERE id = {m}", [db._stamp(T0), failed])
    ran: list[int] = []
    make_worker(db_url, clock, ran).work_off(100)
    assert sorted(ran) == sorted([ready, expired_lock, own_future])
    assert {job.id for job in db.jobs()} == {future, fresh_lock, failed}


def test_item3_order_queues_and_priorities(db_url: str, clock: ManualClock) -> None:
    """3: priority then run_at order; queue filter excludes NULL; bounds inclusive, 0 active."""
    db = backend_at(db_url, clock)
    late = db.enqueue(OK, priority=0, run_at=T0 - timedelta(seconds=1))
    early = db.enqueue(OK, priority=0, run_at=T0 - timedelta(seconds=9))
    urgent = db.enqueue(OK, priority=-5)
    ran: list[int] = []
    make_worker(db_url, clock, ran).work_off(10)
    assert ran == [urgent, early, late]

    mail = db.enqueue(OK, queue="mail")
    null_queue = db.enqueue(OK)
    other = db.enqueue(OK, queue="other")
    ran.clear()
    make_worker(db_url, clock, ran, queues=["mail"]).work_off(10)
    assert ran == [mail]
    make_worker(db_url, clock, ran, queues=[None]).work_off(10)
    assert ran == [mail, null_queue]
    assert [j.id for j in db.jobs()] == [other]

    db._execute("DELETE FROM delayed_jobs")
    below, zero, one, two = (db.enqueue(OK, priority=p) for p in (-1, 0, 1, 2))
    ran.clear()
    make_worker(db_url, clock, ran, min_priority=0, max_priority=1).work_off(10)
    assert ran == [zero, one]
    assert {j.id for j in db.jobs()} == {below, two}


@pytest.mark.postgresql
def test_item4_postgresql_claim_skips_rows_locked_elsewhere(
    pg_url: str, clock: ManualClock
) -> None:
    """4/6: on PostgreSQL the claim is one UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP
    LOCKED) AND <predicate>: a row another session holds is skipped, not waited for, and
    once that session has locked it the predicate on the row keeps this worker off it."""
    import psycopg

    db = backend_at(pg_url, clock)
    first = db.enqueue(OK, priority=-1)
    second = db.enqueue(OK)
    worker = make_worker(pg_url, clock)
    worker.prepare()
    assert worker._loop is not None
    assert worker._loop.backend is not None
    other = psycopg.connect(pg_url)
    try:
        other.execute(
            "UPDATE delayed_jobs SET locked_by = 'ruby', locked_at = %s WHERE id = %s",
            [T0, first],
        )
        job = worker._loop.backend.reserve(worker._request(frozenset()))
        assert job is not None
        assert (job.id, job.locked_by, job.locked_at) == (second, NAME, T0)
        other.commit()
        # The second job is ours (eligible again through locked_by); leave it aside.
        assert worker._loop.backend.reserve(worker._request(frozenset({second}))) is None
    finally:
        other.close()
        worker.close(clear_locks=False)
    row = db.job(first)
    assert row is not None
    assert row.locked_by == "ruby"


@pytest.mark.postgresql
def test_item3_null_priority_sorts_last_on_postgresql(pg_url: str, clock: ManualClock) -> None:
    """3: on PostgreSQL a NULL priority (legacy tables) sorts after every number, as
    delayed_job_active_record's ORDER BY priority ASC does there (NULLS LAST)."""
    db = backend_at(pg_url, clock)
    db._execute("ALTER TABLE delayed_jobs ALTER COLUMN priority DROP NOT NULL")
    null = db.enqueue(OK)
    db._execute("UPDATE delayed_jobs SET priority = NULL WHERE id = %s", [null])
    late = db.enqueue(OK, priority=10)
    early = db.enqueue(OK, priority=-10)
    ran: list[int] = []
    make_worker(pg_url, clock, ran).work_off(10)
    assert ran == [early, late, null]


@pytest.mark.mysql
@pytest.mark.parametrize("strategy", ["skip_locked", "update_limit"])
def test_item5_mysql_lock_truncates_and_rereads(
    mysql_url: str, clock: ManualClock, strategy: str
) -> None:
    """5/7: MariaDB locks write whole-second locked_at; both reserve SQL strategies work."""
    clock.time = T0 + timedelta(microseconds=987654)
    db = backend_at(mysql_url, clock)
    job_id = db.enqueue(OK)
    seen: list[Job] = []
    worker = Worker(
        database=mysql_url,
        handlers=Handlers({"OkJob": seen.append}),
        clock=clock,
        name=NAME,
        backend_options={"reserve_sql": strategy},
    )
    worker.prepare()
    job = worker._loop.backend.reserve(worker._request(frozenset()))  # type: ignore[union-attr]
    assert job is not None
    assert job.id == job_id
    stored = db.job(job_id)
    assert stored is not None
    assert stored.locked_at == T0
    assert stored.locked_by == NAME
    assert stored.run_at == T0
    worker.close()


@pytest.mark.serial  # sets the MariaDB server's global time_zone
def test_item7_times_are_naive_utc_whatever_the_server_zone(
    db_url: str, clock: ManualClock
) -> None:
    """7: timestamps are the worker clock's naive UTC, even with a non-UTC server time_zone
    (on PostgreSQL: the database's TimeZone Asia/Tokyo and the session's America/New_York)."""
    db = backend_at(db_url, clock)
    worker_url = db_url
    if db_url.startswith("mysql"):
        db._execute("SET GLOBAL time_zone = '+09:00'")
    if db_url.startswith("postgresql"):
        database = db_url.rsplit("/", 1)[1]
        db._execute(f"ALTER DATABASE \"{database}\" SET TimeZone = 'Asia/Tokyo'")
        worker_url = f"{db_url}?options=-c%20TimeZone%3DAmerica/New_York"
        probe = open_backend(worker_url)
        assert probe._query("SHOW TimeZone") == [("America/New_York",)]
        probe.close()
    try:
        job_id = db.enqueue(FAIL)
        make_worker(worker_url, clock).work_off(1)
        row = db.job(job_id)
        assert row is not None
        assert row.run_at == T0 + timedelta(seconds=6)
        assert row.updated_at == T0
    finally:
        if db_url.startswith("mysql"):
            db._execute("SET GLOBAL time_zone = SYSTEM")


def test_item8_default_name_and_restart_resumes_own_job(db_url: str, clock: ManualClock) -> None:
    """8: the default name is host:<h> pid:<p>; a same-named worker takes its held job at once."""
    import os
    import socket

    assert Worker(database=db_url).worker_name == f"host:{socket.gethostname()} pid:{os.getpid()}"
    db = backend_at(db_url, clock)
    job_id = db.enqueue(OK, run_at=T0 + timedelta(days=1))
    m = db.mark
    db._execute(
        f"UPDATE delayed_jobs SET locked_by = {m}, locked_at = {m} WHERE id = {m}",
        [NAME, db._stamp(T0), job_id],
    )
    ran: list[int] = []
    make_worker(db_url, clock, ran).work_off(1)
    assert ran == [job_id]


def test_item9_success_deletes_the_row(db_url: str, clock: ManualClock) -> None:
    """9: a successful job's row is deleted and nothing else is written."""
    db = backend_at(db_url, clock)
    keep = db.enqueue(OK, run_at=T0 + timedelta(days=1))
    db.enqueue(OK)
    assert make_worker(db_url, clock).work_off(5) == (1, 0)
    assert [j.id for j in db.jobs()] == [keep]


def test_item10_failure_reschedules_in_one_update(db_url: str, clock: ManualClock) -> None:
    """10: attempts+1, run_at = now + attempts⁴ + 5, lock cleared, last_error = message + backtrace."""
    db = backend_at(db_url, clock)
    job_id = db.enqueue(FAIL)
    clock.advance(100)
    assert make_worker(db_url, clock).work_off(5) == (0, 1)
    row = db.job(job_id)
    assert row is not None
    assert (row.attempts, row.run_at, row.locked_at, row.locked_by, row.failed_at) == (
        1,
        T0 + timedelta(seconds=106),
        None,
        None,
        None,
    )
    assert row.updated_at == T0 + timedelta(seconds=100)
    assert row.last_error is not None
    first, *trace = row.last_error.split("\n")
    assert first == "boom"
    assert trace
    assert "in `fail'" in trace[0]


def test_item11_retried_while_below_max_attempts(db_url: str, clock: ManualClock) -> None:
    """11: with max_attempts 3 the job executes exactly 3 times, then fails permanently."""
    db = backend_at(db_url, clock)
    job_id = db.enqueue(FAIL)
    executions = 0
    worker = make_worker(db_url, clock, middlewares=None)
    for _ in range(5):
        worker_ = Worker(
            database=db_url,
            handlers=handlers(),
            clock=clock,
            name=NAME,
            middlewares=_chain_with_max_attempts(worker.handlers, 3),
        )
        s, f = worker_.work_off(1)
        executions += s + f
        clock.advance(10_000)
    row = db.job(job_id)
    assert executions == 3
    assert row is not None
    assert row.attempts == 3
    assert row.failed_at is not None


def _chain_with_max_attempts(registry: Handlers, max_attempts: int) -> list[object]:
    from djmw import middleware as mw

    chain: list[object] = list(mw.default_middlewares(registry))
    chain[4] = mw.ScheduleRetry(max_attempts=max_attempts)
    return chain


def test_item12_permanent_failure_keeps_locks_or_deletes(db_url: str, clock: ManualClock) -> None:
    """12: kept rows get failed_at with lock columns unchanged; delete_failed deletes."""
    db = backend_at(db_url, clock)
    job_id = db.enqueue("--- !ruby/struct:PermanentJob\nn: 1\n")
    make_worker(db_url, clock).work_off(1)
    row = db.job(job_id)
    assert row is not None
    assert (row.attempts, row.failed_at, row.locked_by, row.locked_at) == (1, T0, NAME, T0)
    assert row.last_error is not None
    assert row.last_error.startswith("cannot succeed\n")

    from djmw import middleware as mw

    chain = mw.default_middlewares(handlers())
    chain[3] = mw.MarkFailed(delete_failed=True)
    gone = db.enqueue("--- !ruby/struct:PermanentJob\nn: 1\n")
    Worker(
        database=db_url, handlers=handlers(), clock=clock, name=NAME, middlewares=chain
    ).work_off(1)
    assert db.job(gone) is None


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        ("--- !ruby/struct:NoSuchJob\nn: 1\n", "no perform function is registered for 'NoSuchJob'"),
        ("--- !ruby/struct:OkJob\n  n: [1\n", ""),
        ("--- !!python/object/apply:os.system ['echo owned']\n", ""),
    ],
)
def test_item13_undecodable_fails_at_once(
    db_url: str, clock: ManualClock, handler: str, reason: str
) -> None:
    """13: with ``unknown_jobs="fail"`` (delayed_job's strict path), an unknown class or bad
    YAML fails permanently, attempts unchanged, 'Job failed to load: '."""
    db = backend_at(db_url, clock)
    job_id = db.enqueue(handler)
    db._execute(f"UPDATE delayed_jobs SET attempts = 2 WHERE id = {db.mark}", [job_id])
    worker = make_worker(db_url, clock, unknown_jobs="fail")
    assert worker.work_off(1) == (0, 1)
    row = db.job(job_id)
    assert row is not None
    assert row.attempts == 2
    assert row.failed_at == T0
    assert row.last_error is not None
    assert row.last_error.startswith("Job failed to load: ")
    assert reason in row.last_error


def test_item14_timeout_is_a_failed_attempt(db_url: str, clock: ManualClock) -> None:
    """14: a job past max_run_time fails its attempt with delayed_job's message."""
    import time

    db = backend_at(db_url, clock)
    job_id = db.enqueue("--- !ruby/struct:SlowJob\nn: 1\n")
    registry = Handlers({"SlowJob": lambda job: time.sleep(30)})
    worker = Worker(database=db_url, handlers=registry, clock=clock, name=NAME, max_run_time=1)
    assert worker.work_off(1) == (0, 1)
    row = db.job(job_id)
    assert row is not None
    assert row.attempts == 1
    assert row.last_error is not None
    assert row.last_error.startswith(
        "execution expired (Delayed::Worker.max_run_time is only 1 second)"
    )


def test_item15_lock_expiry_ignores_per_job_max_run_time(db_url: str, clock: ManualClock) -> None:
    """15: another worker's lock expires after the worker-wide max_run_time only."""
    db = backend_at(db_url, clock)
    job_id = db.enqueue(OK)
    m = db.mark
    db._execute(
        f"UPDATE delayed_jobs SET locked_by = 'other', locked_at = {m} WHERE id = {m}",
        [db._stamp(T0 - timedelta(minutes=30)), job_id],
    )
    registry = Handlers()

    class Short:
        def config(self, job: Job) -> dict[str, object]:
            return {"max_run_time": 60}

        def perform(self, job: Job) -> None:
            pass

    registry.add("OkJob", Short())
    worker = Worker(database=db_url, handlers=registry, clock=clock, name=NAME)
    assert worker.work_off(1) == (0, 0)
    clock.advance(4 * 3600)
    assert worker.work_off(1) == (1, 0)


def test_item16_reserve_never_charges_attempts(db_url: str, clock: ManualClock) -> None:
    """16: a reserved job whose worker dies keeps its attempts and its lock."""
    db = backend_at(db_url, clock)
    job_id = db.enqueue(OK)
    worker = make_worker(db_url, clock)
    worker.prepare()
    assert worker._loop is not None
    assert worker._loop.backend is not None
    assert worker._loop.backend.reserve(worker._request(frozenset())) is not None
    row = db.job(job_id)
    assert row is not None
    assert (row.attempts, row.locked_by) == (0, NAME)


def test_item17_batches_of_at_most_100(
    db_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """17: a batch stops at 100 jobs; the next batch follows at once; then the worker exits."""
    caplog.set_level(logging.INFO, "djmw")
    db = backend_at(db_url, clock)
    for _ in range(130):
        db.enqueue(OK)
    worker = make_worker(db_url, clock, exit_on_complete=True)
    worker.run()
    rates = [r.getMessage() for r in caplog.records if "jobs processed" in r.getMessage()]
    assert [line.split("] ")[1].split(" jobs")[0] for line in rates] == ["100", "30"]
    assert worker.status == "done"
    assert caplog.records[-1].getMessage().endswith("No more jobs available. Exiting")


def test_item17_sleeps_after_an_empty_batch(db_url: str, clock: ManualClock) -> None:
    """17: with nothing to do the worker sleeps (status sleeping) until stopped."""
    import time

    backend_at(db_url, clock)
    worker = make_worker(db_url, clock, sleep_delay=30).start()
    deadline = time.monotonic() + 10
    while worker.status != "sleeping" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.status == "sleeping"
    worker.stop()
    worker.join(5)
    assert worker.status == "stopped"


def test_item18_stop_finishes_job_and_clears_locks(db_url: str, clock: ManualClock) -> None:
    """18: stop() lets the current job finish and be recorded, then clears this worker's locks."""
    import threading

    db = backend_at(db_url, clock)
    first = db.enqueue("--- !ruby/struct:GateJob\nn: 1\n")
    held = db.enqueue(OK, run_at=T0 + timedelta(days=1))
    m = db.mark
    entered, release = threading.Event(), threading.Event()

    def gate(job: Job) -> None:
        entered.set()
        release.wait(10)

    registry = Handlers({"GateJob": gate, "OkJob": lambda job: None})
    worker = Worker(database=db_url, handlers=registry, clock=clock, name=NAME)
    worker.start()
    assert entered.wait(10)
    # A second job this worker holds, as after a batch cut short: stop must release it.
    db._execute(
        f"UPDATE delayed_jobs SET locked_by = {m}, locked_at = {m} WHERE id = {m}",
        [NAME, db._stamp(T0), held],
    )
    worker.stop()
    release.set()
    worker.join(10)
    assert worker.status == "stopped"
    assert db.job(first) is None
    row = db.job(held)
    assert row is not None
    assert (row.locked_by, row.locked_at) == (None, None)


def test_item19_consecutive_reserve_errors_stop_the_worker(db_url: str, clock: ManualClock) -> None:
    """19: N consecutive reserve errors stop the worker (crashed); raise mode raises."""
    from djmw.errors import ReserveErrorsExceeded

    db = backend_at(db_url, clock)
    worker = make_worker(db_url, clock, max_reserve_errors=3, sleep_delay=0.01)
    worker.prepare()
    db._execute("DROP TABLE delayed_jobs")
    worker.run()
    assert worker.status == "crashed"
    assert "3 consecutive reserve errors" in str(worker.error)

    raising = make_worker(
        db_url, clock, max_reserve_errors=2, sleep_delay=0.01, on_reserve_errors="raise"
    )
    db.create_schema()
    raising.prepare()
    db._execute("DROP TABLE delayed_jobs")
    with pytest.raises(ReserveErrorsExceeded):
        raising.run()


def test_item20_log_lines(
    db_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """20: Starting, RUNNING, COMPLETED, FAILED, rate and exit lines in delayed_job's words."""
    caplog.set_level(logging.INFO, "djmw")
    db = backend_at(db_url, clock)
    ok = db.enqueue(OK, queue="q")
    fail = db.enqueue(FAIL)
    make_worker(db_url, clock, exit_on_complete=True).run()
    lines = [r.getMessage() for r in caplog.records]
    w = f"[Worker({NAME})]"
    assert lines[0] == f"{w} Starting job worker"
    assert f"{w} Job OkJob (id={ok}) (queue=q) RUNNING" in lines
    assert any(
        line.startswith(f"{w} Job OkJob (id={ok}) (queue=q) COMPLETED after ") for line in lines
    )
    assert f"{w} Job FailJob (id={fail}) FAILED (0 prior attempts) with ValueError: boom" in lines
    assert any(
        line.startswith(f"{w} 2 jobs processed at ") and line.endswith(" j/s, 1 failed")
        for line in lines
    )
    assert lines[-1] == f"{w} No more jobs available. Exiting"


def test_item22_failure_hook_only_on_permanent_failure(db_url: str, clock: ManualClock) -> None:
    """22: failure(job) runs once on permanent failure, never on an ordinary failed attempt."""
    db = backend_at(db_url, clock)
    db.enqueue("--- !ruby/struct:HookJob\nn: 1\n")
    calls: list[str] = []

    class HookJob:
        def config(self, job: Job) -> dict[str, object]:
            return {"max_attempts": 2}

        def perform(self, job: Job) -> None:
            calls.append("perform")
            raise ValueError("x")

        def failure(self, job: Job) -> None:
            calls.append("failure")

    worker = Worker(
        database=db_url, handlers=Handlers({"HookJob": HookJob()}), clock=clock, name=NAME
    )
    worker.work_off(1)
    assert calls == ["perform"]
    clock.advance(60)
    worker.work_off(1)
    assert calls == ["perform", "perform", "failure"]


def test_item6_racing_workers_never_share_a_row(db_url: str) -> None:
    """4/6: four workers racing on one table each take distinct rows; every job runs once."""
    race(db_url, "auto")


@pytest.mark.mysql
def test_item6_racing_with_delayed_jobs_update_limit(mysql_url: str) -> None:
    """6: the same race with delayed_job_active_record's UPDATE ... LIMIT 1 strategy."""
    race(mysql_url, "update_limit")


def race(db_url: str, strategy: str) -> None:
    import threading

    db = open_backend(db_url)
    db.create_schema()
    for _ in range(300):
        db.enqueue(OK)
    ran: list[int] = []
    lock = threading.Lock()

    def record(job: Job) -> None:
        with lock:
            ran.append(job.id)

    options = {"reserve_sql": strategy} if db_url.startswith("mysql") else {}
    workers = [
        Worker(
            database=db_url,
            handlers=Handlers({"OkJob": record}),
            name=f"racer {index}",
            exit_on_complete=True,
            backend_options=options,
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


def test_item21_middlewares_nest_like_lifecycle_arounds(db_url: str, clock: ManualClock) -> None:
    """21: delayed_job's around callbacks are middlewares: first registered is outermost,
    and code after call_next is skipped when the action raises (no implicit ensure)."""
    from djmw import CallNext, Outcome
    from djmw import middleware as mw

    db = backend_at(db_url, clock)
    db.enqueue(OK)
    db.enqueue(FAIL)
    trace: list[str] = []

    def around(name: str):  # type: ignore[no-untyped-def]
        def middleware(job: Job, call_next: CallNext) -> Outcome:
            trace.append(f"{name}_in {job.name}")
            outcome = call_next(job)
            trace.append(f"{name}_out {job.name}")
            return outcome

        return middleware

    registry = handlers()
    chain = mw.default_middlewares(registry)
    chain[5:5] = [around("A"), around("B")]  # inside ScheduleRetry: a failure skips the outs
    Worker(database=db_url, handlers=registry, clock=clock, name=NAME, middlewares=chain).work_off(
        2
    )
    assert trace == [
        "A_in OkJob",
        "B_in OkJob",
        "B_out OkJob",
        "A_out OkJob",
        "A_in FailJob",
        "B_in FailJob",
    ]


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_a_stolen_lock_drops_the_outcome(
    db_url: str, clock: ManualClock, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When another worker took the row's expired lock mid-run, this worker's outcome is
    dropped with a warning instead of clobbering the thief's run (delayed_job_active_record
    issue #193); the next job still runs."""
    db = backend_at(db_url, clock)
    stolen = db.enqueue("--- !ruby/struct:SlowJob\nn: 1\n")
    after = db.enqueue(OK)
    m = db.mark

    def steal(job: Job) -> None:
        thief = open_backend(db_url, clock=clock)
        thief._execute(f"UPDATE delayed_jobs SET locked_by = 'thief' WHERE id = {m}", [job.id])
        thief.close()
        if outcome == "failure":
            msg = "boom"
            raise ValueError(msg)

    registry = Handlers({"SlowJob": steal, "OkJob": lambda job: None})
    worker = Worker(database=db_url, handlers=registry, clock=clock, name=NAME)
    with caplog.at_level(logging.WARNING, "djmw"):
        worker.work_off(5)
    row = db.job(stolen)
    assert row is not None
    assert (row.locked_by, row.attempts, row.last_error) == ("thief", 0, None)
    assert db.job(after) is None
    assert "no longer locked by host:test pid:1" in caplog.text
    # The warning names the job, although it is written from the row as reserved.
    assert f"Job SlowJob (id={stolen}): the row is no longer locked" in caplog.text


def _columns(db: SqlBackend, job_id: int) -> tuple[object, ...]:
    return tuple(db._query(f"SELECT * FROM delayed_jobs WHERE id = {db.mark}", [job_id])[0])


def test_item26_class_aware_by_default(
    db_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """26: a default worker runs only the names it has perform functions for; every other
    row (another runtime's job, broken YAML, a row whose text only mentions a registered
    name) is left as it was, column for column: never failed, attempts unchanged, unlocked."""
    db = backend_at(db_url, clock)
    mine = db.enqueue(OK)
    foreign = {
        "ruby": db.enqueue("--- !ruby/struct:NewsletterJob\ntext: hi\n"),
        "broken": db.enqueue("--- !ruby/struct:Oops\n  : [unclosed\n"),
        "broken_mentioning_ours": db.enqueue("--- !ruby/struct:OkJob\n  n: [1\n"),
        "lookalike": db.enqueue("--- !ruby/struct:NewsletterJob\nnote: OkJob\n"),
        "delay_call": db.enqueue(
            "--- !ruby/object:Delayed::PerformableMethod\nobject: !ruby/class 'User'\n"
            "method_name: :cleanup\nargs: []\n"
        ),
    }
    before = {name: _columns(db, job_id) for name, job_id in foreign.items()}
    ran: list[int] = []
    with caplog.at_level(logging.DEBUG, "djmw"):
        assert make_worker(db_url, clock, ran).work_off(20) == (1, 0)
    assert ran == [mine]
    assert db.job(mine) is None
    after = {name: _columns(db, job_id) for name, job_id in foreign.items()}
    assert after == before
    # Only the rows whose text matched the SQL filter were taken, then given back at once.
    given_back = {int(m) for m in re.findall(r"job (\d+) \(", caplog.text)}
    assert given_back == {foreign["broken_mentioning_ours"], foreign["lookalike"]}
