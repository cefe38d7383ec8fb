"""Jobs: see, retry, delete, prune and check delayed_jobs rows from Python.

The one operations API: the ``djmw jobs`` commands (and any dashboard) are thin layers
over it. It sits on a SQL backend and reuses the worker's own pieces, so that a state or
a name means the same everywhere: ``ready`` is the reserve predicate
(``SqlBackend.where``), names come from the worker's decoder, and no destructive write
touches a row a live worker holds (``scope.Liveness``; by default a lock younger than
``max_run_time``).
"""

from __future__ import annotations

import builtins
import concurrent.futures
import fnmatch
import functools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from djmw._clock import Clock
from djmw.admin.enqueue import Kind, build_handler
from djmw.admin.explain import explain
from djmw.admin.reports import (
    CheckResult,
    FailureGroup,
    FailureSummary,
    Group,
    Stats,
    Timeline,
    error_class,
)
from djmw.admin.rows import DEFAULT_LIMITS, Change, JobDetail, JobRow, Page, decode
from djmw.admin.scope import (
    STATES,
    JobFilter,
    Liveness,
    LockAge,
    Scope,
    Sql,
    State,
    conjunction,
)
from djmw.backends import Backend, DatabaseUrl, SqlBackend, open_backend, parse_url
from djmw.backends._sql import COLUMNS
from djmw.errors import ConfigurationError, JobNotFound
from djmw.ruby.payload import DecodeLimits

By = Literal["queue", "name", "state"]
Target = JobFilter | Sequence[int]
#: How much of a last_error ``failures`` reads per row (its message and first frame).
ERROR_HEAD = 4096


