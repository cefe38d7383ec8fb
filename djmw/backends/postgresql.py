"""PostgreSQL backend through psycopg 3: one-statement claims and finishes, LISTEN/NOTIFY.

Needs the ``postgresql`` extra (``pip install 'djmw[postgresql]'``: psycopg with its
binary wheel). The layer below the loop: it writes job rows and nothing else, and its
only addition to the Backend protocol is a real ``wait_for_jobs`` (LISTEN/NOTIFY).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import psycopg
import tenacity

from djmw._clock import Clock, utc_now
from djmw.backends._sql import ORDER, NewJob, ReserveRequest, checked_table
from djmw.backends._workers import REGISTRY_COLUMNS, check_registry_columns, registry_table_for
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

#: delayed_job_active_record's migration as ActiveRecord 6.1 renders it for PostgreSQL.
#: The index is named ``<table>_priority`` (``delayed_jobs_priority`` for the default
#: table): PostgreSQL index names are per schema, so a fixed name would clash.
SCHEMA = (
    'CREATE TABLE IF NOT EXISTS "{table}" ("id" bigserial primary key, '
    '"priority" integer DEFAULT 0 NOT NULL, "attempts" integer DEFAULT 0 NOT NULL, '
    '"handler" text NOT NULL, "last_error" text, "run_at" timestamp, "locked_at" timestamp, '
    '"failed_at" timestamp, "locked_by" character varying, "queue" character varying, '
    '"created_at" timestamp(6), "updated_at" timestamp(6))',
    'CREATE INDEX IF NOT EXISTS "{table}_priority" ON "{table}" ("priority", "run_at")',
)

#: djmw's worker registry (djmw.registry); Ruby never reads it.
REGISTRY_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS "{table}" ("name" character varying PRIMARY KEY, '
    '"host" character varying NOT NULL, "pid" integer NOT NULL, "queues" text, '
    '"started_at" timestamp(6) NOT NULL, "heartbeat_at" timestamp(6) NOT NULL, '
    '"job_id" bigint)'
)

#: The trigger ``djmw schema --notify`` installs: one NOTIFY on the table's channel when a
#: row becomes ready to run (inserted, rescheduled, or unlocked), payload = its queue.
TRIGGER = "djmw_notify"

# Retried on the same connection: serialization failure, deadlock, lock not available.
_LOCK_STATES = {"40001", "40P01", "55P03"}
# The server went away or is going away: reconnect, then retry.
_CONNECTION_STATES = {"57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004"}

FinishSql = Literal["pipeline", "statement", "separate"]

#: How often an idle wait checks the stop flag while it listens (seconds).
STOP_CHECK = 0.05
#: How long an idle wait pauses before reopening a lost listening connection (seconds).
RELISTEN = 1.0


def notify_channel(table: str) -> str:
    """The LISTEN/NOTIFY channel for ``table``: ``djmw_<table>`` (cut to 63 bytes)."""
    return f"djmw_{table}"[:63]


def _notify_function(table: str) -> str:
    return f"djmw_notify_{table}"[:63]


def is_connection_error(exc: BaseException | None) -> bool:
    """True when ``exc`` means the connection is gone (reconnect before retrying)."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        # psycopg's own errors without a server state: closed or broken connection.
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state in _CONNECTION_STATES or state.startswith("08")


def is_transient(exc: BaseException | None) -> bool:
    """True for errors worth retrying: deadlocks, serialization failures, lost connections.

    A BackendError from a failed reconnect is transient when its cause is.
    """
    if isinstance(exc, BackendError):
        return is_transient(exc.__cause__)
    if not isinstance(exc, psycopg.Error):
        return False
    return exc.sqlstate in _LOCK_STATES or is_connection_error(exc)


def _clean_text(text: str) -> str:
    # PostgreSQL text holds neither NUL nor lone surrogates; escape them, keep the rest.
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


