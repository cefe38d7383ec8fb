"""Hostile and broken rows: one worker runs over all of them and never falls over.

The whole corpus of ``tests/hostile_corpus.py`` goes into one table, between a good job
inserted first and one inserted last; then one ``Worker.work_off`` runs over it with a
ManualClock, once on MariaDB, once on PostgreSQL and once on SQLite. Each row must end in its expected state
(deleted, failed with ``last_error`` saying why, rescheduled, or untouched byte for byte),
the worker must neither raise nor crash, and no handler may ever run code.
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import hostile_corpus as hc
import pymysql
import pytest
from pgserver import drop_pg_database, new_pg_database

from djmw import DecodeLimits, Handlers, Job, RubyObject, Worker
from djmw.backends import open_backend
from djmw.backends._sql import COLUMNS
from djmw.backends.base import SqlBackend
from djmw.backends.sqlite import SCHEMA as SQLITE_SCHEMA
from djmw.middleware import DecodeYAML, default_middlewares
from djmw.testing import ManualClock

GOOD = "--- !ruby/struct:OkJob\ngood: true\n"
CREATED = hc.T0 - timedelta(hours=1)
PER_DIALECT = [
    pytest.param("mysql", marks=pytest.mark.mysql),
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    "sqlite",
]
DIALECT_MARKS = {"mysql": [pytest.mark.mysql], "postgresql": [pytest.mark.postgresql]}


@attrs.define
class Run:
    """What one work_off over the corpus saw and left behind."""

    dialect: hc.Dialect
    ids: dict[str, int]
    good: list[int]
    before: dict[int, tuple[Any, ...]]
    after: dict[int, tuple[Any, ...]]
    jobs: dict[int, Job]
    ran: dict[int, object]
    result: tuple[int, int] | None
    raised: BaseException | None
    status: str
    error: BaseException | None
    records: list[logging.LogRecord]
    commands: list[object]


def registry(ran: dict[int, object]) -> Handlers:
    """The corpus's jobs: OkJob records its payload; the others raise as their name says."""
    handlers = Handlers()

    @handlers.register("OkJob")
    def ok(job: Job) -> None:
        ran[job.id] = job.payload

    @handlers.register("FailJob")
    def fail(job: Job) -> None:
        msg = "boom"
        raise ValueError(msg)

    @handlers.register("BigErrorJob")
    def big_error(job: Job) -> None:
        size = job.payload.fields["size"]  # type: ignore[attr-defined]
        raise RuntimeError("E" * size)

    @handlers.register("EmojiErrorJob")
    def emoji_error(job: Job) -> None:
        raise ValueError(job.payload.fields["message"])  # type: ignore[attr-defined]

    return handlers


# -- the database ----------------------------------------------------------------------
def mysql_database() -> tuple[str, Callable[[], None]]:
    """Create a MariaDB database; return its URL and a function that drops it."""
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    except pymysql.err.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no MariaDB on 127.0.0.1:3306 ({exc}); run scripts/test")
    name = f"djmw_h_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop() -> None:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()

    return f"mysql://root@127.0.0.1:3306/{name}", drop


def legacy_table(backend: SqlBackend, dialect: str) -> None:
    """Create delayed_jobs as the migration does, minus NOT NULL on handler and priority."""
    if dialect == "mysql":
        backend.create_schema()
        backend._execute(
            "ALTER TABLE delayed_jobs MODIFY handler text NULL, MODIFY priority int NULL DEFAULT 0"
        )
    elif dialect == "postgresql":
        backend.create_schema()
        backend._execute(
            "ALTER TABLE delayed_jobs ALTER COLUMN handler DROP NOT NULL, "
            "ALTER COLUMN priority DROP NOT NULL"
        )
    else:
        script = SQLITE_SCHEMA.replace('"handler" text NOT NULL', '"handler" text').replace(
            '"priority" integer DEFAULT 0 NOT NULL', '"priority" integer DEFAULT 0'
        )
        assert script.count("NOT NULL") == 2  # id and attempts keep theirs
        backend._conn.executescript(script.format(table="delayed_jobs"))  # type: ignore[attr-defined]
    backend.check_schema()


