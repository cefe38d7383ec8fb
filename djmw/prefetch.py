"""Batch claims: the rows a worker has claimed ahead and not started yet (``prefetch``).

With ``Worker(prefetch=K)`` the loop claims up to K ready rows in one transaction
(``Backend.reserve_many``), each locked by the worker's name so that Ruby and other djmw
workers see them as taken, and runs them in reserve order. A row's locked_at is
refreshed as it starts, in the same round trip as the previous job's outcome
(``Backend.start_next``), so its lock ages from its start, not from the claim. At a
graceful stop the rows not yet started are unlocked, attempts unchanged.

Where: used by ``djmw.loop`` only; it talks to the backend and to nothing above it.

Limits: a worker that dies leaves up to K rows locked by its name, not one; they run
again when a worker of that name starts (it clears its own locks), when the lock is
older than ``max_run_time``, or when a registry of live workers rescues them. A row
claimed ahead waits behind the batch: a more urgent row enqueued meanwhile runs after
it, or on another worker.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable

from djmw.backends import Backend, ReserveRequest
from djmw.backends.base import Finish
from djmw.job import Job
from djmw.logs import job_prefix


def in_run_order(jobs: list[Job]) -> list[Job]:
    """Order a claimed batch (in reserve order) by id within equal (priority, run_at).

    Reserve order leaves such ties to the database; fixing them by id makes the run order
    the one ``Backend.locked_jobs`` reports, so that after a crash the rescue knows which
    of the rows the worker had started (``djmw.rescue.running_and_waiting``).
    """
    ordered: list[Job] = []
    for _, tied in itertools.groupby(jobs, key=lambda job: (job.priority, job.run_at)):
        ordered.extend(sorted(tied, key=lambda job: job.id))
    return ordered


class Prefetch:
    """The claimed-but-not-started jobs of one worker, in the order they run.

    Args:
        size: how many rows one claim takes (K, at least 2).
        logger: where a skipped row is reported.

    Limits: one thread (the loop's) uses it.
    """

    def __init__(self, size: int, logger: logging.Logger) -> None:
        self.size = size
        self.logger = logger
        self.queue: deque[Job] = deque()

    def __len__(self) -> int:
        return len(self.queue)

    def take(
        self, db: Backend, request: Callable[[], ReserveRequest], finish: Finish | None
    ) -> Job | None:
        """Return the next job to run, writing ``finish`` on the way; None when none is ready.

        A queued job is started with ``start_next`` (the finish and its locked_at refresh
        in one round trip); a job whose row is no longer ours is skipped. With nothing
        queued, a new claim of up to ``size`` rows carries the finish instead.
        OutcomeNotRecorded and BackendError leave the queue as it was.
        """
        while self.queue:
            job = self.queue[0]
            started = db.start_next(job, finish=finish)
            self.queue.popleft()
            finish = None
            if started is not None:
                return started
            self.logger.info(
                "%s is no longer locked by this worker; skipped (another worker took it, "
                "or it was changed)",
                job_prefix(job),
            )
        jobs = in_run_order(db.reserve_many(request(), self.size, finish=finish))
        if not jobs:
            return None
        self.queue.extend(jobs[1:])
        return jobs[0]

    def give_back(self, db: Backend) -> int:
        """Unlock every queued job, attempts unchanged; return how many."""
        count = 0
        while self.queue:
            db.unlock(self.queue[0])
            self.queue.popleft()
            count += 1
        return count
