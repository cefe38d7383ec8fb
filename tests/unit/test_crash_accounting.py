"""Crash accounting (djmw.rescue) on the in-memory backend: a dead worker's job is a
counted, rescheduled attempt decided by the worker's own chain."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import attrs
import pytest

from djmw import Handlers, Worker
from djmw.backends import WorkerRecord
from djmw.chain import CallNext
from djmw.job import Job
from djmw.middleware import DecodeYAML, LogOutcome, ScheduleRetry, default_middlewares
from djmw.outcome import Failed, Outcome, Rescheduled
from djmw.prefetch import in_run_order
from djmw.rescue import CrashAccounting, failure_path, running_and_waiting
from djmw.testing import InMemoryBackend, ManualClock

T0 = datetime(2026, 1, 1, 12, 0, 0)
POISON = "--- !ruby/struct:PoisonJob {}\n"


class PoisonJob:
    """max_attempts 3 from config(); counts its failure hook calls."""

    def __init__(self) -> None:
        self.failures: list[int] = []
        self.performed = 0

    def config(self, job: Job) -> dict[str, int]:
        return {"max_attempts": 3}

    def perform(self, job: Job) -> None:
        self.performed += 1

    def failure(self, job: Job) -> None:
        self.failures.append(job.id)


def locked(backend: InMemoryBackend, job_id: int, by: str, at: datetime, **columns: object) -> Job:
    """Lock row ``job_id`` by ``by`` at ``at`` (as a worker that died would leave it)."""
    row = attrs.evolve(backend.rows[job_id], locked_by=by, locked_at=at, **columns)
    backend.rows[job_id] = row
    return row


def accounting(handlers: Handlers, middlewares: list[object] | None = None) -> CrashAccounting:
    chain = default_middlewares(handlers) if middlewares is None else middlewares
    return CrashAccounting(
        middlewares=tuple(chain),  # type: ignore[arg-type]
        name="rescuer",
        logger=logging.getLogger("djmw"),
    )


def test_a_crash_is_a_counted_attempt_rescheduled_from_the_crash_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The attempt is charged with last_error `worker <name> died while running this job`
    (no backtrace), and the job is due backoff(1) = 6 s after the crash, not after its
    detection; the lines say FAILED, never RUNNING; the handler is not run."""
    clock = ManualClock(T0 + timedelta(seconds=60))
    backend = InMemoryBackend(clock=clock)
    poison = PoisonJob()
    job = locked(backend, backend.enqueue(POISON), "rescuer", T0)
    caplog.set_level(logging.INFO, "djmw")
    outcome = accounting(Handlers({"PoisonJob": poison})).charge(backend, job, "dead", T0)
    assert outcome == Rescheduled(run_at=T0 + timedelta(seconds=6), attempts=1, error=outcome.error)
    row = backend.rows[job.id]
    assert (row.attempts, row.locked_by, row.failed_at) == (1, None, None)
    assert row.run_at == T0 + timedelta(seconds=6)
    assert row.last_error == "worker dead died while running this job"
    assert poison.performed == 0
    lines = [r.getMessage() for r in caplog.records]
    assert not any("RUNNING" in line for line in lines)
    assert (
        "[Worker(rescuer)] Job PoisonJob (id=1) FAILED (0 prior attempts) with WorkerDied: "
        "worker dead died while running this job"
    ) in lines


def test_the_handlers_config_decides_max_attempts_and_failure_hooks_run_once() -> None:
    """max_attempts 3 from the handler's config(): the third crash fails the job for good
    (attempts 3, failed_at set), and its failure hook runs once."""
    clock = ManualClock(T0)
    backend = InMemoryBackend(clock=clock)
    poison = PoisonJob()
    crash = accounting(Handlers({"PoisonJob": poison}))
    job_id = backend.enqueue(POISON)
    outcomes = []
    for _ in range(3):
        clock.advance(3600)
        job = locked(backend, job_id, "rescuer", clock())
        outcomes.append(crash.charge(backend, job, "dead", clock()))
    assert [type(o) for o in outcomes] == [Rescheduled, Rescheduled, Failed]
    assert isinstance(outcomes[-1], Failed)
    assert outcomes[-1].exhausted
    row = backend.rows[job_id]
    assert (row.attempts, row.failed_at) == (3, clock())
    assert row.last_error == "worker dead died while running this job"
    assert poison.failures == [job_id]


def test_a_job_without_a_handler_here_gets_the_chains_defaults() -> None:
    """A rescuer without the job's handler charges it with ScheduleRetry's own settings:
    here max_attempts 2, so the second crash fails it."""
    backend = InMemoryBackend(clock=ManualClock(T0))
    chain = [
        ScheduleRetry(max_attempts=2) if isinstance(m, ScheduleRetry) else m
        for m in default_middlewares(Handlers())
    ]
    crash = accounting(Handlers(), chain)
    job = locked(backend, backend.enqueue(POISON), "rescuer", T0, attempts=1)
    outcome = crash.charge(backend, job, "dead", T0)
    assert isinstance(outcome, Failed)
    assert (outcome.attempts, outcome.exhausted) == (2, True)


def test_a_chain_that_raises_still_charges_the_crash(caplog: pytest.LogCaptureFixture) -> None:
    """Without CountAttempts (or with a broken middleware) the chain raises instead of
    deciding; the crash is charged anyway, with delayed_job's schedule."""

    def broken(job: Job, call_next: CallNext) -> Outcome:
        raise RuntimeError("middleware bug")

    backend = InMemoryBackend(clock=ManualClock(T0))
    for chain in ([DecodeYAML()], [DecodeYAML(), broken]):
        job = locked(backend, backend.enqueue(POISON), "rescuer", T0, attempts=2)
        outcome = accounting(Handlers(), chain).charge(backend, job, "dead", T0)
        assert isinstance(outcome, Rescheduled)
        assert outcome.attempts == 3
        assert outcome.run_at == T0 + timedelta(seconds=3**4 + 5)
    assert "the failure path raised RuntimeError: middleware bug" in caplog.text


