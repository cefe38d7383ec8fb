"""The worker registry (djmw.registry) on the in-memory backend: registration, beats,
who is taken for dead, and the options."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import attrs
import pytest

from djmw import Handlers, Worker
from djmw.backends import WorkerRecord
from djmw.cli import _build_worker, parser
from djmw.errors import BackendError, ConfigurationError
from djmw.job import Job
from djmw.testing import InMemoryBackend, ManualClock

T0 = datetime(2026, 1, 1, 12, 0, 0)
TABLE = "delayed_workers"
JOB = "--- !ruby/struct:J {}\n"


def record(name: str, beat: datetime) -> WorkerRecord:
    return WorkerRecord(name=name, host="h", pid=1, queues=None, started_at=beat, heartbeat_at=beat)


def lock(backend: InMemoryBackend, by: str, at: datetime) -> int:
    job_id = backend.enqueue(JOB)
    backend.rows[job_id] = attrs.evolve(backend.rows[job_id], locked_by=by, locked_at=at)
    return job_id


def worker(
    backend: InMemoryBackend, clock: ManualClock, ran: list[Job], **options: object
) -> Worker:
    return Worker(
        handlers=Handlers({"J": ran.append}),
        backend=backend.factory(),
        clock=clock,
        name="rescuer",
        **{"exit_on_complete": True, **options},  # type: ignore[arg-type]
    )


def _wait_scans(worker: Worker, count: int) -> None:
    """Wait until ``worker`` has scanned for dead workers ``count`` times."""
    assert worker._loop is not None
    registry = worker._loop.registry
    assert registry is not None
    _wait(lambda: registry.scans >= count)


def settled_scan(backend: InMemoryBackend, clock: ManualClock, ran: list[Job]) -> None:
    """Run a worker (real-time beats every 20 ms) until it has scanned for dead workers
    twice after settling, with a batch between the scans; then stop it."""
    running = worker(backend, clock, ran, exit_on_complete=False, sleep_delay=0.01)
    running.heartbeat_interval = 0.02
    running.start()
    try:
        _wait_scans(running, 2)
    finally:
        running.stop()
        running.join(5)


def test_only_registered_dead_workers_lose_their_jobs() -> None:
    """A registered worker whose heartbeat is older than the timeout loses its row (charged,
    run again by the rescuer); a live registered worker and an unregistered name (a Ruby
    worker) keep theirs; the dead worker's registry row is removed, the live one's kept."""
    now = T0 + timedelta(minutes=10)
    clock = ManualClock(now)
    backend = InMemoryBackend(clock=clock)
    old = now - timedelta(minutes=5)
    dead = lock(backend, "dead", old)
    alive = lock(backend, "alive", old)
    ruby = lock(backend, "host:rb pid:9", old)
    backend.register_worker(TABLE, record("dead", old))
    backend.register_worker(TABLE, record("alive", now - timedelta(seconds=10)))
    ran: list[Job] = []
    settled_scan(backend, clock, ran)
    assert [(job.id, job.attempts) for job in ran] == [(dead, 1)]
    for job_id, owner in ((alive, "alive"), (ruby, "host:rb pid:9")):
        row = backend.rows[job_id]
        assert (row.locked_by, row.attempts) == (owner, 0)
    assert [w.name for w in backend.workers(TABLE)] == ["alive"]


def test_an_unregistered_lock_waits_for_max_run_time_and_is_not_charged() -> None:
    """delayed_job's rule for names not in the registry: taken by reserve once the lock is
    older than max_run_time, attempts unchanged."""
    clock = ManualClock(T0)
    backend = InMemoryBackend(clock=clock)
    ruby = lock(backend, "host:rb pid:9", T0 - timedelta(seconds=100))
    ran: list[Job] = []
    worker(backend, clock, ran, max_run_time=300).run()
    assert ran == []
    clock.advance(201)
    worker(backend, clock, ran, max_run_time=300).run()
    assert [(job.id, job.attempts) for job in ran] == [(ruby, 0)]


def test_a_lock_taken_after_the_last_beat_waits_until_it_is_old_too() -> None:
    """A dead worker's row locked less than the timeout ago is not taken yet, and the dead
    worker stays registered so that the row is taken later."""
    now = T0 + timedelta(minutes=10)
    clock = ManualClock(now)
    backend = InMemoryBackend(clock=clock)
    recent = lock(backend, "dead", now - timedelta(seconds=30))
    backend.register_worker(TABLE, record("dead", now - timedelta(minutes=5)))
    ran: list[Job] = []
    settled_scan(backend, clock, ran)
    assert ran == []
    assert [w.name for w in backend.workers(TABLE)] == ["dead"]
    clock.advance(31)
    settled_scan(backend, clock, ran)
    assert [(job.id, job.attempts) for job in ran] == [(recent, 1)]
    assert backend.workers(TABLE) == []


def test_a_running_worker_is_registered_and_removed_at_a_clean_exit() -> None:
    """While it runs, the worker's row holds its name, host, pid, queues and start time;
    after stop() and join() the row is gone. registry=False writes no row."""
    clock = ManualClock(T0)
    backend = InMemoryBackend(clock=clock)
    running = Worker(
        handlers=Handlers({"J": lambda job: None}),
        backend=backend.factory(),
        clock=clock,
        name="w",
        queues=["a", None],
        sleep_delay=0.05,
    ).start()
    try:
        deadline = time.monotonic() + 5
        while not backend.workers(TABLE) and time.monotonic() < deadline:
            time.sleep(0.01)
        (row,) = backend.workers(TABLE)
        assert (row.name, row.queues, row.started_at, row.heartbeat_at) == (
            "w",
            ("a", None),
            T0,
            T0,
        )
    finally:
        running.stop()
        running.join(5)
    assert backend.workers(TABLE) == []
    Worker(
        handlers=Handlers({"J": lambda job: None}),
        backend=backend.factory(),
        clock=clock,
        name="w2",
        registry=False,
        exit_on_complete=True,
    ).run()
    assert backend.workers(TABLE) == []


def test_the_heartbeat_thread_beats_and_registers_again_when_removed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every heartbeat_interval the row's heartbeat_at becomes the worker clock's now and
    job_id the running job's; a row removed by another worker is written again, with a
    warning."""
    clock = ManualClock(T0)
    backend = InMemoryBackend(clock=clock)
    job_id = backend.enqueue(JOB)
    release = []

    def slow(job: Job) -> None:
        while not release:
            time.sleep(0.01)

    running = Worker(
        handlers=Handlers({"J": slow}),
        backend=backend.factory(),
        clock=clock,
        name="w",
        sleep_delay=0.05,
        heartbeat_interval=0.05,
        dead_worker_timeout=1,
    ).start()
    caplog.set_level(logging.WARNING, "djmw")

    def row_is(expected: tuple[datetime, int | None]) -> bool:
        rows = backend.workers(TABLE)
        return bool(rows) and (rows[0].heartbeat_at, rows[0].job_id) == expected

    try:
        clock.advance(7)
        _wait(lambda: row_is((T0 + timedelta(seconds=7), job_id)))
        backend.unregister_worker(TABLE, "w")
        clock.advance(1)
        _wait(lambda: row_is((T0 + timedelta(seconds=8), job_id)))
        assert "registry row is missing" in caplog.text
    finally:
        release.append(True)
        running.stop()
        running.join(5)


