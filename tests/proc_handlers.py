"""Handlers for the process-level tests: each run is recorded in a side table.

The worker processes started by ``tests/integration/test_processes.py`` import
``tests.proc_handlers:handlers``. ``DJMW_RECORD_URL`` names the MariaDB or PostgreSQL
database whose ``job_log`` table receives one row per run: (job_id, attempts at start, pid,
worker name).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg
import pymysql

from djmw import Handlers, Job
from djmw.backends.url import parse_url

handlers = Handlers()
_local = threading.local()


def _connection() -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None:
        url = parse_url(os.environ["DJMW_RECORD_URL"])
        if url.dialect == "postgresql":
            conn = psycopg.connect(os.environ["DJMW_RECORD_URL"], autocommit=True)
        else:
            conn = pymysql.connect(
                host=url.host,
                port=url.port or 3306,
                user=url.user or "root",
                password="",
                database=url.database,
                autocommit=True,
            )
        _local.conn = conn
    return conn


def record(job: Job) -> None:
    """Insert (job id, attempts, pid, worker) into job_log, reconnecting across outages."""
    for _ in range(600):
        try:
            with _connection().cursor() as cursor:
                cursor.execute(
                    "INSERT INTO job_log (job_id, attempt, pid, worker) VALUES (%s, %s, %s, %s)",
                    (job.id, job.attempts, os.getpid(), job.locked_by),
                )
            return
        except (pymysql.err.MySQLError, psycopg.Error):
            _local.conn = None
            time.sleep(0.1)


def _field(job: Job, name: str, default: float) -> float:
    fields = getattr(job.payload, "fields", {})
    return float(fields.get(name, default))


@handlers.register("NoopJob")
def noop(job: Job) -> None:
    """Record the run."""
    record(job)


@handlers.register("FlakyJob")
def flaky(job: Job) -> None:
    """Record the run; fail while attempts < fail_times."""
    record(job)
    if job.attempts < _field(job, "fail_times", 2):
        msg = f"planned failure {job.attempts + 1}"
        raise RuntimeError(msg)


@handlers.register("SleepJob")
def sleep(job: Job) -> None:
    """Record the start, then sleep ``seconds`` in short Python-level steps."""
    record(job)
    deadline = time.monotonic() + _field(job, "seconds", 1)
    while time.monotonic() < deadline:
        time.sleep(0.02)