def insert(backend: SqlBackend, handler: object, columns: dict[str, object]) -> int:
    """Insert one row with every column given; datetimes in the dialect's format."""
    values: dict[str, object] = {
        "priority": 0,
        "attempts": 0,
        "handler": handler,
        "last_error": None,
        "run_at": hc.READY,
        "locked_at": None,
        "locked_by": None,
        "failed_at": None,
        "queue": None,
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    values.update(columns)
    params = [backend._stamp(v) if isinstance(v, datetime) else v for v in values.values()]
    marks = ", ".join([backend.mark] * len(values))
    sql = f"INSERT INTO delayed_jobs ({', '.join(values)}) VALUES ({marks})"
    return backend._insert(sql, params)


def insert_entry(backend: SqlBackend, entry: hc.Entry) -> int:
    """Insert ``entry``'s row, under its sql_mode on MariaDB."""
    if entry.insert_sql_mode is None:
        return insert(backend, entry.handler, dict(entry.columns))
    backend._execute("SET @djmw_saved_mode = @@SESSION.sql_mode")
    backend._execute(f"SET SESSION sql_mode = {backend.mark}", [entry.insert_sql_mode])
    try:
        return insert(backend, entry.handler, dict(entry.columns))
    finally:
        backend._execute("SET SESSION sql_mode = @djmw_saved_mode")


def snapshot(backend: SqlBackend) -> dict[int, tuple[Any, ...]]:
    """Every row as the worker reads it (handler and last_error as raw bytes), by id."""
    rows = backend._query(f"SELECT {backend.select_columns} FROM delayed_jobs ORDER BY id")
    return {int(row[0]): tuple(row) for row in rows}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def work_off_corpus(dialect: hc.Dialect, url: str) -> Run:
    """Insert the corpus for ``dialect`` at ``url``, run one work_off, record everything."""
    limits = DecodeLimits(max_bytes=hc.MYSQL_MAX_BYTES) if dialect == "mysql" else DecodeLimits()
    clock = ManualClock(hc.T0)
    backend = open_backend(url, clock=clock)
    try:
        legacy_table(backend, dialect)
        entries = hc.corpus(dialect)
        good = [insert(backend, GOOD, {})]
        ids = {entry.name: insert_entry(backend, entry) for entry in entries}
        good.append(insert(backend, GOOD, {}))
        before = snapshot(backend)

        ran: dict[int, object] = {}
        handlers = registry(ran)
        chain = default_middlewares(handlers)
        assert isinstance(chain[0], DecodeYAML)
        chain[0] = DecodeYAML(limits=limits)
        worker = Worker(
            database=url,
            handlers=handlers,
            middlewares=chain,
            clock=clock,
            name=hc.WORKER_NAME,
            queues=list(hc.QUEUES),
            max_run_time=hc.MAX_RUN_TIME,
        )
        commands: list[object] = []

        def forbidden(*args: object, **kwargs: object) -> Any:
            commands.append(args)
            msg = "a handler tried to run a command"
            raise AssertionError(msg)

        collect = _Collect()
        djmw_logger = logging.getLogger("djmw")
        saved_level = djmw_logger.level
        djmw_logger.addHandler(collect)
        djmw_logger.setLevel(logging.DEBUG)
        result: tuple[int, int] | None = None
        raised: BaseException | None = None
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(os, "system", forbidden)
                patch.setattr(os, "popen", forbidden)
                patch.setattr(subprocess, "Popen", forbidden)
                try:
                    result = worker.work_off(len(entries) + 10)
                except Exception as exc:  # the test asserts there is none
                    raised = exc
        finally:
            djmw_logger.removeHandler(collect)
            djmw_logger.setLevel(saved_level)
            status, error = worker.status, worker.error
            # The rows as the running worker leaves them: closing clears its locks.
            after = snapshot(backend)
            jobs = {job.id: job for job in backend.jobs()}
            worker.close()
    finally:
        backend.close()
    return Run(
        dialect=dialect,
        ids=ids,
        good=good,
        before=before,
        after=after,
        jobs=jobs,
        ran=ran,
        result=result,
        raised=raised,
        status=status,
        error=error,
        records=collect.records,
        commands=commands,
    )


class Runs:
    """One corpus run per dialect, made on first use and shared by the module's tests."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._runs: dict[str, Run] = {}
        self._cleanups: list[Callable[[], None]] = []

    def get(self, dialect: hc.Dialect) -> Run:
        """Return the run on ``dialect``, making it the first time."""
        if dialect not in self._runs:
            if dialect == "mysql":
                url, drop = mysql_database()
                self._cleanups.append(drop)
            elif dialect == "postgresql":
                url = new_pg_database()
                self._cleanups.append(lambda url=url: drop_pg_database(url))  # type: ignore[misc]
            else:
                url = f"sqlite:///{self._tmp.mktemp('hostile') / 'jobs.db'}"
            self._runs[dialect] = work_off_corpus(dialect, url)
        return self._runs[dialect]

    def close(self) -> None:
        """Drop the databases made for the runs."""
        for cleanup in self._cleanups:
            cleanup()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """The module's corpus runs."""
    made = Runs(tmp_path_factory)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def run(runs: Runs, dialect: hc.Dialect) -> Run:
    """The corpus run on the test's dialect."""
    return runs.get(dialect)


# -- the worker as a whole ------------------------------------------------------------------
@pytest.mark.parametrize("dialect", PER_DIALECT)
def test_worker_never_raises_nor_crashes(run: Run) -> None:
    """work_off over the whole corpus returns normally; the worker is not crashed."""
    assert run.raised is None
    assert run.result is not None
    assert run.status != "crashed"
    assert run.error is None


@pytest.mark.parametrize("dialect", PER_DIALECT)
def test_every_job_is_decided_by_the_chain(run: Run) -> None:
    """No job escapes the chain or loses its outcome: each is deleted, failed or rescheduled."""
    worries = ("escaped the middleware chain", "could not be recorded", "no longer locked")
    lines = [r.getMessage() for r in run.records]
    assert [line for line in lines if any(w in line for w in worries)] == []
    entries = hc.corpus(run.dialect)
    deleted = sum(entry.state == "deleted" for entry in entries) + len(run.good)
    failed = sum(entry.state in ("failed", "rescheduled") for entry in entries)
    assert run.result == (deleted, failed)


@pytest.mark.parametrize("dialect", PER_DIALECT)
def test_good_jobs_around_the_corpus_run(run: Run) -> None:
    """The good jobs inserted first and last both ran and were deleted."""
    for job_id in run.good:
        assert job_id in run.ran
        assert job_id not in run.after


@pytest.mark.parametrize("dialect", PER_DIALECT)
def test_no_handler_runs_a_command(run: Run) -> None:
    """No row, !!python tags included, makes the worker call os.system, os.popen or Popen."""
    assert run.commands == []


@pytest.mark.parametrize("dialect", PER_DIALECT)
def test_no_row_appears_or_vanishes_unexpectedly(run: Run) -> None:
    """After the run, exactly the rows expected to stay are still there."""
    entries = hc.corpus(run.dialect)
    staying = {run.ids[e.name] for e in entries if e.state != "deleted"}
    assert set(run.after) == staying


# -- each row ---------------------------------------------------------------------------
CASES = [
    pytest.param(
        dialect,
        entry.name,
        id=f"{dialect}-{entry.name}",
        marks=DIALECT_MARKS.get(dialect, []),
    )
    for dialect in hc.DIALECTS
    for entry in hc.corpus(dialect)
]

_LOCK = {"locked_at", "locked_by"}
#: Columns each outcome may write; every other column must keep its value.
_WRITES = {
    "failed": {"attempts", "last_error", "failed_at", "updated_at", *_LOCK},
    "rescheduled": {"attempts", "last_error", "run_at", "updated_at", *_LOCK},
}


def _column(row: tuple[Any, ...], name: str) -> Any:
    return row[COLUMNS.index(name)]


@pytest.mark.parametrize(("dialect", "name"), CASES)
def test_row_end_state(run: Run, name: str) -> None:
    """Each corpus row ends as its entry says; columns its outcome does not write are kept."""
    entry = next(e for e in hc.ENTRIES if e.name == name)
    job_id = run.ids[name]
    before = run.before[job_id]
    if entry.state == "deleted":
        assert job_id in run.ran, entry.about
        assert job_id not in run.after
        return
    assert job_id not in run.ran
    after = run.after[job_id]
    if entry.state == "untouched":
        assert after == before, entry.about
        return
    kept = [c for c in COLUMNS if c not in _WRITES[entry.state]]
    assert [_column(after, c) for c in kept] == [_column(before, c) for c in kept]
    job = run.jobs[job_id]
    expected_attempts = (
        entry.attempts if entry.attempts is not None else _column(before, "attempts")
    )
    assert job.attempts == expected_attempts
    assert job.updated_at == hc.T0
    if entry.state == "failed":
        # delayed_job keeps the lock columns of a failed row.
        assert (job.failed_at, job.locked_by, job.locked_at) == (hc.T0, hc.WORKER_NAME, hc.T0)
    else:
        assert (job.failed_at, job.locked_by, job.locked_at) == (None, None, None)
        assert job.run_at == hc.T0 + timedelta(seconds=job.attempts**4 + 5)
    check_last_error(entry, job.last_error)


def check_last_error(entry: hc.Entry, last_error: str | None) -> None:
    """Assert ``last_error`` matches what ``entry`` says about it."""
    assert last_error is not None
    assert last_error.startswith(entry.error_starts), last_error[:300]
    assert entry.error_contains in last_error, last_error[:300]
    assert last_error.endswith(entry.error_ends)
    size = len(last_error.encode())
    if entry.error_max_bytes is not None:
        assert size <= entry.error_max_bytes
    if entry.error_min_bytes is not None:
        assert size >= entry.error_min_bytes
    if entry.error_starts == hc.LOAD:
        # The reason follows the prefix on the first line, then the backtrace.
        assert len(last_error.split("\n", 1)[0]) > len(hc.LOAD) + 10


@pytest.mark.parametrize("dialect", PER_DIALECT)
def test_unknown_ruby_object_inside_a_job_is_a_ruby_object(run: Run) -> None:
    """An unknown !ruby/object: nested in a known job reaches the handler as a RubyObject."""
    payload = run.ran[run.ids["ruby_object_unknown_nested"]]
    thing = payload.fields["thing"]  # type: ignore[attr-defined]
    assert isinstance(thing, RubyObject)
    assert thing.class_name == "Evil::Gadget"
    assert thing.fields == {"command": "rm -rf /"}


@pytest.mark.parametrize("dialect", PER_DIALECT)
def test_the_unknown_class_row_names_the_class(run: Run) -> None:
    """A top-level !ruby/object: of an unknown class fails as an unknown job, naming it."""
    job = run.jobs[run.ids["ruby_object_unknown_class"]]
    assert job.last_error is not None
    assert job.last_error.startswith(
        "Job failed to load: no perform function is registered for 'Evil::Unknown'"
    )


@pytest.mark.mysql
@pytest.mark.parametrize("dialect", ["mysql"])
def test_mariadb_replaces_invalid_utf8_before_the_worker_sees_it(run: Run) -> None:
    """MariaDB keeps '?' for bytes that are not UTF-8 (sql_mode ''), so that row decodes."""
    before = run.before[run.ids["invalid_utf8_replaced_by_server"]]
    assert _column(before, "handler") == b'--- !ruby/struct:OkJob\nn: "?( ??"\n'


@pytest.mark.mysql
def test_mariadb_strict_mode_refuses_invalid_utf8(mysql_url: str) -> None:
    """In its default strict mode MariaDB refuses invalid UTF-8 in handler (error 1366)."""
    backend = open_backend(mysql_url)
    backend.create_schema()
    try:
        with pytest.raises(pymysql.err.DataError) as info:
            insert(backend, b"--- \xff\n", {})
        assert info.value.args[0] == 1366
    finally:
        backend.close()


@pytest.mark.postgresql
def test_postgresql_refuses_nul_and_invalid_utf8(pg_url: str) -> None:
    """PostgreSQL's text holds neither NUL nor invalid UTF-8: the INSERT itself is refused,
    so no such row can reach a worker (the corpus leaves those rows out on PostgreSQL)."""
    import psycopg

    backend = open_backend(pg_url)
    backend.create_schema()
    try:
        with pytest.raises(psycopg.DataError, match="NUL"):
            insert(backend, '--- !ruby/struct:OkJob\nn: "a\x00b"\n', {})
        with pytest.raises(psycopg.DataError, match="invalid byte sequence"):
            backend._execute(
                "INSERT INTO delayed_jobs (handler, run_at) VALUES (convert_from(%s, 'UTF8'), %s)",
                [b"--- \xff\n", hc.READY],
            )
        assert backend.jobs() == []
    finally:
        backend.close()


def test_fixture_files_are_all_used() -> None:
    """Every file in tests/fixtures/hostile/ is a corpus row's handler."""
    used = {entry.handler for entry in hc.ENTRIES if isinstance(entry.handler, str)}
    files = sorted(Path(hc.FIXTURES).glob("*.yml"))
    assert files
    unused = [f.name for f in files if f.read_text(encoding="utf-8") not in used]
    assert unused == []


def test_corpus_is_big_enough() -> None:
    """The corpus has at least 30 rows on each database."""
    assert len(hc.corpus("mysql")) >= 30
    assert len(hc.corpus("postgresql")) >= 30
    assert len(hc.corpus("sqlite")) >= 30


# -- rows that once broke the worker -----------------------------------------------------
def _one_job_worker(db_url: str, clock: ManualClock, handlers: Handlers) -> Worker:
    return Worker(database=db_url, handlers=handlers, clock=clock, name=hc.WORKER_NAME)


def test_surrogate_in_the_error_message_does_not_crash(db_url: str) -> None:
    """A job whose error names a non-UTF-8 file name (a lone surrogate) is rescheduled."""
    clock = ManualClock(hc.T0)
    backend = open_backend(db_url, clock=clock)
    backend.create_schema()
    try:
        job_id = backend.enqueue("--- !ruby/struct:ImportJob\nn: 1\n")

        def perform(job: Job) -> None:
            name = os.fsdecode(b"report-\xff.csv")  # as os.listdir returns it
            raise ValueError(f"cannot import {name}")

        worker = _one_job_worker(db_url, clock, Handlers({"ImportJob": perform}))
        try:
            assert worker.work_off(1) == (0, 1)
        finally:
            worker.close()
        row = backend.job(job_id)
        assert row is not None
        assert (row.attempts, row.locked_by) == (1, None)
        assert row.last_error is not None
        assert row.last_error.startswith("cannot import report-")
    finally:
        backend.close()


def test_unprintable_exception_still_counts_an_attempt(db_url: str) -> None:
    """A job raising an exception whose str() raises is still charged one attempt."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            msg = "no text for this error"
            raise RuntimeError(msg)

    def perform(job: Job) -> None:
        raise Unprintable

    clock = ManualClock(hc.T0)
    backend = open_backend(db_url, clock=clock)
    backend.create_schema()
    try:
        job_id = backend.enqueue("--- !ruby/struct:UnprintableJob\nn: 1\n")
        worker = _one_job_worker(db_url, clock, Handlers({"UnprintableJob": perform}))
        try:
            assert worker.work_off(1) == (0, 1)
        finally:
            worker.close()
        row = backend.job(job_id)
        assert row is not None
        assert row.attempts == 1
    finally:
        backend.close()
