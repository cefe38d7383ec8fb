"""MariaDB/MySQL backend through PyMySQL: the primary production backend."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import attrs
import pymysql
import tenacity
from pymysql.connections import Connection
from pymysql.constants import CLIENT

from djmw._clock import Clock, utc_now
from djmw.backends._sql import ORDER, ReserveRequest, checked_table, handler_marker, names_like
from djmw.backends._workers import check_registry_columns, registry_table_for
from djmw.backends.base import SqlBackend, check_columns, lost_lock
from djmw.backends.url import DatabaseUrl
from djmw.errors import BackendError, ConfigurationError
from djmw.job import Job
from djmw.outcome import Outcome

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

# Statement positions in the multi-statement transactions: SET, START TRANSACTION, then
# (the finishing write,) SELECT ... INTO, UPDATE, SELECT <the claimed row>, COMMIT.
_FINISH = 2
_CLAIMED_ROW = -2

ReserveSql = Literal["auto", "skip_locked", "update_limit"]


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
            return self._connect()
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

    def _write(self, action: Callable[[], int]) -> int:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if _code(exc) in _LOCK_ERRORS if exc else False:
                self.stats["deadlocks_retried"] += 1
            logger.warning("Retrying a write after %s (try %d)", exc, state.attempt_number)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self.write_retry_seconds),
            wait=tenacity.wait_exponential(multiplier=0.05, max=2) + tenacity.wait_random(0, 0.05),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
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
            find = f"SELECT id INTO @djmw_id FROM {t} WHERE {where} {ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED"
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
        find = (
            f"SELECT id INTO @djmw_id FROM ({' UNION ALL '.join(heads)}) AS heads {ORDER} LIMIT 1"
        )
        return find, values

    def _multi(self, sql: str, values: tuple[object, ...]) -> list[tuple[int, Any]]:
        """Run a multi-statement transaction; return (affected rows, first row) per statement."""
        conn = self.connection
        results: list[tuple[int, Any]] = []
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, values)
                while True:
                    row = cursor.fetchone() if cursor.description is not None else None
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
        results = self._multi(f"SET @djmw_id = NULL; START TRANSACTION; {claim}COMMIT", values)
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
        sql = f"SET @djmw_id = NULL; START TRANSACTION; {finish}; {claim}COMMIT"
        try:
            results = self._multi(sql, (*finish_values, *values))
        except Exception as exc:  # rolled back: nothing of it happened
            if _code(exc) in _CONNECTION_ERRORS:
                self._lost()
            return super().finish_and_reserve(job, outcome, request)
        if results[_FINISH][0] < 1:
            lost_lock(job)
        row = results[_CLAIMED_ROW][1]
        return self.to_job(json.loads(row[0]), request.max_run_time) if row else None

    def _reserve_update_limit(self, request: ReserveRequest) -> Job | None:
        where, params = self.where(request)
        stamp = self._stamp(request.now)
        sql = f"UPDATE {self._t} SET locked_at = %s, locked_by = %s WHERE {where} {ORDER} LIMIT 1"
        if self._execute(sql, [stamp, request.worker_name, *params]) == 0:
            return None
        rows = self._query(
            f"SELECT {self.select_columns} FROM {self._t} WHERE locked_at = %s "
            "AND locked_by = %s AND failed_at IS NULL ORDER BY id ASC LIMIT 1",
            [stamp, request.worker_name],
        )
        return self.to_job(rows[0], request.max_run_time) if rows else None

    # -- leader lock --------------------------------------------------------------------
    def hold_lock(self, name: str) -> bool:
        """Hold MySQL's named lock ``djmw:<table>:<name>`` (``GET_LOCK``, no wait).

        The server releases it when this session ends, so a dead holder frees it at once;
        after a reconnect this connection asks for it again.
        """
        key = f"djmw:{self.table}:{name}"[:64]
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
