"""Handlers for the crash tests: each run is recorded in a ``job_log`` table of the jobs' database.

The worker processes started by ``tests/integration/test_crash_recovery.py`` import
``tests.rescue_handlers:handlers``. ``DJMW_RECORD_URL`` is the database URL (MariaDB or
SQLite) whose ``job_log`` table (``create_job_log``) receives one row per run, written
before the job does anything else: (job id, attempts at start, pid, worker name).
MariaDB, PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from typing import Any

import psycopg
import pymysql

from djmw import Handlers, Job
from djmw.backends.url import parse_url

handlers = Handlers()
_local = threading.local()

JOB_LOG = (
    "CREATE TABLE job_log (id {key}, job_id bigint NOT NULL, attempt int NOT NULL, "
    "pid int NOT NULL, worker varchar(255))"
)


def create_job_log(url: str) -> None:
    """Create the job_log table in the database at ``url``."""
    keys = {
        "sqlite": "integer PRIMARY KEY AUTOINCREMENT",
        "postgresql": "bigserial PRIMARY KEY",
        "mysql": "bigint AUTO_INCREMENT PRIMARY KEY",
    }
    conn = _open(url)
    conn.cursor().execute(JOB_LOG.format(key=keys[parse_url(url).dialect]))
    conn.close()


def job_log(url: str) -> list[tuple[int, int, int, str]]:
    """Return every recorded run as (job_id, attempt, pid, worker), in order."""
    conn = _open(url)
    cursor = conn.cursor()
    cursor.execute("SELECT job_id, attempt, pid, worker FROM job_log ORDER BY id")
    rows = [(int(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in cursor.fetchall()]
    conn.close()
    return rows


def _open(url: str) -> Any:
    parsed = parse_url(url)
    if parsed.dialect == "sqlite":
        return sqlite3.connect(parsed.path or "", timeout=30, isolation_level=None)
    if parsed.dialect == "postgresql":
        return psycopg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.user,
            password=parsed.password,
            dbname=parsed.database,
            autocommit=True,
        )
    return pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.user or "root",
        password="",
        database=parsed.database,
        autocommit=True,
    )


def record(job: Job) -> None:
    """Insert (job id, attempts, pid, worker) into job_log, committed before returning."""
    url = os.environ["DJMW_RECORD_URL"]
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = _open(url)
    mark = "?" if url.startswith("sqlite") else "%s"
    conn.cursor().execute(
        f"INSERT INTO job_log (job_id, attempt, pid, worker) VALUES ({mark}, {mark}, {mark}, {mark})",
        (job.id, job.attempts, os.getpid(), job.locked_by),
    )


def _field(job: Job, name: str, default: float) -> float:
    fields = getattr(job.payload, "fields", {})
    return float(fields.get(name, default))


@handlers.register("NoopJob")
def noop(job: Job) -> None:
    """Record the run."""
    record(job)


@handlers.register("SleepJob")
def sleep(job: Job) -> None:
    """Record the start, then sleep ``seconds`` in short Python-level steps."""
    record(job)
    deadline = time.monotonic() + _field(job, "seconds", 1)
    while time.monotonic() < deadline:
        time.sleep(0.02)


@handlers.register("PoisonJob")
class PoisonJob:
    """A job that kills its own worker process with SIGKILL, as the OOM killer would."""

    def config(self, job: Job) -> dict[str, int]:
        """At most three attempts."""
        return {"max_attempts": 3}

    def perform(self, job: Job) -> None:
        """Record the run, then SIGKILL this process."""
        record(job)
        os.kill(os.getpid(), signal.SIGKILL)


@handlers.register("PauseJob")
class PauseJob:
    """Sleep like SleepJob; ``max_attempts`` comes from the job's fields."""

    def config(self, job: Job) -> dict[str, int]:
        """The job's own max_attempts field (default 25)."""
        return {"max_attempts": int(_field(job, "max_attempts", 25))}

    def perform(self, job: Job) -> None:
        """Record the start, then sleep ``seconds``."""
        sleep(job)
