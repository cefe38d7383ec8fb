"""Time zones: Ruby enqueues, djmw decides when a job is due, and both agree.

(a) The server's own time zone does not matter: with MariaDB's ``SET GLOBAL time_zone =
'+09:00'``, or PostgreSQL's TimeZone ``Asia/Tokyo``, a job Ruby (``default_timezone
:utc``) schedules 3 s ahead is not run by djmw's default (UTC) clock before its run_at,
and is run right after it.

(b) ``default_timezone :local``: Ruby in ``TZ=Asia/Tokyo`` stores Tokyo wall-clock times.
A djmw worker on the default UTC clock sees those jobs 9 h in the future and takes none;
a djmw worker in ``TZ=Asia/Tokyo`` with ``Worker(timezone="local")`` runs them at once
and writes its own times (a retry's run_at) in Tokyo wall-clock time too, which a Ruby
worker with the same settings reads as not yet due.

Skipped without Ruby, except under CI, where the suite must not go weaker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pymysql
import pytest
import rubyenv

from djmw import Handlers, Worker
from djmw.backends import open_backend

# serial: the tests set the MariaDB server's global time_zone.
pytestmark = [pytest.mark.ruby, pytest.mark.serial, pytest.mark.usefixtures("ruby_delayed_job")]

TOKYO = timedelta(hours=9)


def utc_now() -> datetime:
    """Naive UTC now, as delayed_job stores times."""
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.mark.mysql
def test_server_time_zone_does_not_change_when_a_job_runs(mysql_url: str) -> None:
    """(a) Global time_zone +09:00: djmw runs a job due in 3 s neither early nor late."""
    server = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with server.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.time_zone")
            (previous,) = cursor.fetchone() or ("SYSTEM",)
            cursor.execute("SET GLOBAL time_zone = '+09:00'")
        try:
            # New sessions now get +09:00: the server's NOW() is 9 h ahead of UTC.
            probe = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
            with probe.cursor() as cursor:
                cursor.execute(
                    "SELECT @@SESSION.time_zone, TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW())"
                )
                assert cursor.fetchone() == ("+09:00", 9 * 60)
            probe.close()
            # Ruby wrote UTC (MariaDB's DATETIME(0) truncates the fraction).
            check_due_job_runs_on_time(mysql_url, precision=timedelta(seconds=1))
        finally:
            with server.cursor() as cursor:
                cursor.execute("SET GLOBAL time_zone = %s", [previous])
    finally:
        server.close()


@pytest.mark.postgresql
def test_postgresql_time_zone_does_not_change_when_a_job_runs(pg_url: str) -> None:
    """(a) on PostgreSQL: with the database's TimeZone Asia/Tokyo, Ruby stores naive UTC and
    djmw runs a job due in 3 s neither early nor late."""
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'Asia/Tokyo'")
    with psycopg.connect(pg_url, autocommit=True) as probe:
        # New sessions now get Asia/Tokyo: the server's local time is 9 h ahead of UTC.
        zone, hours = probe.execute(
            "SELECT current_setting('TimeZone'), "
            "extract(hour FROM localtimestamp - (now() AT TIME ZONE 'UTC'))::int"
        ).fetchone() or ("", 0)
        assert (zone, hours) == ("Asia/Tokyo", 9)
    # PostgreSQL's timestamp keeps microseconds: Ruby's run_at is exactly the one asked for.
    check_due_job_runs_on_time(pg_url, precision=timedelta(microseconds=1))


def check_due_job_runs_on_time(db_url: str, *, precision: timedelta) -> None:
    """Ruby (default_timezone :utc) enqueues a job due in 3 s; djmw's UTC worker, polling
    every 0.1 s, runs it no earlier than its run_at and within 3 s after."""
    database = rubyenv.ruby_database(db_url)
    rubyenv.create_schema(database)
    ran: list[datetime] = []
    worker = Worker(
        database=db_url,
        handlers=Handlers({"NewsletterJob": lambda job: ran.append(utc_now())}),
        name="djmw time zone",
    )
    try:
        due = utc_now() + timedelta(seconds=3)
        (job,) = rubyenv.enqueue(
            "struct_newsletter",
            database,
            extra_args=("--run-at", due.isoformat(timespec="microseconds") + "Z"),
        )
        worker.prepare()  # connects while the server's zone is Tokyo's
        backend = open_backend(db_url)
        try:
            stored = backend.job(job["id"])
        finally:
            backend.close()
        assert stored is not None
        assert stored.run_at is not None
        assert timedelta(0) <= due - stored.run_at < precision

        polls: list[tuple[datetime, tuple[int, int]]] = []
        deadline = time.monotonic() + 15
        while not ran and time.monotonic() < deadline:
            started = utc_now()
            polls.append((started, worker.work_off(10)))
            time.sleep(0.1)
    finally:
        worker.close()

    assert ran, f"the job never ran: {polls}"
    assert stored.run_at <= ran[0] < stored.run_at + timedelta(seconds=3)
    empty = [when for when, result in polls if result == (0, 0)]
    assert empty, "the job was due at once; it must wait about 3 s"
    assert all(when < stored.run_at for when in empty)
    assert polls[-1][1] == (1, 0)


LOCAL_WORKER = """
import json, sys, time
from datetime import datetime
import djmw
from djmw.middleware import ScheduleRetry

