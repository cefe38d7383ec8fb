"""Handlers for the crash-safety tests with real processes, on MariaDB or SQLite.

Worker processes started by ``tests/integration/test_crash_safety.py`` import
``tests.crash_handlers:handlers``. Each run is recorded in a ``job_log`` table of the
database named by ``DJMW_RECORD_URL`` (the jobs' own database: MariaDB, PostgreSQL or an
SQLite file):
one row per run with the job id, its attempts at start, the pid and the worker name.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from typing import Any

import psycopg
import pymysql

from djmw import Handlers, Job
from djmw.backends.url import parse_url

handlers = Handlers()
_local = threading.local()

#: The side table each run is recorded in; created by ``create_job_log``.
JOB_LOG = (
    "CREATE TABLE job_log (id {key}, job_id bigint NOT NULL, attempt int NOT NULL, "
    "pid int NOT NULL, worker varchar(255))"
)


def create_job_log(url: str) -> None:
    """Create the job_log table in the database at ``url``."""
    dialect = parse_url(url).dialect
    keys = {
        "sqlite": "integer PRIMARY KEY AUTOINCREMENT",
        "postgresql": "bigserial PRIMARY KEY",
        "mysql": "bigint AUTO_INCREMENT PRIMARY KEY",
    }
    conn = _connect(url)
    try:
        conn.cursor().execute(JOB_LOG.format(key=keys[dialect]))
        conn.commit()
    finally:
        conn.close()


def runs(url: str) -> list[tuple[int, int, int, str]]:
    """Return every recorded run as (job_id, attempt, pid, worker), in order."""
    conn = _connect(url)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT job_id, attempt, pid, worker FROM job_log ORDER BY id")
        return [(int(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in cursor.fetchall()]
    finally:
        conn.close()


def _connect(url: str) -> Any:
    parsed = parse_url(url)
    if parsed.dialect == "sqlite":
        conn = sqlite3.connect(parsed.path or "", timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn
    if parsed.dialect == "postgresql":
        return psycopg.connect(url, autocommit=True)
    return pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.user or "root",
        password=parsed.password or "",
        database=parsed.database,
        autocommit=True,
    )


def record(job: Job) -> None:
    """Insert (job id, attempts, pid, worker) into job_log."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = _connect(os.environ["DJMW_RECORD_URL"])
    mark = "?" if isinstance(conn, sqlite3.Connection) else "%s"
    conn.cursor().execute(
        f"INSERT INTO job_log (job_id, attempt, pid, worker) VALUES ({mark}, {mark}, {mark}, {mark})",
        (job.id, job.attempts, os.getpid(), job.locked_by),
    )


def _field(job: Job, name: str, default: object) -> Any:
    return getattr(job.payload, "fields", {}).get(name, default)


@handlers.register("NoopJob")
def noop(job: Job) -> None:
    """Record the run."""
    record(job)


@handlers.register("SleepJob")
def sleep(job: Job) -> None:
    """Record the start, then sleep ``seconds`` in short Python-level steps."""
    record(job)
    deadline = time.monotonic() + float(_field(job, "seconds", 1))
    while time.monotonic() < deadline:
        time.sleep(0.02)


@handlers.register("ExitJob")
def exit_job(job: Job) -> None:
    """Record the run, then leave as the ``how`` field says: ``exit3`` (``sys.exit(3)``),
    ``keyboard`` (``raise KeyboardInterrupt``) or ``generator`` (``raise GeneratorExit``)."""
    record(job)
    how = _field(job, "how", "exit3")
    if how == "keyboard":
        raise KeyboardInterrupt
    if how == "generator":
        msg = "closed by the job"
        raise GeneratorExit(msg)
    sys.exit(3)
