"""MariaDB/MySQL backend through PyMySQL: the primary production backend."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import attrs
import pymysql
import tenacity
from pymysql.connections import Connection
from pymysql.constants import CLIENT

from djmw._clock import Clock, utc_now
from djmw.backends._sql import (
    ORDER,
    NewJob,
    ReserveRequest,
    checked_table,
    handler_marker,
    names_like,
)
from djmw.backends._workers import check_registry_columns, registry_table_for
from djmw.backends.base import (
    Finish,
    SqlBackend,
    check_columns,
    combined_write_failed,
    locked,
    lost_lock,
)
from djmw.backends.url import DatabaseUrl
from djmw.errors import BackendError, ConfigurationError
from djmw.job import Job
from djmw.outcome import Outcome

T = TypeVar("T")

logger = logging.getLogger("djmw.backend")

#: delayed_job_active_record's migration as ActiveRecord 6.1 renders it for MySQL/MariaDB.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS `{table}` (`id` bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "`priority` int DEFAULT 0 NOT NULL, `attempts` int DEFAULT 0 NOT NULL, "
    "`handler` text NOT NULL, `last_error` text, `run_at` datetime, `locked_at` datetime, "
    "`failed_at` datetime, `locked_by` varchar(255), `queue` varchar(255), "
    "`created_at` datetime(6), `updated_at` datetime(6), "
    "INDEX `delayed_jobs_priority` (`priority`, `run_at`))"
)

#: djmw's worker registry (djmw.registry); Ruby never reads it. Names compare exactly.
REGISTRY_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS `{table}` (`name` varchar(255) NOT NULL PRIMARY KEY, "
    "`host` varchar(255) NOT NULL, `pid` int NOT NULL, `queues` text, "
    "`started_at` datetime(6) NOT NULL, `heartbeat_at` datetime(6) NOT NULL, `job_id` bigint) "
    "DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"
)

#: The optional job-name key (``djmw schema --name-index``, MariaDB only): a virtual column
#: holding what every handler of a job name contains (``handler_marker``): the class of
#: a struct or object job, the ``job_class`` of an ActiveJob job, the method of a delayed
#: call. It is NULL whenever the handler's shape is not recognised exactly; the claim then
#: falls back to the handler text for those rows, so a wrong shape costs speed, never a job.
NAME_KEY_COLUMN = "djmw_name_key"
_CLASS = r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*"
#: (?-i): Ruby names are case-sensitive whatever the column's collation.
_PERFORMABLE_HEAD = (
    r"(?-i)^--- !ruby/(?:struct|object|marshalable):Delayed::Performable(?:Method|Mailer) *\n"
)
_METHOD_NAME = r"(?-i)(?m)^method_name: :?\K[A-Za-z_][A-Za-z0-9_]*[!?=]?$"
_WRAPPER_HEAD = (
    r"(?-i)^--- !ruby/(?:object|marshalable):"
    r"(?:ActiveJob::QueueAdapters::DelayedJobAdapter|Delayed::ActiveJobAdapter)::JobWrapper *\n"
)
_JOB_CLASS = rf"(?-i)(?m)^  job_class: \K{_CLASS}$"
_CLASS_TAG = (
    rf"(?-i)^--- !ruby/(?:struct|object|data|marshalable):\K{_CLASS}(?=(?: \{{\}})? *(?:\n|\z))"
)


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


_NAME_KEY = (
    f"NULLIF(CASE WHEN handler REGEXP {_literal(_PERFORMABLE_HEAD)} "
    f"THEN REGEXP_SUBSTR(handler, {_literal(_METHOD_NAME)}) "
    f"WHEN handler REGEXP {_literal(_WRAPPER_HEAD)} "
    f"THEN REGEXP_SUBSTR(handler, {_literal(_JOB_CLASS)}) "
    f"ELSE REGEXP_SUBSTR(handler, {_literal(_CLASS_TAG)}) END, '')"
)


def name_key_schema(table: str) -> str:
    """Return the ALTER TABLE that adds the job-name key column and its index (idempotent)."""
    return (
        f"ALTER TABLE `{table}` ADD COLUMN IF NOT EXISTS `{NAME_KEY_COLUMN}` varchar(191) "
        f"AS ({_NAME_KEY}) VIRTUAL, ADD INDEX IF NOT EXISTS `{name_key_index(table)}` "
        f"(`{NAME_KEY_COLUMN}`, `priority`, `run_at`)"
    )


def name_key_index(table: str) -> str:
    """Return the name of the job-name key's index on ``table``."""
    return f"{table}_{NAME_KEY_COLUMN}"[:64]


