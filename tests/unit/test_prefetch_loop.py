"""The loop with batch claims (prefetch) on the in-memory backend: skips, write errors."""

from __future__ import annotations

import attrs

from djmw import Handlers, Worker
from djmw.errors import BackendError
from djmw.job import Job
from djmw.outcome import Outcome
from djmw.testing import InMemoryBackend, ManualClock

STRUCT = "--- !ruby/struct:J\nn: 1\n"


def test_a_prefetched_row_taken_by_another_worker_is_skipped() -> None:
    """A row claimed ahead whose lock another worker took meanwhile never runs here; the
    rows after it still do."""
    backend = InMemoryBackend(clock=ManualClock())
    ids = [backend.enqueue(STRUCT) for _ in range(3)]
    ran: list[int] = []

    def perform(job: Job) -> None:
        ran.append(job.id)
        if job.id == ids[0]:
            row = backend.rows[ids[1]]
            backend.rows[ids[1]] = attrs.evolve(row, locked_by="thief")

    worker = Worker(
        handlers=Handlers({"J": perform}),
        backend=backend.factory(),
        clock=backend.clock,
        name="w",
        prefetch=3,
    )
    assert worker.work_off(10) == (2, 0)
    assert ran == [ids[0], ids[2]]
    assert backend.rows[ids[1]].locked_by == "thief"


def test_an_outcome_not_recorded_does_not_lose_the_next_prefetched_job() -> None:
    """When a finished job's outcome cannot be written, the next prefetched job still
    starts and runs; the unwritten row stays locked by the worker."""

    class FailsFirstWrite(InMemoryBackend):
        failures = 1

        def apply(self, job: Job, outcome: Outcome) -> bool:
            if self.failures:
                self.failures -= 1
                raise BackendError("connection lost")
            return super().apply(job, outcome)

    backend = FailsFirstWrite(clock=ManualClock())
    ids = [backend.enqueue(STRUCT) for _ in range(3)]
    ran: list[int] = []
    worker = Worker(
        handlers=Handlers({"J": lambda job: ran.append(job.id)}),
        backend=backend.factory(),
        clock=backend.clock,
        name="w",
        prefetch=3,
    )
    assert worker.work_off(3) == (3, 0)
    assert ran == ids
    assert list(backend.rows) == [ids[0]]
    assert backend.rows[ids[0]].locked_by == "w"