def _positive(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        msg = f"Jobs: {what} must be a positive number, got {value!r}."
        raise ConfigurationError(msg)


class Jobs:
    """The operations API over one delayed_jobs table.

    Args:
        database: a URL (``$DATABASE_URL`` when None), or an open ``SqlBackend`` to use
            (it is then not closed by ``close``).
        table: the delayed_jobs table name, when ``database`` is a URL.
        max_run_time: the workers' max_run_time in seconds (default 4 h): a lock younger
            than this is live.
        clock: where "now" comes from (default naive UTC, or the backend's clock).
        liveness: which rows a live worker holds (default ``LockAge(max_run_time)``).
        limits: the decode limits names are read with (the worker's defaults).
        batch_size: rows per read page and per write (default 1000).
        scan_connections: ``stats`` splits a big table (over 200,000 ids) into this many
            id ranges, read at once on as many connections, so that the database uses
            several cores for its one full scan (default 2; 1 reads on this connection
            only). Only when ``database`` is a URL.

    Raises:
        ConfigurationError / BackendError: a bad URL, an unreachable server or a
            missing table, with the same messages as ``djmw work`` (no password).

    Limits: the state of a row is read at the start of each call; a bulk write repeats
    the filter and the guard in every statement, so a row that changed meanwhile (a
    worker claimed it) is left alone and ``Change.count`` says what was written.
    """

    def __init__(
        self,
        database: str | DatabaseUrl | SqlBackend | None = None,
        *,
        table: str = "delayed_jobs",
        max_run_time: float = 4 * 3600.0,
        clock: Clock | None = None,
        liveness: Liveness | None = None,
        limits: DecodeLimits = DEFAULT_LIMITS,
        batch_size: int = 1000,
        scan_connections: int = 2,
    ) -> None:
        _positive("max_run_time", max_run_time)
        _positive("batch_size", batch_size)
        _positive("scan_connections", scan_connections)
        self.scan_connections = int(scan_connections)
        self._database: str | DatabaseUrl | None = None
        self.max_run_time = float(max_run_time)
        self.liveness = liveness if liveness is not None else LockAge(self.max_run_time)
        self.limits = limits
        self.batch_size = int(batch_size)
        if isinstance(database, SqlBackend):
            self.backend, self._owned = database, False
        elif database is not None and not isinstance(database, str | DatabaseUrl):
            msg = (
                f"Jobs: database must be a URL or a SQL backend, got {type(database).__name__}; "
                "the operations API runs SQL."
            )
            raise ConfigurationError(msg)
        else:
            self.backend, self._owned = open_backend(database, table=table), True
            self._database = database if database is not None else parse_url(None)
            try:
                self.backend.check_schema()
            except BaseException:
                self.backend.close()
                raise
        self.clock: Clock = clock if clock is not None else self.backend.clock

    @classmethod
    def over(cls, backend: Backend, **options: Any) -> Jobs:
        """Jobs over a worker's connection; ConfigurationError if it is not SQL."""
        if not isinstance(backend, SqlBackend):
            msg = f"the operations API needs a SQL database backend, not {type(backend).__name__}."
            raise ConfigurationError(msg)
        return cls(backend, **options)

    def close(self) -> None:
        """Close the connection (unless it was given open)."""
        if self._owned:
            self.backend.close()

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def scope(self) -> Scope:
        """The predicates of one operation, at the clock's now."""
        return Scope(self.backend, self.clock(), self.max_run_time, self.liveness)

    # -- reading ----------------------------------------------------------------------
    def _read(
        self, sql: str, params: Sequence[object], backend: SqlBackend | None = None
    ) -> builtins.list[tuple[Any, ...]]:
        # Through the backend's write retry: transient errors are retried and driver
        # errors come out as BackendError.
        on = backend or self.backend
        result: builtins.list[tuple[Any, ...]] = []

        def action() -> int:
            result[:] = on._query(sql, params)
            return len(result)

        on._write(action)
        return result

    def _read_ranges(
        self, sql: str, params: Sequence[object], tail: str
    ) -> builtins.list[tuple[Any, ...]]:
        """``{sql} AND id BETWEEN .. {tail}`` over id ranges read at once on their own
        connections (``scan_connections``); the rows of every range, concatenated."""
        parts, m = self.scan_connections, self.backend.mark
        span = self._read(f"SELECT MIN(id), MAX(id) FROM {self.backend._t}", [])
        low, high = span[0] if span else (None, None)
        if parts < 2 or self._database is None or low is None or high - low < _SPLIT_ABOVE:
            return self._read(f"{sql} {tail}", params)
        bounds = [int(low) + (int(high) - int(low) + 1) * i // parts for i in range(parts + 1)]
        database = self._database

        def read(index: int) -> builtins.list[tuple[Any, ...]]:
            backend = open_backend(database, table=self.backend.table)
            try:
                ranged = f"{sql} AND id >= {m} AND id < {m} {tail}"
                return self._read(ranged, [*params, bounds[index], bounds[index + 1]], backend)
            finally:
                backend.close()

        with concurrent.futures.ThreadPoolExecutor(parts) as pool:
            return [row for rows in pool.map(read, range(parts)) for row in rows]

    def _row(self, raw: Sequence[Any]) -> JobRow:
        job = self.backend.to_job(raw[: len(COLUMNS)], self.max_run_time)
        return JobRow(
            job=job, state=as_state(raw[len(COLUMNS)]), decoding=decode(job.handler, self.limits)
        )

    def rows(
        self,
        jobs: JobFilter | None = None,
        *,
        after: int | None = None,
        guarded: bool = False,
        scope: Scope | None = None,
        page: int | None = None,
        until: int | None = None,
    ) -> Iterator[JobRow]:
        """Every row ``jobs`` selects, by id, read lazily in keyset pages.

        ``guarded`` leaves out rows a live worker holds (what a write would touch);
        ``until`` reads no row past that id (a bounded scan of a sparse filter).
        """
        jobs = jobs or JobFilter()
        scope = scope or self.scope()
        where, params = scope.where(jobs, guarded=guarded)
        case, case_params = scope.state_case()
        size = page or self.batch_size
        cursor = after
        m, t = self.backend.mark, self.backend._t
        while True:
            sql = f"SELECT {self.backend.select_columns}, {case} FROM {t} WHERE {where}"
            values = [*case_params, *params]
            if cursor is not None:
                sql += f" AND id > {m}"
                values.append(cursor)
            if until is not None:
                sql += f" AND id <= {m}"
                values.append(until)
            batch = self._read(f"{sql} ORDER BY id LIMIT {int(size)}", values)
            for raw in batch:
                row = self._row(raw)
                if jobs.name is None or fnmatch.fnmatchcase(row.name, jobs.name):
                    yield row
            if len(batch) < size:
                return
            cursor = int(batch[-1][0])

    def list(
        self,
        jobs: JobFilter | None = None,
        *,
        limit: int = 50,
        after: int | None = None,
        until: int | None = None,
    ) -> Page:
        """One page of rows, by id: at most ``limit``, after row id ``after`` and, when
        ``until`` is given, up to that id (``next_after`` is then None when the range
        holds no more rows: continue after ``until``)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            msg = f"Jobs.list: limit must be an integer >= 1, got {limit!r}."
            raise ConfigurationError(msg)
        jobs = jobs or JobFilter()
        page = limit + 1 if jobs.name is None else max(self.batch_size, limit + 1)
        rows: builtins.list[JobRow] = []
        more = False
        for row in self.rows(jobs, after=after, page=page, until=until):
            if len(rows) == limit:
                more = True
                break
            rows.append(row)
        return Page(rows=rows, next_after=rows[-1].id if more else None)

    def id_span(self) -> tuple[int, int] | None:
        """The lowest and highest row id, or None for an empty table (two index reads)."""
        span = self._read(f"SELECT MIN(id), MAX(id) FROM {self.backend._t}", [])
        if not span or span[0][0] is None:
            return None
        return int(span[0][0]), int(span[0][1])

    def get(self, job_id: int, *, scope: Scope | None = None) -> JobRow:
        """The row ``job_id``; JobNotFound if there is none."""
        for row in self.rows(JobFilter(ids=(job_id,)), scope=scope):
            return row
        raise JobNotFound([job_id])

    def show(self, job_id: int, *, handlers: object = None) -> JobDetail:
        """The row, its payload and why it is or is not runnable now.

        ``handlers`` (a ``djmw.Handlers``, or any container of names) adds whether a
        perform function is registered for the job.
        """
        scope = self.scope()
        row = self.get(job_id, scope=scope)
        registered = None
        if handlers is not None:
            registered = row.decoding.error is None and row.name in handlers  # type: ignore[operator]
        why = explain(row, scope.now, self.max_run_time, registered=registered)
        return JobDetail(row=row, why=why, registered=registered)

    def count(self, jobs: JobFilter | None = None, *, guarded: bool = False) -> int:
        """How many rows ``jobs`` selects (``guarded``: leaving out held rows)."""
        jobs = jobs or JobFilter()
        if jobs.name is not None:
            return sum(1 for _ in self.rows(jobs, guarded=guarded))
        where, params = self.scope().where(jobs, guarded=guarded)
        return self._count_where(where, params)

    # -- writing ----------------------------------------------------------------------
    def retry(
        self, target: Target, *, keep_attempts: bool = False, dry_run: bool = False
    ) -> Change:
        """Run rows again now: failed_at NULL, attempts 0 (unless ``keep_attempts``),
        run_at now, lock cleared; last_error is kept for the record.

        ``target`` is a JobFilter or a list of ids (JobNotFound if one is missing, before
        anything is written). Rows a live worker holds are never touched.
        """
        attempts = "" if keep_attempts else "attempts = 0, "

        def statement(scope: Scope) -> Sql:
            m, stamp = self.backend.mark, self.backend._stamp(scope.now)
            sql = (
                f"UPDATE {self.backend._t} SET failed_at = NULL, {attempts}run_at = {m}, "
                f"locked_at = NULL, locked_by = NULL, updated_at = {m}"
            )
            return sql, [stamp, stamp]

        return self._change("retry", target, statement, dry_run=dry_run)

    def delete(self, target: Target, *, dry_run: bool = False) -> Change:
        """Delete rows (a JobFilter or ids), never one a live worker holds."""

        def statement(scope: Scope) -> Sql:
            return f"DELETE FROM {self.backend._t}", []

        return self._change("delete", target, statement, dry_run=dry_run)

    def prune(
        self,
        failed_older_than: object,
        *,
        batch: int | None = None,
        max_rows: int | None = None,
        dry_run: bool = False,
    ) -> Change:
        """Delete failed rows whose failed_at is older than ``failed_older_than``
        (seconds, or ``30d``), ``batch`` rows per statement, each its own short
        transaction, so workers keep claiming meanwhile; at most ``max_rows`` rows."""
        jobs = JobFilter(state="failed", older_than=failed_older_than)

        def statement(scope: Scope) -> Sql:
            return f"DELETE FROM {self.backend._t}", []

        return self._change(
            "prune", jobs, statement, dry_run=dry_run, batch=batch, max_rows=max_rows
        )

    def _change(
        self,
        action: str,
        target: Target,
        statement: Callable[[Scope], Sql],
        *,
        dry_run: bool,
        batch: int | None = None,
        max_rows: int | None = None,
    ) -> Change:
        scope = self.scope()
        held: builtins.list[JobRow] = []
        if isinstance(target, JobFilter):
            jobs = target
        else:
            jobs = JobFilter(ids=tuple(target))
            held = self._check_ids(jobs, scope)
        if dry_run:
            rows = list(self.rows(jobs, guarded=True, scope=scope))
            if max_rows is not None:
                rows = rows[:max_rows]
            ids = [row.id for row in rows]
            return Change(
                action=action, dry_run=True, count=len(ids), ids=ids, held=held, rows=rows
            )
        where, params = scope.where(jobs, guarded=True)
        head, head_params = statement(scope)
        count, changed = 0, []
        for ids in self._id_batches(jobs, scope, batch or self.batch_size, max_rows):
            marks = ", ".join([self.backend.mark] * len(ids))
            sql = f"{head} WHERE id IN ({marks}) AND {where}"
            values = [*head_params, *ids, *params]
            count += self.backend._write(functools.partial(self.backend._execute, sql, values))
            changed.extend(ids)
        return Change(action=action, dry_run=False, count=count, ids=changed, held=held)

    def _check_ids(self, jobs: JobFilter, scope: Scope) -> builtins.list[JobRow]:
        """Raise JobNotFound for missing ids; return the rows a live worker holds."""
        rows = {row.id: row for row in self.rows(jobs, scope=scope)}
        missing = sorted(set(jobs.ids or ()) - set(rows))
        if missing:
            raise JobNotFound(missing)
        free = {row.id for row in self.rows(jobs, guarded=True, scope=scope)}
        return [row for job_id, row in sorted(rows.items()) if job_id not in free]

    def _id_batches(
        self, jobs: JobFilter, scope: Scope, size: int, max_rows: int | None
    ) -> Iterator[builtins.list[int]]:
        """Ids of the rows to write, ``size`` at a time (keyset by id)."""
        where, params = scope.where(jobs, guarded=True)
        columns = "id" if jobs.name is None else f"id, {self.backend._select_expression('handler')}"
        m, t = self.backend.mark, self.backend._t
        cursor: int | None = None
        taken = 0
        while max_rows is None or taken < max_rows:
            sql = f"SELECT {columns} FROM {t} WHERE {where}"
            values = list(params)
            if cursor is not None:
                sql += f" AND id > {m}"
                values.append(cursor)
            limit = size if max_rows is None else min(size, max_rows - taken)
            raw = self._read(f"{sql} ORDER BY id LIMIT {int(limit)}", values)
            if not raw:
                return
            cursor = int(raw[-1][0])
            ids = [
                int(r[0])
                for r in raw
                if jobs.name is None
                or fnmatch.fnmatchcase(decode(r[1], self.limits).name, jobs.name)
            ]
            if ids:
                taken += len(ids)
                yield ids
            if len(raw) < limit:
                return

    def enqueue(
        self,
        name: str,
        args: object = None,
        *,
        kind: Kind = "struct",
        queue: str | None = None,
        priority: int = 0,
        run_at: datetime | None = None,
        record_id: object = None,
    ) -> JobRow:
        """Write a row a Ruby or djmw worker runs (see ``djmw.admin.enqueue``); return it."""
        handler = build_handler(
            name, args, kind=kind, queue=queue, priority=priority, record_id=record_id
        )
        job_id = self.backend.enqueue(handler, priority=priority, run_at=run_at, queue=queue)
        return self.get(job_id)

    # -- summaries --------------------------------------------------------------------
    def stats(self, *, by: By = "queue", jobs: JobFilter | None = None) -> Stats:
        """Rows per state per queue, name or state; the oldest ready row (the queue's
        latency); failures in the last hour and day; running rows per worker.

        ``by="name"`` decodes every selected row (the worker's decoder, about 20 to
        80 µs a row); the others are one grouped query.
        """
        if by not in ("queue", "name", "state"):
            msg = f"Jobs.stats: by must be queue, name or state, got {by!r}."
            raise ConfigurationError(msg)
        jobs = jobs or JobFilter()
        scope = self.scope()
        groups: dict[str | None, Group] = {}
        total, workers = Group(key=None), dict[str, int]()
        for key, state, holder, values in self._partials(scope, jobs, by):
            count, retrying, oldest, last_hour, last_day = values
            for group in (groups.setdefault(key, Group(key=key)), total):
                group.add(
                    state,
                    count,
                    retrying=retrying,
                    oldest=oldest,
                    last_hour=last_hour,
                    last_day=last_day,
                )
            if state == "running" and holder is not None:
                workers[holder] = workers.get(holder, 0) + count
        ordered = [groups[key] for key in sorted(groups, key=lambda k: (k is not None, k or ""))]
        if by == "state":
            ordered = [groups[s] for s in STATES if s in groups]
        return Stats(
            by=by,
            now=scope.now,
            groups=ordered,
            total=total,
            workers=dict(sorted(workers.items())),
        )

    def _partials(
        self, scope: Scope, jobs: JobFilter, by: By
    ) -> Iterator[tuple[str | None, State, str | None, tuple[int, int, datetime | None, int, int]]]:
        if by == "name":
            yield from self._name_partials(scope, jobs)
            return
        m, backend = self.backend.mark, self.backend
        # One small integer per row (state, retrying, failure recency) keeps the GROUP BY
        # key and the aggregates cheap: one scan of a million rows, one temporary table.
        retrying = "CASE WHEN attempts > 0 THEN 10 ELSE 0 END"
        recency = f"CASE WHEN failed_at >= {m} THEN 2 WHEN failed_at >= {m} THEN 1 ELSE 0 END"
        hour = backend._compare(scope.now - timedelta(hours=1))
        day = backend._compare(scope.now - timedelta(days=1))
        codes: dict[State, Sql] = {
            state: (f"{_CODES[state]} + {retrying}", []) for state in STATES if state != "failed"
        }
        codes["failed"] = (f"{_CODES['failed']} + {recency}", [hour, day])
        case, case_params = scope.state_case(codes)
        held_by = f"CASE WHEN failed_at IS NULL AND locked_at >= {m} THEN locked_by END"
        where, params = scope.where(jobs)
        sql = f"SELECT queue, {case}, {held_by}, COUNT(*), MIN(run_at) FROM {backend._t} WHERE {where}"
        values = [*case_params, backend._compare(scope.expiry), *params]
        for queue, code, holder, count, oldest in self._read_ranges(
            sql, values, "GROUP BY 1, 2, 3"
        ):
            number = int(code)
            state = _STATE_OF_CODE[number % 10]
            recent = number - _CODES["failed"] if state == "failed" else 0
            n = int(count)
            yield (
                state if by == "state" else queue,
                state,
                holder,
                (
                    n,
                    n if state != "failed" and number >= 10 else 0,
                    backend._time(oldest),
                    n if recent == 2 else 0,
                    n if recent >= 1 else 0,
                ),
            )

    def _name_partials(
        self, scope: Scope, jobs: JobFilter
    ) -> Iterator[tuple[str | None, State, str | None, tuple[int, int, datetime | None, int, int]]]:
        hour, day = scope.now - timedelta(hours=1), scope.now - timedelta(days=1)
        for row in self.rows(jobs, scope=scope):
            job = row.job
            failed = job.failed_at
            yield (
                row.name,
                row.state,
                job.locked_by if row.state == "running" else None,
                (
                    1,
                    int(failed is None and job.attempts > 0),
                    job.run_at,
                    int(failed is not None and failed >= hour),
                    int(failed is not None and failed >= day),
                ),
            )

    def failures(self, jobs: JobFilter | None = None) -> builtins.list[FailureGroup]:
        """Failed and erroring rows grouped by (job name, error class, first line of the
        message), largest group first: what is broken."""
        return builtins.list(self.failure_summary(jobs).groups)

    def failure_summary(
        self, jobs: JobFilter | None = None, *, newest: int | None = None
    ) -> FailureSummary:
        """``failures``, reading at most the ``newest`` broken rows (by id, newest
        first) when given: a bounded read for a dashboard over a big table, which says
        whether it saw every broken row."""
        if newest is not None:
            _positive("failure_summary newest", newest)
        jobs = jobs or JobFilter()
        scope = self.scope()
        backend, m, t = self.backend, self.backend.mark, self.backend._t
        broken = "(failed_at IS NOT NULL OR (attempts > 0 AND last_error IS NOT NULL))"
        where, params = conjunction([scope.where(jobs), (broken, [])])
        error = f"SUBSTR({backend._select_expression('last_error')}, 1, {ERROR_HEAD})"
        handler = backend._select_expression("handler")
        groups: dict[tuple[str, str | None, str], FailureGroup] = {}
        descending = newest is not None
        cursor: int | None = None
        read, complete = 0, True
        while True:
            size = self.batch_size
            if newest is not None:
                if read >= newest:
                    # One more row tells whether older broken rows were left unread.
                    more = self._read(
                        f"SELECT id FROM {t} WHERE {where} AND id < {m} LIMIT 1", [*params, cursor]
                    )
                    complete = not more
                    break
                size = min(size, newest - read)
            keyset, values = "", builtins.list(params)
            if cursor is not None:
                keyset = f" AND id {'<' if descending else '>'} {m}"
                values.append(cursor)
            raw = self._read(
                f"SELECT id, {handler}, {error}, failed_at FROM {t} WHERE {where}{keyset} "
                f"ORDER BY id {'DESC' if descending else 'ASC'} LIMIT {int(size)}",
                values,
            )
            for job_id, handler_value, error_value, failed_at in raw:
                name = decode(handler_value, self.limits).name
                if jobs.name is not None and not fnmatch.fnmatchcase(name, jobs.name):
                    continue
                read += 1
                text = _text(error_value)
                lines = text.split("\n")
                message = lines[0]
                key = (name, error_class(message), message)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = FailureGroup(
                        name=name, error_class=key[1], message=message
                    )
                if failed_at is not None:
                    group.failed += 1
                else:
                    group.erroring += 1
                if int(job_id) > group.newest_id:
                    group.newest_id = int(job_id)
                    group.origin = lines[1] if len(lines) > 1 else None
            if len(raw) < size:
                break
            cursor = int(raw[-1][0])
        ordered = sorted(groups.values(), key=lambda g: (-g.count, -g.newest_id))
        return FailureSummary(groups=ordered, rows=read, complete=complete)

    def timeline(self, *, hours: int = 24, jobs: JobFilter | None = None) -> Timeline:
        """Failures per hour over the last ``hours`` hours (from failed_at) and scheduled
        rows per hour over the next ``hours`` hours (from run_at), in one scan.

        Hours are counted back and forth from now, not aligned to the clock. Only the
        rows in either window are read, in id ranges on parallel connections like
        ``stats``.
        """
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 24 * 31:
            msg = f"Jobs.timeline: hours must be an integer from 1 to 744, got {hours!r}."
            raise ConfigurationError(msg)
        jobs = jobs or JobFilter()
        scope = self.scope()
        m, backend = self.backend.mark, self.backend
        now = scope.now
        start, end = now - timedelta(hours=hours), now + timedelta(hours=hours)
        scheduled, scheduled_params = scope.state("scheduled")
        columns, values = [], builtins.list[object]()
        for i in range(hours):
            low, high = start + timedelta(hours=i), start + timedelta(hours=i + 1)
            columns.append(f"SUM(CASE WHEN failed_at >= {m} AND failed_at < {m} THEN 1 ELSE 0 END)")
            values += [backend._compare(low), backend._compare(high)]
        for i in range(hours):
            low, high = now + timedelta(hours=i), now + timedelta(hours=i + 1)
            columns.append(
                f"SUM(CASE WHEN {scheduled} AND run_at >= {m} AND run_at < {m} THEN 1 ELSE 0 END)"
            )
            values += [*scheduled_params, backend._compare(low), backend._compare(high)]
        window = (
            f"((failed_at >= {m} AND failed_at < {m}) OR "
            f"(failed_at IS NULL AND run_at > {m} AND run_at < {m}))"
        )
        window_params = [backend._compare(start), backend._compare(now)]
        window_params += [backend._compare(now), backend._compare(end)]
        where, params = conjunction([scope.where(jobs), (window, window_params)])
        sql = f"SELECT {', '.join(columns)} FROM {backend._t} WHERE {where}"
        totals = [0] * (2 * hours)
        for row in self._read_ranges(sql, [*values, *params], ""):
            for i, value in enumerate(row):
                totals[i] += int(value or 0)
        return Timeline(now=now, hours=hours, failed=totals[:hours], scheduled=totals[hours:])

    def check(
        self,
        *,
        max_age: float = 300.0,
        queues: Sequence[str | None] | None = None,
        ignore_failed: bool = False,
    ) -> CheckResult:
        """delayed_job's ``jobs:check``: ready rows that waited more than ``max_age``
        seconds past their run_at, and failed rows (unless ``ignore_failed``)."""
        scope = self.scope()
        m = self.backend.mark
        late_filter = JobFilter(state="ready", queues=queues)
        cutoff = self.backend._compare(scope.now - timedelta(seconds=max_age))
        late_sql, late_params = conjunction([scope.where(late_filter), (f"run_at < {m}", [cutoff])])
        late = self._count_where(late_sql, late_params)
        late_rows = self._some(scope, late_sql, late_params, "id") if late else []
        failed, failed_rows = 0, builtins.list[JobRow]()
        if not ignore_failed:
            failed_sql, failed_params = scope.where(JobFilter(state="failed", queues=queues))
            failed = self._count_where(failed_sql, failed_params)
            if failed:
                failed_rows = self._some(scope, failed_sql, failed_params, "id DESC")
        return CheckResult(
            max_age=max_age,
            late=late,
            late_rows=late_rows,
            failed=failed,
            failed_rows=failed_rows,
        )

    def _count_where(self, where: str, params: Sequence[object]) -> int:
        sql = f"SELECT COUNT(*) FROM {self.backend._t} WHERE {where}"
        return sum(int(row[0]) for row in self._read_ranges(sql, params, ""))

    def _some(
        self, scope: Scope, where: str, params: Sequence[object], order: str, limit: int = 20
    ) -> builtins.list[JobRow]:
        case, case_params = scope.state_case()
        sql = (
            f"SELECT {self.backend.select_columns}, {case} FROM {self.backend._t} "
            f"WHERE {where} ORDER BY {order} LIMIT {int(limit)}"
        )
        return [self._row(raw) for raw in self._read(sql, [*case_params, *params])]


#: Tables spanning fewer ids than this are read in one query by ``stats``.
_SPLIT_ABOVE = 200_000
_CODES: dict[State, int] = {"ready": 0, "scheduled": 1, "running": 2, "stuck": 3, "failed": 4}
_STATE_OF_CODE: dict[int, State] = {
    **{code: state for state, code in _CODES.items()},
    5: "failed",
    6: "failed",
}


def as_state(value: object) -> State:
    """A state name as the database returns it (text or bytes)."""
    name = value.decode() if isinstance(value, bytes) else str(value)
    if name not in STATES:  # pragma: no cover - the CASE yields only these
        msg = f"unexpected job state {name!r}"
        raise ValueError(msg)
    return name


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)
