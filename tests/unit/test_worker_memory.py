"""The worker loop on the in-memory backend: batches, class-aware give-back, escapes."""

from __future__ import annotations

import logging

import pytest

from djmw import ConfigurationError, Handlers, Worker
from djmw.job import Job
from djmw.testing import InMemoryBackend, ManualClock

STRUCT = "--- !ruby/struct:{}\nn: 1\n"


def test_by_default_a_worker_leaves_foreign_jobs_untouched() -> None:
    """Class-aware by default: a worker runs its own jobs and leaves the others unlocked,
    unfailed, attempts 0 (a false match of the SQL filter is given back)."""
    backend = InMemoryBackend(clock=ManualClock())
    mine = backend.enqueue(STRUCT.format("PyJob"))
    ruby = backend.enqueue(STRUCT.format("RubyJob"))
    # A false match of the SQL filter: mentions PyJob but is another job.
    lookalike = backend.enqueue("--- !ruby/struct:OtherJob\nnote: PyJob\n")
    ran: list[int] = []
    worker = Worker(
        handlers=Handlers({"PyJob": lambda job: ran.append(job.id)}),
        backend=backend.factory(),
        clock=backend.clock,
        name="w",
    )
    assert worker.work_off(10) == (1, 0)
    assert ran == [mine]
    for job_id in (ruby, lookalike):
        row = backend.rows[job_id]
        assert (row.attempts, row.locked_by, row.failed_at) == (0, None, None)


def test_unknown_jobs_fail_is_delayed_jobs_strict_behaviour() -> None:
    """``unknown_jobs="fail"`` takes every row and fails one it has no function for at once,
    attempts unchanged, as delayed_job does; its own jobs still run."""
    backend = InMemoryBackend(clock=ManualClock())
    mine = backend.enqueue(STRUCT.format("PyJob"))
    ruby = backend.enqueue(STRUCT.format("RubyJob"))
    ran: list[int] = []
    worker = Worker(
        handlers=Handlers({"PyJob": lambda job: ran.append(job.id)}),
        backend=backend.factory(),
        unknown_jobs="fail",
        clock=backend.clock,
        name="w",
    )
    assert worker.work_off(10) == (1, 1)
    assert ran == [mine]
    row = backend.rows[ruby]
    assert row.failed_at is not None
    assert row.attempts == 0
    assert (row.last_error or "").startswith(
        "Job failed to load: no perform function is registered for 'RubyJob'"
    )


@pytest.mark.parametrize("unknown_jobs", ["skip", "fail"])
def test_a_worker_without_handlers_refuses_to_start(unknown_jobs: str) -> None:
    """No registered perform function: ConfigurationError before any row is touched, and the
    message says how to give handlers."""
    backend = InMemoryBackend(clock=ManualClock())
    job_id = backend.enqueue(STRUCT.format("RubyJob"))
    worker = Worker(backend=backend.factory(), unknown_jobs=unknown_jobs, clock=backend.clock)
    with pytest.raises(ConfigurationError, match=r"no perform functions are registered") as info:
        worker.work_off(10)
    assert "--handlers myapp.jobs:handlers" in str(info.value)
    row = backend.rows[job_id]
    assert (row.locked_by, row.failed_at, row.attempts) == (None, None, 0)


def test_unknown_jobs_takes_skip_or_fail_only() -> None:
    """Any other value fails at construction, naming the option."""
    with pytest.raises(ConfigurationError, match="unknown_jobs"):
        Worker(handlers=Handlers({"J": print}), unknown_jobs="ignore")  # type: ignore[arg-type]


def test_an_error_escaping_the_chain_unlocks_without_charging() -> None:
    """An exception no middleware converts (a bug) unlocks the row with attempts unchanged."""
    backend = InMemoryBackend(clock=ManualClock())
    job_id = backend.enqueue(STRUCT.format("J"))

    def buggy(job: Job, call_next: object) -> object:
        raise RuntimeError("middleware bug")

    worker = Worker(
        handlers=Handlers({"J": lambda job: None}),
        backend=backend.factory(),
        middlewares=[buggy],
        clock=backend.clock,
        name="w",
    )
    assert worker.work_off(1) == (0, 1)
    row = backend.rows[job_id]
    assert (row.attempts, row.locked_by) == (0, None)


def test_a_successful_reserve_resets_the_error_count() -> None:
    """Two errors, a success, two errors: with a limit of 3 the worker never gives up."""
    from djmw.backends import ReserveRequest
    from djmw.errors import BackendError

    script = iter(["error", "error", "ok", "error", "error", "ok"])

    class Flaky(InMemoryBackend):
        def reserve(self, request: ReserveRequest) -> Job | None:
            if next(script, "ok") == "error":
                raise BackendError("connection lost")
            return super().reserve(request)

    backend = Flaky(clock=ManualClock())
    for _ in range(2):
        backend.enqueue(STRUCT.format("J"))
    worker = Worker(
        handlers=Handlers({"J": lambda job: None}),
        backend=backend.factory(),
        clock=backend.clock,
        name="w",
        max_reserve_errors=3,
    )
    results = [worker.work_off(1) for _ in range(6)]
    assert results == [(0, 0), (0, 0), (1, 0), (0, 0), (0, 0), (1, 0)]
    assert worker.status != "crashed"


def test_a_crash_sets_status_and_error_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """Any error that ends the loop (here a driver error the backend did not wrap) leaves
    status ``crashed``, ``error`` set, and one log line with the cause; never ``running``
    after join()."""
    from djmw.backends import ReserveRequest

    class Broken(InMemoryBackend):
        def reserve(self, request: ReserveRequest) -> Job | None:
            raise RuntimeError("the database file is damaged")

    backend = Broken(clock=ManualClock())
    backend.enqueue(STRUCT.format("J"))
    worker = Worker(
        handlers=Handlers({"J": lambda job: None}),
        backend=backend.factory(),
        clock=backend.clock,
        name="w",
    )
    with caplog.at_level(logging.INFO, "djmw"):
        worker.start()
        worker.join(10)
    assert not worker.alive
    assert worker.status == "crashed"
    assert isinstance(worker.error, RuntimeError)
    lines = [r.getMessage() for r in caplog.records if "Exiting" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith(
        "[Worker(w)] Exiting: the worker crashed with RuntimeError: the database file is damaged"
    )
