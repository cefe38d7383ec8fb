"""The worker loop on the in-memory backend: batches, class-aware give-back, escapes."""

from __future__ import annotations

from djmw import Handlers, Worker
from djmw.job import Job
from djmw.testing import InMemoryBackend, ManualClock

STRUCT = "--- !ruby/struct:{}\nn: 1\n"


def test_class_aware_worker_gives_back_foreign_jobs() -> None:
    """A class-aware worker runs its own jobs and leaves others unlocked with attempts 0."""
    backend = InMemoryBackend(clock=ManualClock())
    mine = backend.enqueue(STRUCT.format("PyJob"))
    ruby = backend.enqueue(STRUCT.format("RubyJob"))
    # A false match of the SQL filter: mentions PyJob but is another job.
    lookalike = backend.enqueue("--- !ruby/struct:OtherJob\nnote: PyJob\n")
    ran: list[int] = []
    worker = Worker(
        handlers=Handlers({"PyJob": lambda job: ran.append(job.id)}),
        backend=backend.factory(),
        class_aware=True,
        clock=backend.clock,
        name="w",
    )
    assert worker.work_off(10) == (1, 0)
    assert ran == [mine]
    for job_id in (ruby, lookalike):
        row = backend.rows[job_id]
        assert (row.attempts, row.locked_by, row.failed_at) == (0, None, None)


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
