"""SQLite backend: the embedded default, through the standard library's sqlite3."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from djmw._clock import Clock, utc_now
from djmw.backends._sql import ORDER, NewJob, ReserveRequest, checked_table
from djmw.backends._workers import check_registry_columns, registry_table_for
from djmw.backends.base import (
    Finish,
    SqlBackend,
    check_columns,
    combined_write_failed,
    locked,
    lost_lock,
)
from djmw.errors import BackendError, ConfigurationError
from djmw.job import Job

T = TypeVar("T")

#: delayed_job_active_record's migration, as ActiveRecord 6.1 renders it for SQLite.
SCHEMA = """\
CREATE TABLE IF NOT EXISTS "{table}" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL,
  "priority" integer DEFAULT 0 NOT NULL, "attempts" integer DEFAULT 0 NOT NULL,
  "handler" text NOT NULL, "last_error" text, "run_at" datetime, "locked_at" datetime,
  "failed_at" datetime, "locked_by" varchar, "queue" varchar,
  "created_at" datetime(6), "updated_at" datetime(6));
CREATE INDEX IF NOT EXISTS "{table}_priority" ON "{table}" ("priority", "run_at");
"""

#: djmw's worker registry (djmw.registry); Ruby never reads it.
REGISTRY_SCHEMA = """\
CREATE TABLE IF NOT EXISTS "{table}" ("name" varchar PRIMARY KEY NOT NULL,
  "host" varchar NOT NULL, "pid" integer NOT NULL, "queues" text,
  "started_at" datetime(6) NOT NULL, "heartbeat_at" datetime(6) NOT NULL, "job_id" integer);
"""


def format_time(value: datetime) -> str:
    """Format a naive datetime as ActiveRecord writes it to SQLite (fraction only if any)."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