_LOCK_ERRORS = {1205, 1213}  # lock wait timeout, deadlock: retry on the same connection
_CONNECTION_ERRORS = {1053, 1927, 2003, 2006, 2013, 2055, 4031}  # reconnect, then retry
_BAD_STRING = 1366  # a last_error the column's charset cannot hold

#: The claimed row as one JSON column: one field descriptor for PyMySQL to parse instead
#: of twelve (a third of the client's time per job), and text already valid UTF-8.
_JSON_ROW = (
    "JSON_ARRAY(id, priority, attempts, CONVERT(handler USING utf8mb4), "
    "CONVERT(last_error USING utf8mb4), run_at, locked_at, locked_by, failed_at, queue, "
    "created_at, updated_at)"
)

# Statement positions in the multi-statement transactions: START TRANSACTION, then (the
# finishing write,) SET @djmw_id = (SELECT ...), UPDATE, SELECT <the claimed row>, COMMIT.
_FINISH = 1
_CLAIMED_ROW = -2

ReserveSql = Literal["auto", "skip_locked", "update_limit"]


def _counts(results: list[tuple[int, Any]]) -> list[int]:
    return [count for count, _ in results]


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.InterfaceError):
        return 2006
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def is_transient(exc: BaseException | None) -> bool:
    """True for errors worth retrying: deadlocks, lock waits, lost connections.

    A BackendError from a failed reconnect is transient when its cause is.
    """
    if isinstance(exc, BackendError):
        return is_transient(exc.__cause__)
    if exc is None:
        return False
    code = _code(exc)
    return code in _LOCK_ERRORS or code in _CONNECTION_ERRORS


def supports_skip_locked(version: str) -> bool:
    """True for MariaDB >= 10.6 and MySQL >= 8.0.1, which have ``FOR UPDATE SKIP LOCKED``."""
    numbers = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if numbers is None:
        return False
    major, minor, patch = (int(n) for n in numbers.groups())
    if "mariadb" in version.lower():
        return (major, minor) >= (10, 6)
    return (major, minor, patch) >= (8, 0, 1)


def supports_insert_returning(version: str) -> bool:
    """True for MariaDB >= 10.5, which has ``INSERT ... RETURNING`` (MySQL has none)."""
    numbers = re.match(r"(\d+)\.(\d+)", version)
    if numbers is None or "mariadb" not in version.lower():
        return False
    return (int(numbers.group(1)), int(numbers.group(2))) >= (10, 5)


