"""Test doubles for users' own tests: an in-memory backend and call_next fakes.

``InMemoryBackend`` implements the Backend protocol with delayed_job's reserve predicate
and outcome writes, over a list of Jobs in memory; pass ``backend=lambda: backend`` to a
Worker. ``make_job`` builds a Job from handler YAML. ``returning`` and ``raising`` are
``call_next`` fakes for unit-testing a middleware by calling it directly.

Limits: one process; the lock is a plain attribute, so it models one worker's view, not
concurrent workers (use a real database for that).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from djmw._clock import Clock, utc_now
from djmw.backends import (
    QueueStats,
    ReserveRequest,
    WorkerRecord,
    handler_marker,
    truncate_utf8,
)
from djmw.backends._sql import NewJob
from djmw.backends.base import Finish, reserve_one_by_one
from djmw.chain import CallNext
from djmw.errors import BackendError, OutcomeNotRecorded
from djmw.job import Job
from djmw.outcome import Failed, Outcome, Rescheduled, Succeeded, error_text


def make_job(
    handler: str | bytes | None = "--- !ruby/struct:TestJob {}\n", **columns: object
) -> Job:
    """Return a Job for ``handler`` with delayed_job's defaults for the other columns."""
    columns.setdefault("id", 1)
    return Job(handler=handler, **columns)  # type: ignore[arg-type]


def returning(outcome: Outcome | None = None) -> CallNext:
    """Return a call_next fake that returns ``outcome`` (default Succeeded())."""
    result = outcome if outcome is not None else Succeeded()

    def call_next(job: Job) -> Outcome:
        return result

    return call_next


def raising(error: BaseException) -> CallNext:
    """Return a call_next fake that raises ``error``."""

    def call_next(job: Job) -> Outcome:
        raise error

    return call_next