class SqliteBackend(SqlBackend):
    """One SQLite connection; each claim is one ``BEGIN IMMEDIATE`` writer transaction.

    Args:
        path: the database file.
        table: the delayed_jobs table name.
        clock: naive UTC by default.
        busy_timeout: seconds to wait for another writer's lock.
        create: create the file if it is missing (``djmw schema``, the demo); False makes
            a missing file a ConfigurationError (workers: a mistyped path must not leave
            an empty database behind).

    Note:
        SQLite allows one writer at a time; the file is switched to WAL mode so that
        readers and the single writer do not block each other. Times are stored as text
        (``YYYY-MM-DD HH:MM:SS[.ffffff]``), as ActiveRecord stores them. A time another
        tool wrote with an ISO ``T`` (``2026-11-28T06:26:34``) is compared as the same
        time; a zone suffix (``Z``, ``+02:00``) is not interpreted.
    """

    mark = "?"
    quote = '"'
    OPTIONS = frozenset({"busy_timeout"})

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = "delayed_jobs",
        clock: Clock = utc_now,
        busy_timeout: float = 30.0,
        create: bool = True,
    ) -> None:
        super().__init__(table=table, clock=clock)
        self.path = str(path)
        self._locks: dict[str, int] = {}
        if not create and self.path != ":memory:" and not os.path.exists(self.path):
            where = "" if os.path.isabs(self.path) else f" (in {os.getcwd()!r})"
            msg = (
                f"the SQLite database {self.path!r} does not exist{where}; check the path, "
                f"or create it with `djmw schema --database sqlite:///{self.path}`."
            )
            raise ConfigurationError(msg)
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            msg = f"cannot open the SQLite database {self.path!r}: {exc}"
            raise ConfigurationError(msg) from exc

    def _select_expression(self, column: str) -> str:
        # Raw bytes: a handler that is not valid UTF-8 must fail its job, not the reserve.
        return f"CAST({column} AS BLOB)" if column in ("handler", "last_error") else column

    def _stamp(self, value: datetime) -> object:
        return format_time(value)

    def _time_column(self, column: str) -> str:
        # SQLite compares times as text: a row written as 2026-11-28T06:26:34 (ISO 8601,
        # by hand or another tool) must compare as the same time as ActiveRecord's
        # 2026-11-28 06:26:34. The order (ORDER BY run_at, on the index) stays textual.
        return f"replace({column}, 'T', ' ')"

    def _time(self, value: object) -> datetime | None:
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                return None
        return None

    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _insert(self, sql: str, params: Sequence[object]) -> int:
        cursor = self._conn.execute(sql, params)
        return int(cursor.lastrowid or 0)

    def _write(self, action: Callable[[], T]) -> T:
        for attempt in range(20):
            try:
                return action()
            except sqlite3.Error as exc:  # retried: "database is locked" past busy_timeout
                transient = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                if not transient or attempt == 19:
                    msg = f"SQLite write failed: {exc}"
                    raise BackendError(msg) from exc
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def reserve(self, request: ReserveRequest) -> Job | None:
        """Find and lock the next eligible job in one writer transaction."""
        where, params = self.where(request)
        select = f"SELECT {self.select_columns} FROM {self._t} WHERE {where} {ORDER} LIMIT 1"
        # The UPDATE repeats the whole predicate on the row itself (docs/contract.md, item 6).
        lock = f"UPDATE {self._t} SET locked_at = ?, locked_by = ? WHERE id = ? AND {where}"
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(select, params).fetchone()
                if row is None:
                    self._conn.execute("COMMIT")
                    return None
                job = self.to_job(row, request.max_run_time)
                stamp = self._stamp(request.now)
                self._conn.execute(lock, [stamp, request.worker_name, job.id, *params])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            msg = f"SQLite reserve failed: {exc}"
            raise BackendError(msg) from exc
        locked_at = datetime.fromisoformat(format_time(request.now))
        return locked(job, request.worker_name, locked_at)

    def reserve_many(
        self, request: ReserveRequest, limit: int, *, finish: Finish | None = None
    ) -> list[Job]:
        """Write ``finish`` and claim up to ``limit`` jobs in one writer transaction."""
        where, params = self.where(request)
        select = f"SELECT {self.select_columns} FROM {self._t} WHERE {where} {ORDER} LIMIT ?"
        stamp = self._stamp(request.now)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if finish is not None:
                    sql, values = self.outcome_sql(*finish)
                    if self._conn.execute(sql, values).rowcount < 1:
                        lost_lock(finish[0])
                rows = self._conn.execute(select, [*params, limit]).fetchall()
                jobs = [self.to_job(row, request.max_run_time) for row in rows]
                if jobs:
                    marks = ", ".join("?" * len(jobs))
                    # The UPDATE repeats the whole predicate (docs/contract.md, item 6).
                    lock = (
                        f"UPDATE {self._t} SET locked_at = ?, locked_by = ? "
                        f"WHERE id IN ({marks}) AND {where}"
                    )
                    ids = [job.id for job in jobs]
                    self._conn.execute(lock, [stamp, request.worker_name, *ids, *params])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if finish is None:
                msg = f"SQLite reserve failed: {exc}"
                raise BackendError(msg) from exc
            combined_write_failed(exc)
            self._finish(finish)  # on its own, with the write retries
            return self.reserve_many(request, limit)
        locked_at = datetime.fromisoformat(format_time(request.now))
        return [locked(job, request.worker_name, locked_at) for job in jobs]

    def start_next(self, job: Job, *, finish: Finish | None = None) -> Job | None:
        """Write ``finish`` and refresh ``job``'s locked_at in one transaction."""
        now = self.clock()
        touch = self.touch_sql(job, now)
        if finish is None or touch is None:
            return super().start_next(job, finish=finish)
        finish_sql, finish_values = self.outcome_sql(*finish)
        touch_sql, touch_values = touch

        def both() -> int:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._conn.execute(finish_sql, finish_values).rowcount < 1:
                    lost_lock(finish[0])
                touched = self._conn.execute(touch_sql, touch_values).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return int(touched)

        try:
            touched = self._write(both)
        except BackendError:
            return super().start_next(job, finish=finish)
        return self._started(job, now) if touched > 0 else None

    def enqueue_many(self, rows: Sequence[NewJob]) -> list[int]:
        """Insert ``rows`` with one INSERT ... RETURNING id (SQLite >= 3.35); older
        SQLite inserts them one by one in one transaction."""
        if not rows:
            return []
        try:
            if sqlite3.sqlite_version_info >= (3, 35):
                sql, params = self.insert_sql(rows)
                returned = self._conn.execute(f"{sql} RETURNING id", params).fetchall()
                return [int(row[0]) for row in returned]
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                ids = [self._insert(*self.insert_sql([row])) for row in rows]
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            msg = f"SQLite enqueue failed: {exc}"
            raise BackendError(msg) from exc
        return ids

    def create_schema(self) -> None:
        """Create the delayed_jobs table and index as delayed_job_active_record does, and
        the worker registry table that goes with it; tables that exist are left alone."""
        try:
            self._conn.executescript(SCHEMA.format(table=self.table))
        except sqlite3.Error as exc:
            msg = f"cannot create the table {self.table!r} in {self.path!r}: {exc}"
            raise BackendError(msg) from exc
        self.create_registry(registry_table_for(self.table))

    def create_registry(self, table: str) -> None:
        """Create the worker registry table ``table`` if it is missing."""
        self._conn.executescript(REGISTRY_SCHEMA.format(table=checked_table(table)))

    def check_registry(self, table: str) -> None:
        """Raise ConfigurationError saying how to create ``table`` if it is missing or wrong."""
        rows = self._conn.execute(f"PRAGMA table_info({self._registry(table)})").fetchall()
        check_registry_columns(
            table, {row[1] for row in rows}, "djmw schema --database sqlite:///..."
        )

    def check_schema(self) -> None:
        """Raise ConfigurationError naming the problem if the table is missing or incomplete."""
        rows = self._conn.execute(f'PRAGMA table_info("{self.table}")').fetchall()
        check_columns(self.table, {row[1] for row in rows}, "djmw schema --database sqlite:///...")

    def hold_lock(self, name: str) -> bool:
        """Hold an exclusive ``flock`` on ``<database file>-djmw-<name>.lock``.

        SQLite is one host's database, so a file lock beside it is database-wide. The
        lock lives as long as this backend (``close`` releases it); an in-memory
        database has no other connection, so it always holds.
        """
        if name in self._locks:
            return True
        if self.path in ("", ":memory:") or self.path.startswith("file::memory:"):
            return True
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{self.table}-{name}")
        fd = os.open(f"{self.path}-djmw-{safe}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._locks[name] = fd
        return True

    def close(self) -> None:
        """Close the connection and release the locks ``hold_lock`` took."""
        for fd in self._locks.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._locks.clear()
        self._conn.close()
