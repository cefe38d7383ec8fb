"""The Backend protocol and the SQL all dialects share; only backends write job rows."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

import attrs

from djmw._clock import Clock, utc_now
from djmw.backends._sql import (
    COLUMNS,
    ORDER,
    NewJob,
    ReserveRequest,
    checked_table,
    ready_where,
    truncate_utf8,
    upcoming_where,
)
from djmw.backends._workers import (
    REGISTRY_COLUMNS,
    WorkerRecord,
    decode_queues,
    encode_queues,
)
from djmw.errors import BackendError, ConfigurationError, OutcomeNotRecorded
from djmw.job import Job
from djmw.logs import job_label
from djmw.outcome import Failed, Outcome, Rescheduled, Succeeded, error_text

T = TypeVar("T")

logger = logging.getLogger("djmw.backend")


class Backend(Protocol):
    """What a worker, its middlewares and the tools need from a database.

    SQLite, MariaDB/MySQL, PostgreSQL and ``djmw.testing.InMemoryBackend`` implement all of it; a new
    database implements all of it too (see the README's Architecture section). One
    backend instance is one connection; each worker thread gets its own. Only backends
    write job rows.
    """

    clock: Clock

    def reserve(self, request: ReserveRequest) -> Job | None:
        """Lock and return the next eligible job, or None; BackendError on failure."""
        ...

    def apply(self, job: Job, outcome: Outcome) -> bool:
        """Write ``outcome`` for ``job`` in one statement; False if the lock was lost."""
        ...

    def finish_and_reserve(self, job: Job, outcome: Outcome, request: ReserveRequest) -> Job | None:
        """``apply`` then ``reserve``, in one transaction where the database allows it.

        Raises OutcomeNotRecorded when the outcome could not be written at all.
        """
        ...

    def reserve_many(
        self, request: ReserveRequest, limit: int, *, finish: Finish | None = None
    ) -> list[Job]:
        """Lock and return up to ``limit`` eligible jobs, in reserve order (batch claims).

        Each row gets this worker's locked_by and locked_at, as ``reserve`` sets them.
        ``finish``, a job and its outcome, is written first, in the same transaction
        where the database allows it; OutcomeNotRecorded when it cannot be written.
        """
        ...

    def start_next(self, job: Job, *, finish: Finish | None = None) -> Job | None:
        """Refresh the locked_at of ``job``, a prefetched job about to run.

        ``finish``'s outcome is written in the same round trip (OutcomeNotRecorded when
        it cannot be). Returns the job with its new locked_at, or None when its row is
        no longer locked by ``job.locked_by`` (it must not run then).
        """
        ...

    def next_run_at(self, request: ReserveRequest) -> datetime | None:
        """Return the earliest run_at after ``request.now`` among rows this worker could
        take then (unlocked, not failed, the request's filters), or None."""
        ...

    def unlock(self, job: Job) -> None:
        """Release ``job``'s lock without charging an attempt."""
        ...

    def touch(self, job: Job) -> bool:
        """Refresh ``job``'s locked_at; False when the row is no longer locked by it."""
        ...

    def clear_locks(self, worker_name: str) -> int:
        """Release every lock held by ``worker_name``; return how many rows."""
        ...

    def enqueue(
        self,
        handler: str,
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        queue: str | None = None,
    ) -> int:
        """Insert a job row as delayed_job's enqueue does; return its id."""
        ...

    def enqueue_many(self, rows: Sequence[NewJob]) -> list[int]:
        """Insert ``rows`` with one INSERT statement; return their ids, in order."""
        ...

    def create_schema(self) -> None:
        """Create the delayed_jobs table as delayed_job_active_record's migration does."""
        ...

    def check_schema(self) -> None:
        """Raise ConfigurationError naming the problem if the table is missing or wrong."""
        ...

    def job(self, job_id: int) -> Job | None:
        """Return the row ``job_id`` as a Job, or None."""
        ...

    def jobs(self) -> list[Job]:
        """Return every row, ordered by id (for tools and tests; not for the hot path)."""
        ...

    def queue_stats(self, now: datetime) -> list[QueueStats]:
        """Count the table's rows per (queue, priority) as of ``now``, in one query.

        For the queue gauges (``djmw.observe.monitor``); scans the table, so one process
        per interval runs it, never every worker.
        """
        ...

    def hold_lock(self, name: str) -> bool:
        """Take the database-wide lock ``name`` unless another connection holds it.

        True while this connection holds it (asking again is cheap and idempotent); the
        lock goes when the connection closes or is lost. For leader election (the queue
        monitor), never for job rows.
        """
        ...

    def wait_for_jobs(self, timeout: float, stop: threading.Event) -> bool:
        """Sleep while idle: up to ``timeout`` seconds, at once ended by ``stop``.

        A backend that can hear about new rows (PostgreSQL's LISTEN) returns early, True,
        when one may be ready; the others just wait on ``stop`` and return False.
        """
        ...

    def close(self) -> None:
        """Close the connection."""
        ...

    # -- the worker registry (djmw.registry): djmw's side table, never read by Ruby --------
    def create_registry(self, table: str) -> None:
        """Create the worker registry table ``table`` if it is missing."""
        ...

    def check_registry(self, table: str) -> None:
        """Raise ConfigurationError saying how to create ``table`` if it is missing or wrong."""
        ...

    def register_worker(self, table: str, record: WorkerRecord) -> WorkerRecord | None:
        """Write ``record`` (replacing a row of the same name); return the replaced row."""
        ...

    def beat(self, table: str, name: str, job_id: int | None) -> bool:
        """Set ``name``'s heartbeat_at to now and its job_id; False if it has no row."""
        ...

    def unregister_worker(self, table: str, name: str) -> None:
        """Delete ``name``'s row (a clean exit)."""
        ...

    def workers(self, table: str) -> list[WorkerRecord]:
        """Return every registered worker, ordered by name (for tools and tests)."""
        ...

    def dead_workers(self, table: str, before: datetime) -> list[WorkerRecord]:
        """Return the registered workers whose last heartbeat is older than ``before``."""
        ...

    def locked_jobs(self, worker_name: str) -> list[Job]:
        """Return the unfailed rows locked by ``worker_name`` in reserve order (priority,
        run_at, then id): the order a batch claim of that worker runs them in."""
        ...

    def take_over(self, table: str, job: Job, rescuer: str, before: datetime) -> Job | None:
        """Move ``job``'s lock from its dead worker to ``rescuer``; the row, or None.

        Atomic, and only while the row is still locked by ``job.locked_by``, unfailed,
        locked before ``before``, and its worker is registered with a heartbeat older than
        ``before``: of several rescuers one wins, and a worker that beat again keeps it.
        """
        ...

    def forget_worker(self, table: str, name: str, before: datetime) -> bool:
        """Delete a dead worker's row once it holds no unfailed lock; True if deleted."""
        ...


def reserve_one_by_one(
    reserve: Callable[[ReserveRequest], Job | None], request: ReserveRequest, limit: int
) -> list[Job]:
    """Claim up to ``limit`` jobs with repeated single claims, in reserve order: the batch
    claim of a backend that cannot take several rows in one statement."""
    jobs: list[Job] = []
    while len(jobs) < limit:
        # A row this worker locked is eligible again (locked_by = name): skip it.
        taken = frozenset(job.id for job in jobs)
        job = reserve(attrs.evolve(request, exclude_ids=request.exclude_ids | taken))
        if job is None:
            break
        jobs.append(job)
    return jobs


@attrs.frozen(kw_only=True)
class QueueStats:
    """The rows of one (queue, priority) pair, as the queue gauges report them.

    The counts follow prometheus_exporter's delayed_job gauges (``enqueued`` = every
    row, ``pending`` = attempts 0 and not locked, ``failed``) and Betterment delayed's
    monitor (``future_count``: run_at later than now; ``working_count``: locked, not
    failed; ``workable_count``: not locked, not failed, run_at reached;
    ``erroring_count``: a last_error but not failed; ``max_lock_age``: seconds since the
    oldest working lock; ``max_age``: seconds since the oldest workable row's run_at).
    """

    queue: str | None
    priority: int
    count: int = 0
    future_count: int = 0
    working_count: int = 0
    workable_count: int = 0
    erroring_count: int = 0
    failed_count: int = 0
    pending_count: int = 0
    max_lock_age: float = 0.0
    max_age: float = 0.0


def _age(now: datetime, then: datetime | None) -> float:
    return max((now - then).total_seconds(), 0.0) if then is not None else 0.0


def queue_stats_from(
    now: datetime,
    rows: Sequence[tuple[Any, ...]],
    to_time: Callable[[object], datetime | None],
) -> list[QueueStats]:
    """Build QueueStats from ``QUEUE_STATS_SQL`` rows (``to_time`` reads the two MINs)."""
    stats = []
    for queue, priority, *counts, oldest_lock, oldest_workable in rows:
        numbers = [int(value or 0) for value in counts]
        stats.append(
            QueueStats(
                queue=queue.decode() if isinstance(queue, bytes) else queue,
                priority=int(priority or 0),
                count=numbers[0],
                future_count=numbers[1],
                working_count=numbers[2],
                workable_count=numbers[3],
                erroring_count=numbers[4],
                failed_count=numbers[5],
                pending_count=numbers[6],
                max_lock_age=_age(now, to_time(oldest_lock)),
                max_age=_age(now, to_time(oldest_workable)),
            )
        )
    return stats


#: Every queue gauge in one pass over the table; ``{m}`` is the dialect's placeholder.
QUEUE_STATS_SQL = (
    "SELECT queue, priority, COUNT(*), "
    "SUM(CASE WHEN run_at > {m} THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN locked_at IS NOT NULL AND failed_at IS NULL THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN locked_at IS NULL AND failed_at IS NULL AND run_at <= {m} THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN last_error IS NOT NULL AND failed_at IS NULL THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN attempts = 0 AND locked_at IS NULL THEN 1 ELSE 0 END), "
    "MIN(CASE WHEN locked_at IS NOT NULL AND failed_at IS NULL THEN locked_at END), "
    "MIN(CASE WHEN locked_at IS NULL AND failed_at IS NULL AND run_at <= {m} THEN run_at END) "
    "FROM {t} GROUP BY queue, priority ORDER BY queue, priority"
)


#: Opens a new connection: ``Worker.connect``, or ``lambda: backend`` in tests.
BackendFactory = Callable[[], Backend]

#: A job that ran and the outcome to write for it.
Finish = tuple[Job, Outcome]


class SqlBackend(abc.ABC):
    """Shared statements for the SQL dialects; subclasses bring the driver.

    Args:
        table: the delayed_jobs table name (ActiveRecord's prefix included).
        clock: where "now" comes from; naive UTC unless mimicking ``:local``.
    """

    mark = "?"
    quote = '"'
    #: The keyword options this dialect's constructor takes beyond table and clock.
    OPTIONS: ClassVar[frozenset[str]] = frozenset()
    #: Bytes last_error may hold (None = unbounded); set from the schema when known.
    last_error_limit: int | None = None

    def __init__(self, *, table: str = "delayed_jobs", clock: Clock = utc_now) -> None:
        self.table = checked_table(table)
        self.clock = clock
        self._t = f"{self.quote}{self.table}{self.quote}"

    # -- driver hooks -------------------------------------------------------------------
    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement in autocommit; return the affected row count."""

    @abc.abstractmethod
    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one query in autocommit; return all rows."""

    @abc.abstractmethod
    def _write(self, action: Callable[[], T]) -> T:
        """Run a final write, retrying what the driver reports as transient."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection."""

    @abc.abstractmethod
    def reserve(self, request: ReserveRequest) -> Job | None:
        """Lock and return the next eligible job, or None; BackendError on failure."""

    @abc.abstractmethod
    def create_schema(self) -> None:
        """Create the delayed_jobs table as delayed_job_active_record's migration does."""

    @abc.abstractmethod
    def check_schema(self) -> None:
        """Raise ConfigurationError naming the problem if the table is missing or wrong."""

    @abc.abstractmethod
    def hold_lock(self, name: str) -> bool:
        """Take the database-wide lock ``name`` unless another connection holds it."""

    def _stamp(self, value: datetime) -> object:
        """Convert a naive datetime to what the driver stores (dialect precision)."""
        return value

    def _compare(self, value: datetime) -> object:
        """Convert a naive datetime used in a comparison (full precision by default)."""
        return self._stamp(value)

    def _time_column(self, column: str) -> str:
        """The expression a time column is compared through in the reserve predicate."""
        return column

    def _time(self, value: object) -> datetime | None:
        """Convert a stored time value back to a naive datetime."""
        return value if isinstance(value, datetime) else None

    def wait_for_jobs(self, timeout: float, stop: threading.Event) -> bool:
        """Sleep up to ``timeout`` seconds or until ``stop`` is set; polling is the fallback
        every backend has, so this returns False (no notification)."""
        stop.wait(timeout)
        return False

    # -- reading ------------------------------------------------------------------------
    @property
    def select_columns(self) -> str:
        """The column list of every job read (handler read as raw bytes)."""
        return ", ".join(self._select_expression(column) for column in COLUMNS)

    def _select_expression(self, column: str) -> str:
        return column

    def to_job(self, row: Sequence[Any], max_run_time: float = 4 * 3600.0) -> Job:
        """Build a Job from a row in COLUMNS order (``max_run_time``: the worker's)."""
        values = dict(zip(COLUMNS, row, strict=True))
        last_error = values["last_error"]
        if isinstance(last_error, bytes):
            last_error = last_error.decode("utf-8", "replace")
        return Job(
            id=int(values["id"]),
            handler=values["handler"],
            priority=values["priority"],
            attempts=int(values["attempts"] or 0),
            last_error=last_error,
            run_at=self._time(values["run_at"]),
            locked_at=self._time(values["locked_at"]),
            locked_by=values["locked_by"],
            failed_at=self._time(values["failed_at"]),
            queue=values["queue"],
            created_at=self._time(values["created_at"]),
            updated_at=self._time(values["updated_at"]),
            clock=self.clock,
            worker_max_run_time=max_run_time,
        )

    def where(self, request: ReserveRequest) -> tuple[str, list[object]]:
        """Return delayed_job's eligibility predicate with this dialect's parameters."""
        sql, params = ready_where(request, self.mark, self._time_column)
        return sql, [self._compare(p) if isinstance(p, datetime) else p for p in params]

    # -- writing ------------------------------------------------------------------------
    def _last_error(self, error: BaseException, *, ascii_only: bool = False) -> str:
        text = error_text(error)
        if ascii_only:
            text = text.encode("ascii", "backslashreplace").decode("ascii")
        if self.last_error_limit is not None:
            text = truncate_utf8(text, self.last_error_limit)
        return text

    def outcome_sql(
        self, job: Job, outcome: Outcome, *, ascii_error: bool = False
    ) -> tuple[str, list[object]]:
        """Return the one statement that records ``outcome`` (guarded by our lock).

        ``ascii_error`` escapes last_error to ASCII, for a column whose charset rejects it.
        """
        m, now = self.mark, self._stamp(self.clock())
        guard = f"id = {m} AND locked_by = {m}"
        key: list[object] = [job.id, job.locked_by]
        match outcome:
            case Succeeded() | Failed(delete=True):
                return f"DELETE FROM {self._t} WHERE {guard}", key
            case Rescheduled(run_at=run_at, attempts=attempts, error=error):
                sql = (
                    f"UPDATE {self._t} SET attempts = {m}, last_error = {m}, run_at = {m}, "
                    f"locked_at = NULL, locked_by = NULL, updated_at = {m} WHERE {guard}"
                )
                params = [
                    attempts,
                    self._last_error(error, ascii_only=ascii_error),
                    self._stamp(run_at),
                    now,
                ]
                return sql, [*params, *key]
            case Failed(attempts=attempts, error=error):
                sql = (
                    f"UPDATE {self._t} SET attempts = {m}, last_error = {m}, failed_at = {m}, "
                    f"updated_at = {m} WHERE {guard}"
                )
                return sql, [
                    attempts,
                    self._last_error(error, ascii_only=ascii_error),
                    now,
                    now,
                    *key,
                ]
        msg = f"not an Outcome: {outcome!r}"  # pragma: no cover - the chain checks this
        raise TypeError(msg)

    def apply(self, job: Job, outcome: Outcome) -> bool:
        """Record ``outcome`` in one statement, retrying deadlocks and lost connections.

        Returns False when the row was no longer locked by this worker (its lock expired
        and another worker took it); that worker's run then decides the row.
        """
        sql, params = self.outcome_sql(job, outcome)
        count = self._write(lambda: self._execute(sql, params))
        if count == 0:
            lost_lock(job)
        return count > 0

    def finish_and_reserve(self, job: Job, outcome: Outcome, request: ReserveRequest) -> Job | None:
        """Write ``job``'s outcome, then claim the next job (two statements here;
        dialects that can do both in one transaction override this)."""
        try:
            self.apply(job, outcome)
        except BackendError as exc:
            msg = f"the outcome of job {job.id} could not be recorded: {exc}"
            raise OutcomeNotRecorded(msg) from exc
        return self.reserve(request)

    def _finish(self, finish: Finish) -> None:
        job, outcome = finish
        try:
            self.apply(job, outcome)
        except BackendError as exc:
            msg = f"the outcome of job {job.id} could not be recorded: {exc}"
            raise OutcomeNotRecorded(msg) from exc

    def reserve_many(
        self, request: ReserveRequest, limit: int, *, finish: Finish | None = None
    ) -> list[Job]:
        """Write ``finish``, then claim up to ``limit`` jobs one by one (dialects that can
        claim them in one transaction override this)."""
        if finish is not None:
            self._finish(finish)
        return reserve_one_by_one(self.reserve, request, limit)

    def touch_sql(self, job: Job, now: datetime) -> tuple[str, list[object]] | None:
        """Return the UPDATE that refreshes ``job``'s locked_at to ``now``, or None when
        the stored value would not change (same second on whole-second columns)."""
        stamp = self._stamp(now)
        if job.locked_at is not None and stamp == self._stamp(job.locked_at):
            return None
        m = self.mark
        sql = f"UPDATE {self._t} SET locked_at = {m} WHERE id = {m} AND locked_by = {m}"
        return sql, [stamp, job.id, job.locked_by]

    def _started(self, job: Job, now: datetime) -> Job:
        stamp = self._stamp(now)
        return attrs.evolve(job, locked_at=stamp if isinstance(stamp, datetime) else now)

    def start_next(self, job: Job, *, finish: Finish | None = None) -> Job | None:
        """Write ``finish``, then refresh ``job``'s locked_at (dialects that can do both
        in one round trip override this). None when the row is no longer ours."""
        if finish is not None:
            self._finish(finish)
        now = self.clock()
        touch = self.touch_sql(job, now)
        if touch is None:
            return job
        sql, params = touch
        if self._write(lambda: self._execute(sql, params)) == 0:
            return None
        return self._started(job, now)

    def next_run_at(self, request: ReserveRequest) -> datetime | None:
        """``SELECT MIN(run_at)`` over the rows that become eligible later; BackendError
        on failure. Scans the rows of the priority index after now (an idle worker runs
        it once per sleep)."""
        where, params = upcoming_where(request, self.mark)
        values = [self._compare(p) if isinstance(p, datetime) else p for p in params]
        try:
            rows = self._query(f"SELECT MIN(run_at) FROM {self._t} WHERE {where}", values)
        except BackendError:
            raise
        except Exception as exc:  # the driver's own error, whatever the dialect
            msg = f"next run_at query failed: {exc}"
            raise BackendError(msg) from exc
        return self._time(rows[0][0]) if rows else None

    def unlock(self, job: Job) -> None:
        """Release ``job``'s lock, attempts unchanged (used for crashes and shutdown)."""
        m = self.mark
        sql = (
            f"UPDATE {self._t} SET locked_at = NULL, locked_by = NULL "
            f"WHERE id = {m} AND locked_by = {m}"
        )
        self._write(lambda: self._execute(sql, [job.id, job.locked_by]))

    def touch(self, job: Job) -> bool:
        """Refresh ``job``'s locked_at to now if ``job.locked_by`` still holds it (Heartbeat).

        Returns False when the row is gone or locked by someone else. Retries deadlocks
        and lost connections like every final write.
        """
        m = self.mark
        key: list[object] = [job.id, job.locked_by]
        sql = f"UPDATE {self._t} SET locked_at = {m} WHERE id = {m} AND locked_by = {m}"
        stamp = self._stamp(self.clock())
        if self._write(lambda: self._execute(sql, [stamp, *key])) > 0:
            return True
        # MySQL counts changed rows only: a whole-second stamp equal to the stored one
        # changes nothing, yet the lock is still ours.
        check = f"SELECT 1 FROM {self._t} WHERE id = {m} AND locked_by = {m}"
        return self._write(lambda: len(self._query(check, key))) > 0

    def clear_locks(self, worker_name: str) -> int:
        """delayed_job's ClearLocks: unlock every row held by ``worker_name``.

        Failed rows included, as delayed_job does at exit (they are never reserved
        anyway: the predicate has ``failed_at IS NULL``).
        """
        m = self.mark
        sql = f"UPDATE {self._t} SET locked_at = NULL, locked_by = NULL WHERE locked_by = {m}"
        return self._write(lambda: self._execute(sql, [worker_name]))

    def enqueue(
        self,
        handler: str,
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        queue: str | None = None,
    ) -> int:
        """Insert a row as delayed_job does: attempts 0, run_at now unless given."""
        now = self.clock()
        m = self.mark
        sql = (
            f"INSERT INTO {self._t} (priority, attempts, handler, run_at, queue, created_at, "
            f"updated_at) VALUES ({m}, 0, {m}, {m}, {m}, {m}, {m})"
        )
        stamp = self._stamp(now)
        params = [priority, handler, self._stamp(run_at or now), queue, stamp, stamp]
        return self._insert(sql, params)

    def insert_sql(self, rows: Sequence[NewJob]) -> tuple[str, list[object]]:
        """Return one multi-row INSERT of ``rows`` (attempts 0, run_at now unless given)."""
        now = self._stamp(self.clock())
        m = self.mark
        values = f"({m}, 0, {m}, {m}, {m}, {m}, {m})"
        params: list[object] = []
        for row in rows:
            run_at = self._stamp(row.run_at) if row.run_at is not None else now
            params.extend((row.priority, row.handler, run_at, row.queue, now, now))
        sql = (
            f"INSERT INTO {self._t} (priority, attempts, handler, run_at, queue, created_at, "
            f"updated_at) VALUES {', '.join([values] * len(rows))}"
        )
        return sql, params

    @abc.abstractmethod
    def enqueue_many(self, rows: Sequence[NewJob]) -> list[int]:
        """Insert ``rows`` with one INSERT statement; return their ids, in order."""

    @abc.abstractmethod
    def _insert(self, sql: str, params: Sequence[object]) -> int:
        """Run an INSERT; return the new row id."""

    def job(self, job_id: int) -> Job | None:
        """Return the row ``job_id`` as a Job, or None (for tools and tests)."""
        rows = self._query(
            f"SELECT {self.select_columns} FROM {self._t} WHERE id = {self.mark}", [job_id]
        )
        return self.to_job(rows[0]) if rows else None

    def jobs(self) -> list[Job]:
        """Return every row, ordered by id (for tools and tests; not for the hot path)."""
        rows = self._query(f"SELECT {self.select_columns} FROM {self._t} ORDER BY id")
        return [self.to_job(row) for row in rows]

    # -- the worker registry ------------------------------------------------------------
    # djmw's side table (djmw.registry). Its times are written at full precision, whatever
    # the precision of delayed_jobs' columns: heartbeats are compared to a few seconds.
    @abc.abstractmethod
    def create_registry(self, table: str) -> None:
        """Create the worker registry table ``table`` if it is missing."""

    @abc.abstractmethod
    def check_registry(self, table: str) -> None:
        """Raise ConfigurationError saying how to create ``table`` if it is missing or wrong."""

    def _registry(self, table: str) -> str:
        return f"{self.quote}{checked_table(table)}{self.quote}"

    def _to_worker(self, row: Sequence[Any]) -> WorkerRecord:
        values = dict(zip(REGISTRY_COLUMNS, row, strict=True))
        started, beat = self._time(values["started_at"]), self._time(values["heartbeat_at"])
        name = values["name"]
        return WorkerRecord(
            name=name.decode() if isinstance(name, bytes) else str(name),
            host=str(values["host"]),
            pid=int(values["pid"]),
            queues=decode_queues(values["queues"]),
            started_at=started or datetime.min,
            heartbeat_at=beat or datetime.min,
            job_id=None if values["job_id"] is None else int(values["job_id"]),
        )

    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """A query with the final writes' retries, its errors raised as BackendError."""
        rows: list[tuple[Any, ...]] = []

        def read() -> int:
            rows[:] = self._query(sql, params)
            return len(rows)

        self._write(read)
        return rows

    def _select_workers(
        self, table: str, where: str, params: Sequence[object]
    ) -> list[WorkerRecord]:
        sql = f"SELECT {', '.join(REGISTRY_COLUMNS)} FROM {self._registry(table)} {where}"
        return [self._to_worker(row) for row in self._read(sql, params)]

    def register_worker(self, table: str, record: WorkerRecord) -> WorkerRecord | None:
        """Write ``record`` over a row of the same name; return the row it replaced.

        The replaced row is the same name's earlier incarnation: its ``heartbeat_at`` says
        when it was last seen alive.
        """
        previous = self._select_workers(table, f"WHERE name = {self.mark}", [record.name])
        sql = self._replace_worker_sql(table)
        params = [
            record.name,
            record.host,
            record.pid,
            encode_queues(record.queues),
            self._compare(record.started_at),
            self._compare(record.heartbeat_at),
            record.job_id,
        ]
        self._write(lambda: self._execute(sql, params))
        return previous[0] if previous else None

    def _replace_worker_sql(self, table: str) -> str:
        """The statement that writes a registry row over one of the same name.

        ``REPLACE INTO`` in MySQL and SQLite; a dialect without it (PostgreSQL) overrides
        this with ``INSERT ... ON CONFLICT (name) DO UPDATE``.
        """
        m = self.mark
        return (
            f"REPLACE INTO {self._registry(table)} ({', '.join(REGISTRY_COLUMNS)}) "
            f"VALUES ({', '.join([m] * len(REGISTRY_COLUMNS))})"
        )

    def beat(self, table: str, name: str, job_id: int | None) -> bool:
        """Set heartbeat_at to now and job_id; False when ``name`` has no row any more."""
        m, t = self.mark, self._registry(table)
        sql = f"UPDATE {t} SET heartbeat_at = {m}, job_id = {m} WHERE name = {m}"

        def update() -> int:  # the time of the try that lands, not of the first one
            return self._execute(sql, [self._compare(self.clock()), job_id, name])

        if self._write(update) > 0:
            return True
        # MySQL counts changed rows only: an unchanged row is still there.
        check = f"SELECT 1 FROM {t} WHERE name = {m}"
        return self._write(lambda: len(self._query(check, [name]))) > 0

    def unregister_worker(self, table: str, name: str) -> None:
        """Delete ``name``'s row."""
        sql = f"DELETE FROM {self._registry(table)} WHERE name = {self.mark}"
        self._write(lambda: self._execute(sql, [name]))

    def workers(self, table: str) -> list[WorkerRecord]:
        """Return every registered worker, ordered by name."""
        return self._select_workers(table, "ORDER BY name", [])

    def dead_workers(self, table: str, before: datetime) -> list[WorkerRecord]:
        """Return the workers whose heartbeat_at is older than ``before``, oldest first."""
        where = f"WHERE heartbeat_at < {self.mark} ORDER BY heartbeat_at"
        return self._select_workers(table, where, [self._compare(before)])

    def locked_jobs(self, worker_name: str) -> list[Job]:
        """Return the unfailed rows locked by ``worker_name`` in reserve order, then id."""
        sql = (
            f"SELECT {self.select_columns} FROM {self._t} "
            f"WHERE locked_by = {self.mark} AND failed_at IS NULL {ORDER}, id"
        )
        return [self.to_job(row) for row in self._read(sql, [worker_name])]

    def take_over(self, table: str, job: Job, rescuer: str, before: datetime) -> Job | None:
        """Move ``job``'s lock to ``rescuer`` in one guarded UPDATE; return the row, or None.

        The UPDATE repeats every condition on the row itself and checks the dead worker's
        registry row in the same statement (the rule of docs/contract.md item 6).
        """
        m, t = self.mark, self._t
        sql = (
            f"UPDATE {t} SET locked_by = {m}, locked_at = {m} "
            f"WHERE id = {m} AND locked_by = {m} AND failed_at IS NULL AND locked_at < {m} "
            f"AND EXISTS (SELECT 1 FROM {self._registry(table)} "
            f"WHERE name = {m} AND heartbeat_at < {m})"
        )
        cutoff = self._compare(before)
        params = [rescuer, self._stamp(self.clock()), job.id, job.locked_by, cutoff]
        params += [job.locked_by, cutoff]
        if self._write(lambda: self._execute(sql, params)) == 0:
            return None
        rows = self._read(
            f"SELECT {self.select_columns} FROM {t} WHERE id = {m} AND locked_by = {m}",
            [job.id, rescuer],
        )
        return self.to_job(rows[0], job.worker_max_run_time) if rows else None

    def forget_worker(self, table: str, name: str, before: datetime) -> bool:
        """Delete a dead worker's row once it holds no unfailed lock; True if deleted."""
        m = self.mark
        sql = (
            f"DELETE FROM {self._registry(table)} WHERE name = {m} AND heartbeat_at < {m} "
            f"AND NOT EXISTS (SELECT 1 FROM {self._t} WHERE locked_by = {m} AND failed_at IS NULL)"
        )
        params = [name, self._compare(before), name]
        return self._write(lambda: self._execute(sql, params)) > 0

    def queue_stats(self, now: datetime) -> list[QueueStats]:
        """Count the rows per (queue, priority) in one GROUP BY; BackendError on failure."""
        sql = QUEUE_STATS_SQL.format(m=self.mark, t=self._t)
        stamp = self._compare(now)
        try:
            rows = self._query(sql, [stamp, stamp, stamp])
        except Exception as exc:  # the driver's own error, whatever the dialect
            if isinstance(exc, BackendError):
                raise
            msg = f"queue statistics query failed: {exc}"
            raise BackendError(msg) from exc
        return queue_stats_from(now, rows, self._time)


def combined_write_failed(reason: object) -> None:
    """Say why a transaction that carried a finished job's outcome with the next claim (or,
    with prefetch, with the next job's start) failed. It rolled back whole; the caller then
    writes the outcome on its own (with the write retries, which log each try) and claims
    or starts again. Without this line a lost connection that the next write survives
    would leave no trace in the log."""
    logger.warning(
        "Could not write an outcome together with the next claim or start (%s); the "
        "transaction was rolled back; writing the outcome on its own",
        reason,
    )


def lost_lock(job: Job) -> None:
    """Warn that ``job``'s outcome was dropped because another worker holds its row now."""
    logger.warning(
        "Job %s (id=%s): the row is no longer locked by %s; its outcome was not "
        "recorded (another worker took the expired lock, or the row was deleted).",
        job_label(job),
        job.id,
        job.locked_by,
    )


def locked(job: Job, worker_name: str, locked_at: datetime) -> Job:
    """Return ``job`` as it is after this worker locked it."""
    return attrs.evolve(job, locked_by=worker_name, locked_at=locked_at)


def check_columns(table: str, present: set[str], fix: str) -> None:
    """Raise ConfigurationError if ``table`` is missing or lacks delayed_job columns."""
    if not present:
        msg = f"the table {table!r} does not exist; create it with `{fix}` or a Rails migration."
        raise ConfigurationError(msg)
    missing = [column for column in COLUMNS if column not in present]
    if missing:
        msg = (
            f"the table {table!r} lacks the delayed_job columns {missing}; it must have the "
            f"columns of delayed_job_active_record's migration ({', '.join(COLUMNS)})."
        )
        raise ConfigurationError(msg)