class PostgresqlBackend(SqlBackend):
    """One psycopg connection (autocommit) to PostgreSQL.

    Reserve: one statement, ``UPDATE ... SET locked_at, locked_by WHERE id = (SELECT id ...
    ORDER BY priority, run_at LIMIT 1 FOR UPDATE SKIP LOCKED) AND <predicate> RETURNING ...``
    (docs/contract.md items 4 and 6). ``finish_and_reserve`` sends the finishing write and
    the next claim as one transaction in one round trip: by default one statement
    (data-modifying CTEs), or two statements in psycopg's pipeline mode.

    Args:
        url: where to connect; query parameters (``sslmode``, ``application_name``, ...)
            go to libpq as they are. The password is never logged.
        table: the delayed_jobs table name.
        clock: naive UTC by default.
        write_retry_seconds: how long a final write is retried on deadlocks,
            serialization failures and lost connections before giving up.
        connect_attempts: connection tries (with exponential backoff) per connect.
        finish_sql: how ``finish_and_reserve`` sends the finishing write and the next
            claim: ``statement`` (one statement; the fastest, measured by
            benchmarks/pg_throughput.py), ``pipeline`` (two statements, one implicit
            transaction, one round trip) or ``separate`` (two transactions).
        prepare_threshold: psycopg's server-side prepare threshold (None: never prepare,
            for PgBouncer in transaction mode).
        listen: LISTEN on the table's channel while idle, so that the ``djmw schema
            --notify`` trigger wakes the worker at once; polling stays the fallback.

    Note:
        Times are bound as ``timestamp without time zone`` values, naive UTC as Rails
        writes them; the server's and the session's TimeZone never touch them. Tables
        with ``timestamp with time zone`` columns are refused at start.
    """

    mark = "%s"
    quote = '"'
    OPTIONS = frozenset(
        {"write_retry_seconds", "connect_attempts", "finish_sql", "prepare_threshold", "listen"}
    )

    def __init__(
        self,
        url: DatabaseUrl,
        *,
        table: str = "delayed_jobs",
        clock: Clock = utc_now,
        write_retry_seconds: float = 120.0,
        connect_attempts: int = 3,
        finish_sql: FinishSql = "statement",
        prepare_threshold: int | None = 5,
        listen: bool = True,
    ) -> None:
        super().__init__(table=table, clock=clock)
        self.url = url
        self.write_retry_seconds = write_retry_seconds
        self.connect_attempts = connect_attempts
        if finish_sql not in ("pipeline", "statement", "separate"):
            msg = f"finish_sql must be pipeline, statement or separate, got {finish_sql!r}."
            raise ConfigurationError(msg)
        self.finish_sql = finish_sql
        self.prepare_threshold = prepare_threshold
        self.listen = listen
        self.channel = notify_channel(self.table)
        self.stats = {"deadlocks_retried": 0, "reconnects": 0, "wakeups": 0}
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        #: The advisory locks held, by key, with the session that holds them.
        self._held_locks: dict[str, object] = {}
        self._listening = False
        self._skip_locked = "SKIP LOCKED"
        self._connect()

    # -- connection -------------------------------------------------------------------
    def _open(self) -> psycopg.Connection[tuple[Any, ...]]:
        params: dict[str, Any] = {"connect_timeout": 5}
        for key, value in (
            ("host", self.url.host),
            ("port", self.url.port),
            ("user", self.url.user),
            ("password", self.url.password),
            ("dbname", self.url.database),
        ):
            if value is not None:
                params[key] = value
        params.update(dict(self.url.params))
        conn = psycopg.connect(autocommit=True, prepare_threshold=self.prepare_threshold, **params)
        # SKIP LOCKED came with PostgreSQL 9.5; older servers wait for the row instead.
        self._skip_locked = "SKIP LOCKED" if conn.info.server_version >= 90500 else ""
        self._listening = False
        return conn

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.connect_attempts),
            wait=tenacity.wait_exponential(multiplier=0.2, max=2),
            retry=tenacity.retry_if_exception(is_connection_error),
            reraise=True,
        )
        try:
            self._conn = retrying(self._open)
        except psycopg.Error as exc:
            reason = self._redact(str(exc).strip())
            msg = (
                f"cannot connect to {self.url.redacted}: {reason}; check that the server is "
                "running and reachable, and the user, password and database in the URL."
            )
            # Chain a copy with the same type (retry decisions read it) and no secret in it.
            raise BackendError(msg) from type(exc)(reason)
        return self._conn

    def _redact(self, text: str) -> str:
        for secret in (self.url.password, *(v for k, v in self.url.params if "password" in k)):
            if secret:
                text = text.replace(secret, "***")
        return text

    @property
    def connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The live connection, reconnecting if the last one was lost."""
        if self._conn is None or self._conn.closed:
            self.stats["reconnects"] += 1
            conn = self._connect()
            # The loss itself may have gone unseen (a session ended by a server restart
            # between two statements): say that the connection was replaced.
            logger.warning("Reconnected to %s after a lost connection", self.url.redacted)
            return conn
        return self._conn

    def _lost(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._listening = False

    def close(self) -> None:
        """Close the connection."""
        self._lost()

    def __del__(self) -> None:
        # A backend dropped without close() closes its connection quietly, as PyMySQL's
        # and sqlite3's do, instead of psycopg's ResourceWarning.
        with contextlib.suppress(Exception):
            self._lost()

    def hold_lock(self, name: str) -> bool:
        """Hold PostgreSQL's session advisory lock for ``djmw:<table>:<name>`` (no wait).

        The server releases it when this session ends, so a dead holder frees it at once.
        The lock is taken once per session (advisory locks stack; asking again would
        count up), and asked for again after a reconnect.
        """
        key = f"djmw:{self.table}:{name}"
        connection = self.connection
        if self._held_locks.get(key) is connection:
            return True
        try:
            rows = self._query("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
        except psycopg.Error as exc:
            msg = f"lock {key!r} could not be asked for: {self._redact(str(exc))}"
            raise BackendError(msg) from exc
        held = bool(rows and rows[0][0])
        if held:
            self._held_locks[key] = connection
        return held

    # -- statements -------------------------------------------------------------------
    def _time(self, value: object) -> datetime | None:
        return value if isinstance(value, datetime) else None

    def _last_error(self, error: BaseException, *, ascii_only: bool = False) -> str:
        return _clean_text(super()._last_error(error, ascii_only=ascii_only))

    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        try:
            cursor = self.connection.execute(sql, tuple(params))
            return int(cursor.rowcount)
        except psycopg.Error as exc:
            if is_connection_error(exc):
                self._lost()
            raise

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            cursor = self.connection.execute(sql, tuple(params))
            return list(cursor.fetchall())
        except psycopg.Error as exc:
            if is_connection_error(exc):
                self._lost()
            raise

    def _insert(self, sql: str, params: Sequence[object]) -> int:
        rows = self._query(f"{sql} RETURNING id", params)
        return int(rows[0][0])

    def _write(self, action: Callable[[], T]) -> T:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, psycopg.Error) and exc.sqlstate in _LOCK_STATES:
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
        except psycopg.Error as exc:
            msg = f"PostgreSQL write failed: {self._redact(str(exc).strip())}"
            raise BackendError(msg) from exc

    # -- reserve ----------------------------------------------------------------------
    def _claim(
        self, request: ReserveRequest, *, not_id: int | None = None
    ) -> tuple[str, list[object]]:
        # The subquery finds and row-locks one id, skipping rows others hold; the UPDATE
        # repeats the whole predicate on the row itself (docs/contract.md, item 6).
        where, params = self.where(request)
        t = self._t
        skip = "" if not_id is None else "AND id <> %s "
        sql = (
            f"UPDATE {t} SET locked_at = %s, locked_by = %s WHERE id = (SELECT id FROM {t} "
            f"WHERE {where} {skip}{ORDER} LIMIT 1 FOR UPDATE {self._skip_locked}) AND {where} "
            f"RETURNING {self.select_columns}"
        )
        skipped = [] if not_id is None else [not_id]
        return sql, [self._stamp(request.now), request.worker_name, *params, *skipped, *params]

    def reserve(self, request: ReserveRequest) -> Job | None:
        """Lock and return the next eligible job in one statement; BackendError on failure."""
        sql, params = self._claim(request)
        try:
            rows = self._query(sql, params)
        except psycopg.Error as exc:
            msg = f"reserve failed: {self._redact(str(exc).strip())}"
            raise BackendError(msg) from exc
        if rows:
            self._stop_listening()
        return self.to_job(rows[0], request.max_run_time) if rows else None

    def finish_and_reserve(self, job: Job, outcome: Outcome, request: ReserveRequest) -> Job | None:
        """Write ``job``'s outcome and claim the next job: one transaction, one round trip.

        If that transaction fails it rolls back whole; the outcome is then written on its
        own, with the usual retries (OutcomeNotRecorded if even that fails), and the claim
        is tried again.
        """
        if self.finish_sql == "separate":
            return super().finish_and_reserve(job, outcome, request)
        if self.finish_sql == "statement":
            return self._finish_and_claim_in_one_statement(job, outcome, request)
        finish, finish_params = self.outcome_sql(job, outcome)
        claim, claim_params = self._claim(request)
        try:
            conn = self.connection
            # No Sync between the two statements: the server runs them as one implicit
            # transaction, committed by the pipeline's one Sync (one round trip, one commit).
            with conn.pipeline():
                written = conn.execute(finish, finish_params)
                claimed = conn.execute(claim, claim_params)
            count = written.rowcount
            row = claimed.fetchone()
        except psycopg.Error as exc:  # rolled back: nothing of it happened
            if is_connection_error(exc):
                self._lost()
            combined_write_failed(self._redact(str(exc).strip()))
            return super().finish_and_reserve(job, outcome, request)
        except BackendError as exc:  # the reconnect failed
            combined_write_failed(exc)
            return super().finish_and_reserve(job, outcome, request)
        if count < 1:
            lost_lock(job)
        return self.to_job(row, request.max_run_time) if row else None

    def _finish_and_claim_in_one_statement(
        self, job: Job, outcome: Outcome, request: ReserveRequest
    ) -> Job | None:
        # Data-modifying CTEs: the outcome's write and the claim in one statement (one
        # implicit transaction). Both see the statement's snapshot, where the finished
        # row is still ours and so still eligible: the claim leaves that id out.
        finish, finish_params = self.outcome_sql(job, outcome)
        claim, claim_params = self._claim(request, not_id=job.id)
        sql = (
            f"WITH done AS ({finish} RETURNING 1), claimed AS ({claim}) "
            "SELECT (SELECT count(*) FROM done), claimed.* FROM (SELECT 1) AS one "
            "LEFT JOIN claimed ON true"
        )
        try:
            rows = self._query(sql, [*finish_params, *claim_params])
        except psycopg.Error as exc:  # rolled back: nothing of it happened
            combined_write_failed(self._redact(str(exc).strip()))
            return super().finish_and_reserve(job, outcome, request)
        except BackendError as exc:  # the reconnect failed
            combined_write_failed(exc)
            return super().finish_and_reserve(job, outcome, request)
        count, *row = rows[0]
        if count < 1:
            lost_lock(job)
        return self.to_job(row, request.max_run_time) if row[0] is not None else None

    # -- batch claims and bulk enqueue ---------------------------------------------------
    def reserve_many(
        self, request: ReserveRequest, limit: int, *, finish: Finish | None = None
    ) -> list[Job]:
        """Write ``finish``, then claim up to ``limit`` jobs in one statement: ``UPDATE ...
        WHERE id IN (SELECT id ... LIMIT <limit> FOR UPDATE SKIP LOCKED) AND <predicate>
        RETURNING <row>``, returned in reserve order."""
        if finish is not None:
            self._finish(finish)
        where, params = self.where(request)
        t = self._t
        sql = (
            f"UPDATE {t} SET locked_at = %s, locked_by = %s WHERE id IN (SELECT id FROM {t} "
            f"WHERE {where} {ORDER} LIMIT {int(limit)} FOR UPDATE {self._skip_locked}) "
            f"AND {where} RETURNING {self.select_columns}"
        )
        values = [self._stamp(request.now), request.worker_name, *params, *params]
        try:
            rows = self._query(sql, values)
        except psycopg.Error as exc:
            msg = f"reserve failed: {self._redact(str(exc).strip())}"
            raise BackendError(msg) from exc
        if rows:
            self._stop_listening()
        jobs = [self.to_job(row, request.max_run_time) for row in rows]
        # RETURNING has no order; NULL priorities and run_ats sort last, as in ORDER BY.
        jobs.sort(
            key=lambda job: (
                job.priority is None,
                job.priority or 0,
                job.run_at is None,
                job.run_at or datetime.min,
                job.id,
            )
        )
        return [locked(job, request.worker_name, job.locked_at or request.now) for job in jobs]

    def enqueue_many(self, rows: Sequence[NewJob]) -> list[int]:
        """Insert ``rows`` with one ``INSERT ... RETURNING id``; return their ids in order."""
        if not rows:
            return []
        sql, params = self.insert_sql(rows)
        try:
            # One statement draws the ids in VALUES order; RETURNING's own order is not
            # promised, the ids' is.
            return sorted(int(row[0]) for row in self._query(f"{sql} RETURNING id", params))
        except psycopg.Error as exc:
            msg = f"enqueue failed: {self._redact(str(exc).strip())}"
            raise BackendError(msg) from exc

    # -- waiting ----------------------------------------------------------------------
    def wait_for_jobs(self, timeout: float, stop: threading.Event) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once on a NOTIFY or when ``stop`` is set.

        Returns True when the worker should reserve again now: a notification came, or it
        has just started listening (a job may have come in while it was not). It listens
        only while idle: it UNLISTENs when woken, so that notifications never pile up in
        memory while it works. A lost connection is reopened (about once a second) and
        listened on again; without the trigger no notification comes and this is a plain
        sleep.
        """
        if not self.listen:
            stop.wait(timeout)
            return False
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                conn = self.connection
                if not self._listening:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self._listening = True
                    return True
                # Short slices: a stop() from another thread must end the wait at once.
                # The generator holds the connection's lock until it is closed.
                heard = conn.notifies(timeout=min(remaining, STOP_CHECK), stop_after=1)
                try:
                    woken = next(heard, None) is not None
                finally:
                    heard.close()
                if woken:
                    self.stats["wakeups"] += 1
                    self._stop_listening()
                    return True
            except (psycopg.Error, BackendError) as exc:
                if not isinstance(exc, psycopg.Error) or is_connection_error(exc):
                    self._lost()
                stop.wait(min(RELISTEN, max(deadline - time.monotonic(), 0)))
        return False

    def _stop_listening(self) -> None:
        """UNLISTEN if listening, then drop the notifications already received: the
        reserve that follows sees their rows. Called when the worker wakes, and when a
        reserve right after starting to listen finds work, so that nothing piles up in
        memory while it works."""
        if not self._listening:
            return
        self._listening = False
        try:
            conn = self.connection
            conn.execute(f'UNLISTEN "{self.channel}"')
            pending = conn.notifies(timeout=0)
            try:
                for _ in pending:
                    pass
            finally:
                pending.close()
        except (psycopg.Error, BackendError) as exc:
            # A new connection listens to nothing; the next statement reconnects.
            if not isinstance(exc, psycopg.Error) or is_connection_error(exc):
                self._lost()

    def install_notify(self) -> None:
        """Install the trigger that NOTIFYs ``notify_channel(table)`` when a row becomes ready.

        It fires after an INSERT, and after an UPDATE of run_at, failed_at or locked_at,
        for rows left unfailed and unlocked (so not for claims); the payload is the row's
        queue ('' for NULL). Replaces an earlier djmw trigger on the table.
        """
        function, table = _notify_function(self.table), self._t
        body = (
            f'CREATE OR REPLACE FUNCTION "{function}"() RETURNS trigger LANGUAGE plpgsql AS '
            f"$djmw$ BEGIN PERFORM pg_notify('{self.channel}', COALESCE(NEW.queue, '')); "
            "RETURN NULL; END $djmw$"
        )
        trigger = (
            f'CREATE TRIGGER "{TRIGGER}" AFTER INSERT OR UPDATE OF run_at, failed_at, locked_at '
            f"ON {table} FOR EACH ROW WHEN (NEW.failed_at IS NULL AND NEW.locked_at IS NULL) "
            f'EXECUTE PROCEDURE "{function}"()'
        )
        with self.connection.transaction():
            self._execute(body)
            self._execute(f'DROP TRIGGER IF EXISTS "{TRIGGER}" ON {table}')
            self._execute(trigger)

    def remove_notify(self) -> None:
        """Remove the trigger and its function; workers go back to polling alone."""
        with self.connection.transaction():
            self._execute(f'DROP TRIGGER IF EXISTS "{TRIGGER}" ON {self._t}')
            self._execute(f'DROP FUNCTION IF EXISTS "{_notify_function(self.table)}"()')

    def notify_installed(self) -> bool:
        """True when the table has djmw's notify trigger."""
        rows = self._query(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(quote_ident(%s)) AND tgname = %s",
            [self.table, TRIGGER],
        )
        return bool(rows)

    # -- schema -----------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the delayed_jobs table and index as delayed_job_active_record does, and
        the worker registry table that goes with it; tables that exist are left alone."""
        with self.connection.transaction():
            for statement in SCHEMA:
                self._execute(statement.format(table=self.table))
        self.create_registry(registry_table_for(self.table))

    def create_registry(self, table: str) -> None:
        """Create the worker registry table ``table`` if it is missing."""
        self._execute(REGISTRY_SCHEMA.format(table=checked_table(table)))

    def check_registry(self, table: str) -> None:
        """Raise ConfigurationError saying how to create ``table`` if it is missing or wrong."""
        rows = self._query(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(%s)) "
            "AND attnum > 0 AND NOT attisdropped",
            [table],
        )
        present = {str(row[0]) for row in rows}
        check_registry_columns(table, present, "djmw schema --database postgresql://...")

    def _replace_worker_sql(self, table: str) -> str:
        # PostgreSQL has no REPLACE INTO.
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in REGISTRY_COLUMNS if c != "name")
        return (
            f"INSERT INTO {self._registry(table)} ({', '.join(REGISTRY_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(REGISTRY_COLUMNS))}) "
            f"ON CONFLICT (name) DO UPDATE SET {updates}"
        )

    def check_schema(self) -> None:
        """Check the table once at start: its columns, and times without time zone."""
        rows = self._query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(quote_ident(%s)) AND attnum > 0 AND NOT attisdropped",
            [self.table],
        )
        types = {str(name): str(kind) for name, kind in rows}
        check_columns(self.table, set(types), "djmw schema --database postgresql://...")
        zoned = [
            name
            for name in ("run_at", "locked_at", "failed_at", "created_at", "updated_at")
            if "with time zone" in types[name]
        ]
        if zoned:
            msg = (
                f"the table {self.table!r} has 'timestamp with time zone' columns {zoned}; "
                "djmw reads and writes delayed_job's 'timestamp without time zone' columns "
                "(naive UTC, as delayed_job_active_record's migration creates them)."
            )
            raise ConfigurationError(msg)