class ManualClock:
    """A clock tests move by hand: ``clock()`` returns the time, ``advance`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.time = start or datetime(2026, 1, 1, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.time

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.time += timedelta(seconds=seconds)


@attrs.define(kw_only=True)
class InMemoryBackend:
    """A Backend over a list of rows in memory, with delayed_job's semantics.

    Reserve applies the eligibility predicate, queue and priority filters and the
    ``priority, run_at`` order; ``apply`` deletes on success, reschedules, or marks failed
    (lock columns kept) exactly as the SQL backends do. ``workers`` is the worker
    registry, one for the whole backend whatever table name a caller gives.
    """

    clock: Clock = utc_now
    rows: dict[int, Job] = attrs.field(factory=dict)
    workers_by_name: dict[str, WorkerRecord] = attrs.field(factory=dict)
    last_error_limit: int | None = None
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def enqueue(
        self,
        handler: str,
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        queue: str | None = None,
    ) -> int:
        """Insert a row; return its id."""
        now = self.clock()
        job_id = next(self._ids)
        self.rows[job_id] = Job(
            id=job_id,
            handler=handler,
            priority=priority,
            run_at=run_at or now,
            queue=queue,
            created_at=now,
            updated_at=now,
        )
        return job_id

    def _eligible(self, job: Job, request: ReserveRequest) -> bool:
        if job.failed_at is not None:
            return False
        ready = (
            job.run_at is not None
            and job.run_at <= request.now
            and (job.locked_at is None or job.locked_at < request.expired_before)
        )
        if not (ready or job.locked_by == request.worker_name):
            return False
        return self._matches(job, request)

    def _matches(self, job: Job, request: ReserveRequest) -> bool:
        if request.min_priority is not None and (
            job.priority is None or job.priority < request.min_priority
        ):
            return False
        if request.max_priority is not None and (
            job.priority is None or job.priority > request.max_priority
        ):
            return False
        if request.queues is not None and job.queue not in request.queues:
            return False
        if job.id in request.exclude_ids:
            return False
        if request.names is not None:
            text = (
                job.handler.decode("utf-8", "replace")
                if isinstance(job.handler, bytes)
                else job.handler or ""
            )
            return any(handler_marker(name) in text for name in request.names)
        return True

    def reserve(self, request: ReserveRequest) -> Job | None:
        """Lock and return the next eligible job."""
        with self._lock:
            candidates = [j for j in self.rows.values() if self._eligible(j, request)]
            if not candidates:
                return None
            job = min(candidates, key=lambda j: (j.priority or 0, j.run_at or datetime.min))
            job = attrs.evolve(
                job,
                locked_at=request.now,
                locked_by=request.worker_name,
                clock=self.clock,
                worker_max_run_time=request.max_run_time,
            )
            self.rows[job.id] = job
            return job

    def apply(self, job: Job, outcome: Outcome) -> bool:
        """Write ``outcome`` as the SQL backends do; False if the lock was lost."""
        with self._lock:
            row = self.rows.get(job.id)
            if row is None or row.locked_by != job.locked_by:
                return False
            now = self.clock()
            match outcome:
                case Succeeded() | Failed(delete=True):
                    del self.rows[job.id]
                case Rescheduled(run_at=run_at, attempts=attempts, error=error):
                    self.rows[job.id] = attrs.evolve(
                        row,
                        attempts=attempts,
                        last_error=self._text(error),
                        run_at=run_at,
                        locked_at=None,
                        locked_by=None,
                        updated_at=now,
                    )
                case Failed(attempts=attempts, error=error):
                    self.rows[job.id] = attrs.evolve(
                        row,
                        attempts=attempts,
                        last_error=self._text(error),
                        failed_at=now,
                        updated_at=now,
                    )
            return True

    def _text(self, error: BaseException) -> str:
        text = error_text(error)
        return truncate_utf8(text, self.last_error_limit) if self.last_error_limit else text

    def unlock(self, job: Job) -> None:
        """Release the lock without charging an attempt."""
        with self._lock:
            row = self.rows.get(job.id)
            if row is not None and row.locked_by == job.locked_by:
                self.rows[job.id] = attrs.evolve(row, locked_at=None, locked_by=None)

    def clear_locks(self, worker_name: str) -> int:
        """Release every unfailed lock held by ``worker_name``."""
        with self._lock:
            mine = [j for j in self.rows.values() if j.locked_by == worker_name]
            for job in mine:
                self.rows[job.id] = attrs.evolve(job, locked_at=None, locked_by=None)
            return len(mine)

    def finish_and_reserve(self, job: Job, outcome: Outcome, request: ReserveRequest) -> Job | None:
        """``apply`` then ``reserve``, as the SQL backends do in one transaction."""
        try:
            self.apply(job, outcome)
        except BackendError as exc:
            msg = f"the outcome of job {job.id} could not be recorded: {exc}"
            raise OutcomeNotRecorded(msg) from exc
        return self.reserve(request)

    def reserve_many(
        self, request: ReserveRequest, limit: int, *, finish: Finish | None = None
    ) -> list[Job]:
        """Write ``finish``, then lock and return up to ``limit`` jobs in reserve order."""
        if finish is not None:
            self._finish(finish)
        return reserve_one_by_one(self.reserve, request, limit)

    def start_next(self, job: Job, *, finish: Finish | None = None) -> Job | None:
        """Write ``finish``, then refresh ``job``'s locked_at; None if it is not ours."""
        if finish is not None:
            self._finish(finish)
        with self._lock:
            row = self.rows.get(job.id)
            if row is None or row.locked_by != job.locked_by:
                return None
            now = self.clock()
            self.rows[job.id] = attrs.evolve(row, locked_at=now)
            return attrs.evolve(job, locked_at=now)

    def _finish(self, finish: Finish) -> None:
        job, outcome = finish
        try:
            self.apply(job, outcome)
        except BackendError as exc:
            msg = f"the outcome of job {job.id} could not be recorded: {exc}"
            raise OutcomeNotRecorded(msg) from exc

    def next_run_at(self, request: ReserveRequest) -> datetime | None:
        """Return the earliest future run_at among unlocked, unfailed, matching rows."""
        with self._lock:
            times = [
                job.run_at
                for job in self.rows.values()
                if job.run_at is not None
                and job.run_at > request.now
                and job.failed_at is None
                and (job.locked_at is None or job.locked_at < request.expired_before)
                and self._matches(job, request)
            ]
        return min(times, default=None)

    def enqueue_many(self, rows: Sequence[NewJob]) -> list[int]:
        """Insert ``rows``; return their ids in order."""
        return [
            self.enqueue(row.handler, priority=row.priority, run_at=row.run_at, queue=row.queue)
            for row in rows
        ]

    def touch(self, job: Job) -> bool:
        """Refresh locked_at if ``job.locked_by`` still holds the row (Heartbeat)."""
        with self._lock:
            row = self.rows.get(job.id)
            if row is None or row.locked_by != job.locked_by:
                return False
            self.rows[job.id] = attrs.evolve(row, locked_at=self.clock())
            return True

    def create_schema(self) -> None:
        """Nothing to create: the rows live in ``rows``."""

    def check_schema(self) -> None:
        """Always fine: there is no table to be missing."""

    def job(self, job_id: int) -> Job | None:
        """Return the row ``job_id``, or None."""
        return self.rows.get(job_id)

    def jobs(self) -> list[Job]:
        """Return every row, ordered by id."""
        return [self.rows[job_id] for job_id in sorted(self.rows)]

    def queue_stats(self, now: datetime) -> list[QueueStats]:
        """Count the rows per (queue, priority) as the SQL backends' GROUP BY does."""
        groups: dict[tuple[str, int], list[Job]] = {}
        for job in self.rows.values():
            groups.setdefault((job.queue or "", job.priority or 0), []).append(job)
        stats = []
        for (_, priority), jobs in sorted(groups.items()):
            working = [j for j in jobs if j.locked_at is not None and j.failed_at is None]
            workable = [
                j
                for j in jobs
                if j.locked_at is None
                and j.failed_at is None
                and j.run_at is not None
                and j.run_at <= now
            ]
            oldest_lock = min((j.locked_at for j in working if j.locked_at), default=None)
            oldest_run = min((j.run_at for j in workable if j.run_at), default=None)
            stats.append(
                QueueStats(
                    queue=jobs[0].queue,
                    priority=priority,
                    count=len(jobs),
                    future_count=sum(1 for j in jobs if j.run_at is not None and j.run_at > now),
                    working_count=len(working),
                    workable_count=len(workable),
                    erroring_count=sum(
                        1 for j in jobs if j.last_error is not None and j.failed_at is None
                    ),
                    failed_count=sum(1 for j in jobs if j.failed_at is not None),
                    pending_count=sum(1 for j in jobs if j.attempts == 0 and j.locked_at is None),
                    max_lock_age=(now - oldest_lock).total_seconds() if oldest_lock else 0.0,
                    max_age=(now - oldest_run).total_seconds() if oldest_run else 0.0,
                )
            )
        return stats

    def hold_lock(self, name: str) -> bool:
        """Always True: every connection of an InMemoryBackend is this one object."""
        return True

    def wait_for_jobs(self, timeout: float, stop: threading.Event) -> bool:
        """Sleep up to ``timeout`` seconds or until ``stop`` is set; never notified."""
        stop.wait(timeout)
        return False

    def close(self) -> None:
        """Nothing to close."""

    # -- the worker registry ------------------------------------------------------------
    def create_registry(self, table: str) -> None:
        """Nothing to create: the registry lives in ``workers_by_name``."""

    def check_registry(self, table: str) -> None:
        """Always fine: there is no table to be missing."""

    def register_worker(self, table: str, record: WorkerRecord) -> WorkerRecord | None:
        """Store ``record``; return the row of the same name it replaced."""
        with self._lock:
            previous = self.workers_by_name.get(record.name)
            self.workers_by_name[record.name] = record
            return previous

    def beat(self, table: str, name: str, job_id: int | None) -> bool:
        """Set ``name``'s heartbeat_at to now and its job_id; False if it has no row."""
        with self._lock:
            record = self.workers_by_name.get(name)
            if record is None:
                return False
            self.workers_by_name[name] = attrs.evolve(
                record, heartbeat_at=self.clock(), job_id=job_id
            )
            return True

    def unregister_worker(self, table: str, name: str) -> None:
        """Delete ``name``'s row."""
        with self._lock:
            self.workers_by_name.pop(name, None)

    def workers(self, table: str) -> list[WorkerRecord]:
        """Return every registered worker, ordered by name."""
        return [self.workers_by_name[name] for name in sorted(self.workers_by_name)]

    def dead_workers(self, table: str, before: datetime) -> list[WorkerRecord]:
        """Return the workers whose heartbeat is older than ``before``, oldest first."""
        dead = [w for w in self.workers_by_name.values() if w.heartbeat_at < before]
        return sorted(dead, key=lambda w: w.heartbeat_at)

    def locked_jobs(self, worker_name: str) -> list[Job]:
        """Return the unfailed rows locked by ``worker_name`` in reserve order, then id."""
        held = [
            job for job in self.jobs() if job.locked_by == worker_name and job.failed_at is None
        ]
        return sorted(held, key=lambda j: (j.priority or 0, j.run_at or datetime.min, j.id))

    def take_over(self, table: str, job: Job, rescuer: str, before: datetime) -> Job | None:
        """Move ``job``'s lock to ``rescuer`` under the SQL backends' conditions."""
        with self._lock:
            row = self.rows.get(job.id)
            owner = self.workers_by_name.get(job.locked_by or "")
            if (
                row is None
                or row.locked_by != job.locked_by
                or row.failed_at is not None
                or row.locked_at is None
                or row.locked_at >= before
                or owner is None
                or owner.heartbeat_at >= before
            ):
                return None
            taken = attrs.evolve(
                row,
                locked_by=rescuer,
                locked_at=self.clock(),
                clock=self.clock,
                worker_max_run_time=job.worker_max_run_time,
            )
            self.rows[job.id] = taken
            return taken

    def forget_worker(self, table: str, name: str, before: datetime) -> bool:
        """Delete a dead worker's row once it holds no unfailed lock; True if deleted."""
        with self._lock:
            record = self.workers_by_name.get(name)
            holds = any(j.locked_by == name and j.failed_at is None for j in self.rows.values())
            if record is None or record.heartbeat_at >= before or holds:
                return False
            del self.workers_by_name[name]
            return True

    def factory(self) -> Callable[[], InMemoryBackend]:
        """Return ``lambda: self``, for ``Worker(backend=...)``."""
        return lambda: self