def test_the_failure_path_skips_what_only_a_running_handler_needs() -> None:
    """EnforceTimeout, Heartbeat, OnlyRegistered and LogOutcome are left out; the rest
    keeps its order."""
    chain = default_middlewares(Handlers())
    path = failure_path(chain)
    assert [type(m).__name__ for m in path] == [
        "DecodeYAML",
        "RunHooks",
        "MarkFailed",
        "ScheduleRetry",
        "CountAttempts",
    ]
    assert not any(isinstance(m, LogOutcome) for m in path)


def test_a_restart_under_the_same_name_charges_what_it_held() -> None:
    """At start a worker charges the unfailed rows its name still holds, dated at its
    earlier incarnation's last heartbeat (later than the lock here): due 6 s after it. A
    failed row it holds is only unlocked, as delayed_job's ClearLocks does."""
    last_beat = T0 + timedelta(seconds=30)
    clock = ManualClock(last_beat + timedelta(seconds=1))
    backend = InMemoryBackend(clock=clock)
    held = locked(backend, backend.enqueue(POISON), "w", T0).id
    failed = locked(backend, backend.enqueue(POISON), "w", T0, failed_at=T0).id
    earlier = WorkerRecord(
        name="w", host="h", pid=1, queues=None, started_at=T0, heartbeat_at=last_beat
    )
    backend.register_worker("delayed_workers", earlier)
    poison = PoisonJob()
    worker = Worker(
        handlers=Handlers({"PoisonJob": poison}),
        backend=backend.factory(),
        clock=clock,
        name="w",
        exit_on_complete=True,
    )
    worker.run()
    row = backend.rows[held]
    assert (row.attempts, row.locked_by, row.failed_at) == (1, None, None)
    assert row.run_at == last_beat + timedelta(seconds=6)
    assert row.last_error == "worker w died while running this job"
    assert poison.performed == 0
    assert (backend.rows[failed].locked_by, backend.rows[failed].attempts) == (None, 0)
    assert backend.workers("delayed_workers") == []  # removed at the clean exit


def test_a_restart_runs_the_charged_job_after_its_backoff() -> None:
    """A job charged at start is due 6 s after the earlier incarnation was last seen:
    when that is past, the restarted worker runs it at once, with attempts 1."""
    clock = ManualClock(T0 + timedelta(minutes=5))
    backend = InMemoryBackend(clock=clock)
    held = locked(backend, backend.enqueue(POISON), "w", T0).id
    seen: list[int] = []
    worker = Worker(
        handlers=Handlers({"PoisonJob": lambda job: seen.append(job.attempts)}),
        backend=backend.factory(),
        clock=clock,
        name="w",
        exit_on_complete=True,
        registry=False,
    )
    worker.run()
    assert seen == [1]
    assert held not in backend.rows


def test_of_a_batch_only_the_started_row_is_the_running_one() -> None:
    """Rows in reserve order: the running row is the first with the latest locked_at (a
    row started after the claim's second has a later lock; one started in that second
    ties with the rows behind it and comes first of them); the rest are waiting."""
    backend = InMemoryBackend(clock=ManualClock(T0))
    rows = [locked(backend, backend.enqueue(POISON), "w", T0) for _ in range(3)]
    started = attrs.evolve(rows[1], locked_at=T0 + timedelta(seconds=2))
    assert running_and_waiting([rows[0], started, rows[2]]) == (started, [rows[0], rows[2]])
    assert running_and_waiting(rows) == (rows[0], rows[1:])
    assert running_and_waiting([]) == (None, [])


def test_a_restart_charges_the_running_row_of_a_batch_and_gives_back_the_rest() -> None:
    """A worker of the same name finds three rows its earlier incarnation claimed
    together: the one it had started (later locked_at) is charged, the two it had not
    are unlocked with attempts 0 and run at once."""
    clock = ManualClock(T0 + timedelta(seconds=3))
    backend = InMemoryBackend(clock=clock)
    ids = [locked(backend, backend.enqueue(POISON), "w", T0).id for _ in range(3)]
    locked(backend, ids[0], "w", T0 + timedelta(seconds=2))
    ran: list[tuple[int, int]] = []
    worker = Worker(
        handlers=Handlers({"PoisonJob": lambda job: ran.append((job.id, job.attempts))}),
        backend=backend.factory(),
        clock=clock,
        name="w",
        exit_on_complete=True,
        registry=False,
    )
    worker.run()
    assert ran == [(ids[1], 0), (ids[2], 0)]
    row = backend.rows[ids[0]]
    assert (row.attempts, row.locked_by, row.last_error) == (
        1,
        None,
        "worker w died while running this job",
    )


def test_a_claimed_batch_runs_ties_in_id_order() -> None:
    """in_run_order keeps reserve order and orders rows of equal (priority, run_at) by
    id, the order locked_jobs reports them in."""
    backend = InMemoryBackend(clock=ManualClock(T0))
    later = T0 + timedelta(seconds=1)
    a, b, c, d = (backend.enqueue(POISON, run_at=at) for at in (T0, T0, later, T0))
    jobs = {job.id: job for job in backend.jobs()}
    claimed = [jobs[b], jobs[d], jobs[a], jobs[c]]
    assert [job.id for job in in_run_order(claimed)] == [a, b, d, c]