ran = []
def fail(job):
    raise RuntimeError("boom")
handlers = djmw.Handlers({"NewsletterJob": lambda job: ran.append(job.id), "FailJob": fail})
chain = [
    ScheduleRetry(backoff=lambda attempts: 600) if isinstance(m, ScheduleRetry) else m
    for m in djmw.default_middlewares(handlers)
]
worker = djmw.Worker(database=sys.argv[1], handlers=handlers, middlewares=chain,
                     timezone="local", name="djmw tokyo")
local_now = datetime.now()
result = worker.work_off(10)
worker.close()
print(json.dumps({"result": result, "ran": ran, "local_now": local_now.isoformat(),
                  "utc_offset": time.strftime("%z")}))
"""


def test_local_default_timezone(db_url: str) -> None:
    """(b) ``:local`` in Tokyo: a UTC-clock djmw waits 9 h; a local-clock djmw runs the jobs now.

    On PostgreSQL the database's TimeZone is Asia/Tokyo as well, which changes nothing.
    """
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:
            name = db_url.rsplit("/", 1)[1]
            conn.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'Asia/Tokyo'")
    database = rubyenv.ruby_database(db_url)
    rubyenv.create_schema(database)
    tokyo = {"DJ_TIMEZONE": "local", "TZ": "Asia/Tokyo"}
    jobs = rubyenv.enqueue("struct_newsletter", database, extra_args=("fail_job",), env=tokyo)
    ids = {job["shape"]: job["id"] for job in jobs}

    backend = open_backend(db_url)
    try:
        for row in backend.jobs():  # Tokyo wall-clock time: 9 h ahead of UTC
            assert row.run_at is not None
            assert abs(row.run_at - (utc_now() + TOKYO)) < timedelta(seconds=30)

        # The default clock is UTC: both jobs look 9 h away, so none is taken.
        utc_worker = Worker(
            database=db_url,
            handlers=Handlers({"NewsletterJob": lambda job: None, "FailJob": lambda job: None}),
            name="djmw utc",
        )
        try:
            assert utc_worker.work_off(10) == (0, 0)
        finally:
            utc_worker.close()
        assert all((row.attempts, row.locked_by) == (0, None) for row in backend.jobs())

        # The same rows, from a process in Tokyo with Worker(timezone="local").
        proc = subprocess.run(
            [sys.executable, "-c", LOCAL_WORKER, db_url],
            cwd=rubyenv.ROOT,
            env={**os.environ, "TZ": "Asia/Tokyo"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.splitlines()[-1])
        assert out["utc_offset"] == "+0900"
        assert out["result"] == [1, 1]
        assert out["ran"] == [ids["struct_newsletter"]]
        failed_locally_at = datetime.fromisoformat(out["local_now"])

        (row,) = backend.jobs()
        assert row.id == ids["fail_job"]
        assert row.attempts == 1
        assert (row.locked_at, row.locked_by, row.failed_at) == (None, None, None)
        assert row.run_at is not None
        # djmw wrote the retry time in Tokyo wall-clock time: local failure time + 600 s.
        assert abs(row.run_at - (failed_locally_at + timedelta(seconds=600))) < timedelta(seconds=3)
        assert abs(row.run_at - (utc_now() + TOKYO + timedelta(seconds=600))) < timedelta(
            seconds=30
        )
    finally:
        backend.close()

    # A Ruby worker with the same settings reads that run_at as 10 minutes ahead (had djmw
    # written UTC, Tokyo would see it 9 h in the past and run it now).
    proc = rubyenv.run_ruby("work.rb", "--work-off", "10", "--quiet", database=database, env=tokyo)
    assert '"work_off":{"success":0,"failure":0}' in proc.stdout, proc.stdout