class MysqlBackend(SqlBackend):
    """One PyMySQL connection to MariaDB/MySQL.

    Reserve: on MariaDB >= 10.6 and MySQL 8, ``SELECT ... FOR UPDATE SKIP LOCKED`` then
    ``UPDATE ... WHERE id = ? AND <predicate>`` in one short transaction; otherwise
    delayed_job_active_record's ``UPDATE ... ORDER BY priority, run_at LIMIT 1`` and a
    re-read by ``(locked_at, locked_by, failed_at IS NULL)``.

    Args:
        url: where to connect (the password is never logged).
        table: the delayed_jobs table name.
        clock: naive UTC by default.
        reserve_sql: ``auto`` (pick by server version), ``skip_locked`` or ``update_limit``.
        write_retry_seconds: how long the final write of a job's outcome is retried on
            deadlocks and lost connections before giving up.
        connect_attempts: connection tries (with exponential backoff) per connect.

    Note:
        Sessions run READ COMMITTED (fewer gap locks, fewer deadlocks) with
        ``time_zone = '+00:00'``; djmw never reads the server's clock, so the server's
        time zone does not matter. Whole-second DATETIME columns get truncated values,
        as ActiveRecord writes them.
    """

    mark = "%s"
    quote = "`"
    OPTIONS = frozenset({"reserve_sql", "write_retry_seconds", "connect_attempts"})

    def __init__(
        self,
        url: DatabaseUrl,
        *,
        table: str = "delayed_jobs",
        clock: Clock = utc_now,
        reserve_sql: ReserveSql = "auto",
        write_retry_seconds: float = 120.0,
        connect_attempts: int = 3,
    ) -> None:
        super().__init__(table=table, clock=clock)
        if reserve_sql not in ("auto", "skip_locked", "update_limit"):
            msg = f"reserve_sql must be auto, skip_locked or update_limit, got {reserve_sql!r}."
            raise ConfigurationError(msg)
        self.url = url
        self.reserve_sql = reserve_sql
        self.write_retry_seconds = write_retry_seconds
        self.connect_attempts = connect_attempts
        self.whole_seconds = True
        self.stats = {"deadlocks_retried": 0, "reconnects": 0}
        self._conn: Connection[Any] | None = None
        self._skip_locked = False
        #: True when the table has the job-name key and its index (found by check_schema).
        self.name_key = False
        self.server_version = ""
        self._returning = False
        self._consecutive_ids: bool | None = None
        self._connect()

    # -- connection -------------------------------------------------------------------
    def _open(self) -> Connection[Any]:
        conn = pymysql.connect(
            host=self.url.host or "127.0.0.1",
            port=self.url.port or 3306,
            user=self.url.user or "root",
            password=self.url.password or "",
            database=self.url.database,
            unix_socket=self.url.socket,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=5,
            # The claim is one multi-statement round trip; every value is still a parameter.
            client_flag=CLIENT.MULTI_STATEMENTS,
        )
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.execute("SET time_zone = '+00:00'")
            cursor.execute("SELECT VERSION()")
            row = cursor.fetchone()
        version = str(row[0]) if row else ""
        self.server_version = version
        self._skip_locked = self.reserve_sql == "skip_locked" or (
            self.reserve_sql == "auto" and supports_skip_locked(version)
        )
        self._returning = supports_insert_returning(version)
        return conn

    def _connect(self) -> Connection[Any]:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.connect_attempts),
            wait=tenacity.wait_exponential(multiplier=0.2, max=2),
            retry=tenacity.retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            self._conn = retrying(self._open)
        except pymysql.err.MySQLError as exc:
            reason = exc.args[-1] if exc.args else exc
            msg = (
                f"cannot connect to {self.url.redacted}: {reason}; check that the server is "
                "running and reachable, and the user, password and database in the URL."
            )
            raise BackendError(msg) from exc
        return self._conn

    @property
    def connection(self) -> Connection[Any]:
        """The live connection, reconnecting if the last one was lost."""
        if self._conn is None:
            self.stats["reconnects"] += 1
            conn = self._connect()
            # The loss itself may have gone unseen (a session ended by a server restart
            # between two statements): say that the connection was replaced.
            logger.warning("Reconnected to %s after a lost connection", self.url.redacted)
            return conn
        return self._conn

    def _lost(self) -> None:
        if self._conn is not None:
            # It is already broken; closing is a courtesy.
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Close the connection."""
        self._lost()

    # -- statements -------------------------------------------------------------------
    def _stamp(self, value: datetime) -> object:
        return value.replace(microsecond=0) if self.whole_seconds else value

    def _compare(self, value: datetime) -> object:
        return value

    def _time(self, value: object) -> datetime | None:
        if isinstance(value, str):  # from JSON_ARRAY
            return datetime.fromisoformat(value)
        return value if isinstance(value, datetime) else None

    def _select_expression(self, column: str) -> str:
        if column in ("handler", "last_error"):
            # Raw bytes: invalid text must fail its job, never the reserve.
            return f"CAST(CONVERT({column} USING utf8mb4) AS BINARY)"
        return column

    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        try:
            with self.connection.cursor() as cursor:
                return int(cursor.execute(sql, tuple(params)))
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _CONNECTION_ERRORS:
                self._lost()
            raise

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql, tuple(params))
                return list(cursor.fetchall())
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _CONNECTION_ERRORS:
                self._lost()
            raise

    def _insert(self, sql: str, params: Sequence[object]) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, tuple(params))
            return int(cursor.lastrowid)

    def _write(self, action: Callable[[], T]) -> T:
        # The first try runs bare: building the tenacity machinery for every write would
        # cost a fifth of a prefetching worker's CPU, and nearly every write lands at once.
        try:
            return action()
        except (pymysql.err.MySQLError, BackendError) as exc:
            # A BackendError here is a failed reconnect: transient when its cause is.
            if not is_transient(exc):
                if isinstance(exc, BackendError):
                    raise
                msg = f"MySQL write failed: {exc}"
                raise BackendError(msg) from exc
            self._retrying_write(exc, 1)
        return self._retry_write(action)

    def _retrying_write(self, exc: BaseException | None, tries: int) -> None:
        if _code(exc) in _LOCK_ERRORS if exc else False:
            self.stats["deadlocks_retried"] += 1
        logger.warning("Retrying a write after %s (try %d)", exc, tries)

    def _retry_write(self, action: Callable[[], T]) -> T:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self._retrying_write(exc, state.attempt_number + 1)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self.write_retry_seconds),
            wait=tenacity.wait_exponential(multiplier=0.05, max=2) + tenacity.wait_random(0, 0.05),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        time.sleep(0.05 + random.uniform(0, 0.05))  # noqa: S311 - jitter, not secrecy
        try:
            return retrying(action)
        except pymysql.err.MySQLError as exc:
            msg = f"MySQL write failed: {exc}"
            raise BackendError(msg) from exc

    def apply(self, job: Job, outcome: Outcome) -> bool:
        """Record the outcome; a last_error the column charset rejects is written escaped."""
        try:
            return super().apply(job, outcome)
        except BackendError as exc:
            if _code(exc.__cause__ or exc) != _BAD_STRING:
                raise
        # Only last_error is escaped: the key (locked_by) must match the row as it is.
        sql, params = self.outcome_sql(job, outcome, ascii_error=True)
        return self._write(lambda: self._execute(sql, params)) > 0

    # -- reserve ----------------------------------------------------------------------
    def reserve(self, request: ReserveRequest) -> Job | None:
        """Lock and return the next eligible job, or None; BackendError on failure."""
        try:
            if self._skip_locked:
                return self._reserve_skip_locked(request)
            return self._reserve_update_limit(request)
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _CONNECTION_ERRORS:
                self._lost()
            msg = f"reserve failed: {exc.args[-1] if exc.args else exc}"
            raise BackendError(msg) from exc

    def _claim(self, request: ReserveRequest) -> tuple[str, tuple[object, ...]]:
        # Find, lock and read the next row; the UPDATE repeats the whole predicate on the
        # row itself (docs/contract.md, item 6). Runs inside a transaction the caller opens.
        t, name = self._t, request.worker_name
        if request.names is not None and self.name_key:
            find, find_params = self._find_by_name_key(request)
            # The names were matched by the find; the lock repeats the ready predicate.
            where, params = self.where(attrs.evolve(request, names=None))
        else:
            where, params = self.where(request)
            # SET, unlike SELECT ... INTO, assigns NULL when no row is found.
            find = (
                f"SET @djmw_id = (SELECT id FROM {t} WHERE {where} {ORDER} LIMIT 1 "
                "FOR UPDATE SKIP LOCKED)"
            )
            find_params = params
        sql = (
            f"{find}; "
            f"UPDATE {t} SET locked_at = %s, locked_by = %s WHERE id = @djmw_id AND {where}; "
            f"SELECT {_JSON_ROW} FROM {t} WHERE id = @djmw_id AND locked_by = %s; "
        )
        return sql, (*find_params, self._stamp(request.now), name, *params, name)

    def _find_by_name_key(self, request: ReserveRequest) -> tuple[str, list[object]]:
        """The class-aware find through the job-name key index (``djmw schema --name-index``).

        One head per name key, each the first ready row of that key in the index's
        ``(key, priority, run_at)`` order, plus the first ready row with no key whose
        handler text mentions a name; the best head wins. Each head reads one index
        entry (or a few, past locked rows), however many other jobs wait in the table.
        """
        t, ready = self._t, attrs.evolve(request, names=None)
        where, params = self.where(ready)
        names = request.names or ()
        index = f"FORCE INDEX (`{name_key_index(self.table)}`)"

        def head(key_filter: str) -> str:
            return (
                f"(SELECT id, priority, run_at FROM {t} {index} WHERE {key_filter} AND {where} "
                f"{ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED)"
            )

        heads: list[str] = []
        values: list[object] = []
        for key in sorted({handler_marker(name) for name in names}):
            heads.append(head(f"`{NAME_KEY_COLUMN}` = %s"))
            values.extend([key, *params])
        likes, like_params = names_like(names, self.mark)
        heads.append(head(f"`{NAME_KEY_COLUMN}` IS NULL AND {likes}"))
        values.extend([*like_params, *params])
        # A scalar subquery cannot hold these locking heads, and SELECT ... INTO keeps the
        # variable's old value when no row is found: reset it first.
        find = (
            "SET @djmw_id = NULL; SELECT id INTO @djmw_id "
            f"FROM ({' UNION ALL '.join(heads)}) AS heads {ORDER} LIMIT 1"
        )
        return find, values

    def _multi(
        self, sql: str, values: tuple[object, ...], *, all_rows: bool = False
    ) -> list[tuple[int, Any]]:
        """Run a multi-statement transaction; return (affected rows, first row) per
        statement, or (affected rows, every row) with ``all_rows``."""
        conn = self.connection
        results: list[tuple[int, Any]] = []
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, values)
                while True:
                    row: Any = None
                    if cursor.description is not None:
                        row = cursor.fetchall() if all_rows else cursor.fetchone()
                    results.append((cursor.rowcount, row))
                    if not cursor.nextset():
                        break
        except BaseException:
            # The original error is the one to report; never leave the transaction open.
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        return results

    def _reserve_skip_locked(self, request: ReserveRequest) -> Job | None:
        # One round trip: find, lock and read the row in one short transaction.
        claim, values = self._claim(request)
        results = self._multi(f"START TRANSACTION; {claim}COMMIT", values)
        row = results[_CLAIMED_ROW][1]
        return self.to_job(json.loads(row[0]), request.max_run_time) if row else None

    def finish_and_reserve(self, job: Job, outcome: Outcome, request: ReserveRequest) -> Job | None:
        """Write ``job``'s outcome and claim the next job in one transaction.

        One round trip and one commit instead of two each. If that transaction fails, it
        rolls back whole; the outcome is then written on its own, with the usual retries
        (OutcomeNotRecorded if even that fails), and the claim is tried again.
        """
        if not self._skip_locked:
            return super().finish_and_reserve(job, outcome, request)
        finish, finish_values = self.outcome_sql(job, outcome)
        claim, values = self._claim(request)
        sql = f"START TRANSACTION; {finish}; {claim}COMMIT"
        try:
            results = self._multi(sql, (*finish_values, *values))
        except Exception as exc:  # rolled back: nothing of it happened
            if _code(exc) in _CONNECTION_ERRORS:
                self._lost()
            combined_write_failed(exc)
            return super().finish_and_reserve(job, outcome, request)
        if results[_FINISH][0] < 1:
            lost_lock(job)
        row = results[_CLAIMED_ROW][1]
        return self.to_job(json.loads(row[0]), request.max_run_time) if row else None

    # -- batch claims (prefetch) ---------------------------------------------------------
    def reserve_many(
        self, request: ReserveRequest, limit: int, *, finish: Finish | None = None
    ) -> list[Job]:
        """Claim up to ``limit`` jobs in one transaction of two round trips.

        First ``START TRANSACTION``, ``finish``'s write, and ``SELECT <rows> ... ORDER BY
        priority, run_at LIMIT <limit> FOR UPDATE SKIP LOCKED``; then one ``UPDATE ...
        WHERE id IN (<those ids>) AND <predicate>`` that sets locked_by and locked_at on
        each, and ``COMMIT``. If the transaction fails it rolls back whole; ``finish`` is
        then written on its own (OutcomeNotRecorded if even that fails) and the claim is
        tried once more. Servers without SKIP LOCKED claim the rows one by one.
        """
        if not self._skip_locked:
            return super().reserve_many(request, limit, finish=finish)
        try:
            return self._claim_many(request, limit, finish)
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _CONNECTION_ERRORS:
                self._lost()
            if finish is None:
                msg = f"reserve failed: {exc.args[-1] if exc.args else exc}"
                raise BackendError(msg) from exc
            combined_write_failed(exc)
        self._finish(finish)
        return self.reserve_many(request, limit)

    def _claim_many(self, request: ReserveRequest, limit: int, finish: Finish | None) -> list[Job]:
        where, params = self.where(request)
        t, name = self._t, request.worker_name
        select = (
            f"SELECT {_JSON_ROW} FROM {t} WHERE {where} {ORDER} LIMIT {int(limit)} "
            "FOR UPDATE SKIP LOCKED"
        )
        sql, values = f"START TRANSACTION; {select}", tuple(params)
        if finish is not None:
            finish_sql, finish_values = self.outcome_sql(*finish)
            sql = f"START TRANSACTION; {finish_sql}; {select}"
            values = (*finish_values, *values)
        results = self._multi(sql, values, all_rows=True)
        if finish is not None and results[1][0] < 1:
            lost_lock(finish[0])
        rows = [json.loads(row[0]) for row in results[-1][1]]
        if not rows:
            self._multi("COMMIT", ())
            return []
        ids = [int(row[0]) for row in rows]
        stamp = self._stamp(request.now)
        marks = ", ".join(["%s"] * len(ids))
        update = (
            f"UPDATE {t} SET locked_at = %s, locked_by = %s WHERE id IN ({marks}) AND {where}; "
            "COMMIT"
        )
        updated = self._multi(update, (stamp, name, *ids, *params))[0][0]
        if updated != len(ids):  # pragma: no cover - the rows were locked FOR UPDATE
            held = self._query(
                f"SELECT id FROM {t} WHERE id IN ({marks}) AND locked_by = %s AND locked_at = %s",
                [*ids, name, stamp],
            )
            mine = {int(row[0]) for row in held}
            rows = [row for row in rows if int(row[0]) in mine]
        locked_at = stamp if isinstance(stamp, datetime) else request.now
        return [locked(self.to_job(row, request.max_run_time), name, locked_at) for row in rows]

    def start_next(self, job: Job, *, finish: Finish | None = None) -> Job | None:
        """Write ``finish`` and refresh ``job``'s locked_at in one round trip.

        Whole-second columns make most refreshes no-ops (the job starts in the second
        it was claimed): then only ``finish`` is written. Otherwise both statements run
        in one short transaction, retried on deadlocks and lost connections.
        """
        now = self.clock()
        touch = self.touch_sql(job, now)
        if finish is None or touch is None or not self._skip_locked:
            return super().start_next(job, finish=finish)
        finish_sql, finish_values = self.outcome_sql(*finish)
        touch_sql, touch_values = touch
        sql = f"START TRANSACTION; {finish_sql}; {touch_sql}; COMMIT"
        values = (*finish_values, *touch_values)
        try:
            results = self._write(lambda: self._multi_counts(sql, values))
        except BackendError as exc:  # e.g. a last_error the column's charset rejects
            combined_write_failed(exc)
            return super().start_next(job, finish=finish)
        if results[1] < 1:
            lost_lock(finish[0])
        return self._started(job, now) if results[2] > 0 else None

    def _multi_counts(self, sql: str, values: tuple[object, ...]) -> list[int]:
        try:
            return _counts(self._multi(sql, values))
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _CONNECTION_ERRORS:
                self._lost()  # the retry reconnects
            raise

    # -- bulk enqueue ---------------------------------------------------------------------
    def enqueue_many(self, rows: Sequence[NewJob]) -> list[int]:
        """Insert ``rows`` with one INSERT; return their ids.

        MariaDB >= 10.5 returns the ids (``INSERT ... RETURNING id``). Other servers
        number the rows of one INSERT consecutively from ``LAST_INSERT_ID()`` when
        ``innodb_autoinc_lock_mode`` is 0 or 1 (MariaDB's default); with 2 (MySQL 8's
        default) the ids of one statement may interleave with other inserts, so the rows
        are inserted one by one in a single transaction instead.
        """
        if not rows:
            return []
        sql, params = self.insert_sql(rows)
        try:
            if self._returning:
                return [int(row[0]) for row in self._query(f"{sql} RETURNING id", params)]
            if self._consecutive_ids is None:
                mode = self._query("SELECT @@innodb_autoinc_lock_mode")[0][0]
                self._consecutive_ids = int(mode) < 2
            if self._consecutive_ids:
                with self.connection.cursor() as cursor:
                    cursor.execute(sql, tuple(params))
                    first = int(cursor.lastrowid)
                return list(range(first, first + len(rows)))
            return self._insert_one_by_one(rows)
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _CONNECTION_ERRORS:
                self._lost()
            msg = f"enqueue failed: {exc.args[-1] if exc.args else exc}"
            raise BackendError(msg) from exc

    def _insert_one_by_one(self, rows: Sequence[NewJob]) -> list[int]:
        conn = self.connection
        ids = []
        conn.begin()
        try:
            for row in rows:
                sql, params = self.insert_sql([row])
                ids.append(self._insert(sql, params))
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        return ids

    def _reserve_update_limit(self, request: ReserveRequest) -> Job | None:
        where, params = self.where(request)
        stamp = self._stamp(request.now)
        sql = f"UPDATE {self._t} SET locked_at = %s, locked_by = %s WHERE {where} {ORDER} LIMIT 1"
        if self._execute(sql, [stamp, request.worker_name, *params]) == 0:
            return None
        # Rows the request excludes may hold the same stamp (a batch claimed row by row).
        excluded = sorted(request.exclude_ids)
        skip = f"AND id NOT IN ({', '.join(['%s'] * len(excluded))}) " if excluded else ""
        rows = self._query(
            f"SELECT {self.select_columns} FROM {self._t} WHERE locked_at = %s "
            f"AND locked_by = %s AND failed_at IS NULL {skip}ORDER BY id ASC LIMIT 1",
            [stamp, request.worker_name, *excluded],
        )
        return self.to_job(rows[0], request.max_run_time) if rows else None

    # -- leader lock --------------------------------------------------------------------
    def hold_lock(self, name: str) -> bool:
        """Hold MySQL's named lock ``djmw:<database>.<table>:<name>`` (``GET_LOCK``, no
        wait).

        Named locks are server-wide, so the key names the database: the fleets of two
        databases on one server each have their own leader. A key longer than MySQL's 64
        characters is shortened to a digest. The server releases the lock when this
        session ends, so a dead holder frees it at once; after a reconnect this
        connection asks for it again.
        """
        key = f"djmw:{self.url.database or ''}.{self.table}:{name}"
        if len(key) > 64:
            key = "djmw:" + hashlib.sha256(key.encode()).hexdigest()[:59]
        sql = "SELECT IF(IS_USED_LOCK(%s) = CONNECTION_ID(), 1, GET_LOCK(%s, 0))"
        try:
            rows = self._query(sql, [key, key])
        except pymysql.err.MySQLError as exc:
            msg = f"lock {key!r} could not be asked for: {exc}"
            raise BackendError(msg) from exc
        return bool(rows and rows[0][0] == 1)

    # -- schema -----------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the delayed_jobs table and index as delayed_job_active_record does, and
        the worker registry table that goes with it; tables that exist are left alone."""
        try:
            self._execute(SCHEMA.format(table=self.table))
        except pymysql.err.MySQLError as exc:
            msg = f"cannot create the table {self.table!r}: {exc.args[-1] if exc.args else exc}"
            raise BackendError(msg) from exc
        self.create_registry(registry_table_for(self.table))

    def create_registry(self, table: str) -> None:
        """Create the worker registry table ``table`` if it is missing."""
        self._execute(REGISTRY_SCHEMA.format(table=checked_table(table)))

    def check_registry(self, table: str) -> None:
        """Raise ConfigurationError saying how to create ``table`` if it is missing or wrong."""
        rows = self._query(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            [table],
        )
        present = {str(row[0]).lower() for row in rows}
        check_registry_columns(table, present, "djmw schema --database mysql://...")

    def check_schema(self) -> None:
        """Check the table once at start; learn column precision and last_error's size."""
        rows = self._query(
            "SELECT COLUMN_NAME, DATETIME_PRECISION, CHARACTER_OCTET_LENGTH "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            [self.table],
        )
        columns = {str(row[0]).lower(): row for row in rows}
        check_columns(self.table, set(columns), "djmw schema --database mysql://...")
        self.whole_seconds = not columns["locked_at"][1]
        octets = columns["last_error"][2]
        # Leave room for the escaping fallback; never exceed max_allowed_packet in practice.
        self.last_error_limit = min(int(octets), 16 * 1024 * 1024) if octets else None
        indexed = self._query(
            "SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND INDEX_NAME = %s AND SEQ_IN_INDEX = 1 AND COLUMN_NAME = %s",
            [self.table, name_key_index(self.table), NAME_KEY_COLUMN],
        )
        self.name_key = NAME_KEY_COLUMN in columns and bool(indexed)

    def create_name_index(self) -> None:
        """Add the job-name key column and its index (``djmw schema --name-index``).

        A virtual column computed from the handler and an index on (key, priority,
        run_at): a class-aware claim then reads a few index entries instead of every
        foreign row ahead of its own. MariaDB only (its PCRE regular expressions); Rails
        and Ruby workers never write the column, and ActiveRecord leaves virtual columns
        out of its INSERTs and UPDATEs.
        """
        if "mariadb" not in self.server_version.lower():
            msg = (
                f"the job-name index needs MariaDB; this server is {self.server_version!r}. "
                "Class-aware claims still work without it (they filter on the handler text)."
            )
            raise ConfigurationError(msg)
        try:
            self._execute(name_key_schema(self.table))
        except pymysql.err.MySQLError as exc:
            reason = exc.args[-1] if exc.args else exc
            msg = f"cannot add the job-name index to {self.table!r}: {reason}"
            raise BackendError(msg) from exc