def _wait(condition: object) -> None:
    deadline = time.monotonic() + 5
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.01)


def test_nobody_is_taken_for_dead_before_the_worker_settles() -> None:
    """Right after its start (or after its own beats failed or came late), a worker takes
    nobody for dead: for two heartbeat intervals a live worker may not have beaten yet."""
    now = T0 + timedelta(minutes=10)
    clock = ManualClock(now)
    backend = InMemoryBackend(clock=clock)
    old = now - timedelta(minutes=5)
    dead = lock(backend, "dead", old)
    backend.register_worker(TABLE, record("dead", old))
    ran: list[Job] = []
    worker(backend, clock, ran).run()  # one batch at once: not settled yet
    assert ran == []
    assert backend.rows[dead].locked_by == "dead"


def test_a_failing_scan_is_logged_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A database error while looking for dead workers is logged; jobs still run."""

    class Unreachable(InMemoryBackend):
        def dead_workers(self, table: str, before: datetime) -> list[WorkerRecord]:
            raise BackendError("registry unreachable")

    clock = ManualClock(T0)
    backend = Unreachable(clock=clock)
    ran: list[Job] = []
    running = worker(backend, clock, ran, exit_on_complete=False, sleep_delay=0.01)
    running.heartbeat_interval = 0.02
    running.start()
    try:
        _wait_scans(running, 2)
        backend.enqueue(JOB)
        _wait(lambda: len(ran) == 1)
    finally:
        running.stop()
        running.join(5)
    assert "Could not rescue the jobs of dead workers: registry unreachable" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"heartbeat_interval": 10, "dead_worker_timeout": 15},
            "dead_worker_timeout (15 s) must be at least twice heartbeat_interval (10 s)",
        ),
        ({"heartbeat_interval": 0}, "heartbeat_interval must be a positive number"),
        ({"registry_table": "bad name"}, "is not a valid table name"),
    ],
)
def test_bad_registry_options_fail_at_start(options: dict[str, object], message: str) -> None:
    """Bad intervals or table names fail when the worker prepares, naming the option."""
    with pytest.raises(ConfigurationError, match=None) as info:
        Worker(
            handlers=Handlers({"J": print}),
            backend=InMemoryBackend().factory(),
            **options,  # type: ignore[arg-type]
        ).prepare()
    assert message in str(info.value)


def test_command_line_flags_reach_the_worker() -> None:
    """--no-registry, --registry-table, --heartbeat-interval and --dead-worker-timeout set
    the Worker options of the same names; without them the defaults stand."""
    args = parser().parse_args(
        [
            "work",
            "--database",
            "sqlite:///x.db",
            "--no-registry",
            "--registry-table",
            "my_workers",
            "--heartbeat-interval",
            "2",
            "--dead-worker-timeout",
            "9",
        ]
    )
    built = _build_worker(args, "w")
    assert (
        built.registry,
        built.registry_table,
        built.heartbeat_interval,
        built.dead_worker_timeout,
    ) == (False, "my_workers", 2.0, 9.0)
    default = _build_worker(parser().parse_args(["work", "--database", "sqlite:///x.db"]), "w")
    assert (default.registry, default.registry_table, default.heartbeat_interval) == (
        True,
        None,
        15,
    )
    assert default.dead_worker_timeout == 60
    with pytest.raises(SystemExit):
        parser().parse_args(["work", "--heartbeat-interval", "0"])
