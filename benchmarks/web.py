"""Each dashboard page's answer time on a MariaDB table of 1,000,000 rows.

Builds ``delayed_jobs`` from 1,000 seed rows doubled ten times with ``INSERT ... SELECT``
(1,024,000 rows: 70 % ready, 10 % scheduled or retrying, 1 % running, 19 % failed over
the last two days; three queues; Struct and ``.delay`` jobs whose handlers all differ),
serves the dashboard with uvicorn on 127.0.0.1, and times each page as a browser asks
for it (HTTP GET, whole body read): the median and the worst of 7 requests.

The overview and the failures page show summaries that ``djmw.web.summaries`` reads in
the background (whole-table scans); their first request, before any summary exists,
is timed separately, and so is the background read itself.

Run: ``.venv/bin/python benchmarks/web.py [--rows-log2 10] [--keep]`` (MariaDB on
127.0.0.1, as ``scripts/test`` starts it). It takes a few minutes; ``--keep`` leaves the
database ``djmw_bench_web`` for another run (then the build is skipped).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import web_support as ws  # noqa: E402

import djmw.web  # noqa: E402
from djmw._clock import utc_now  # noqa: E402
from djmw.admin import JobFilter, Jobs  # noqa: E402
from djmw.backends.mysql import MysqlBackend  # noqa: E402
from djmw.backends.url import parse_url  # noqa: E402

SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
DATABASE = "djmw_bench_web"
URL = f"mysql://root@127.0.0.1:3306/{DATABASE}"
SEED = 1000
COLUMNS = (
    "priority, attempts, handler, last_error, run_at, locked_at, locked_by, failed_at, "
    "queue, created_at, updated_at"
)
ERRORS = [
    "Net::ReadTimeout\napp/jobs/report_job.rb:12:in `perform'",
    "Net::SMTPFatalError: 550 5.1.1 no such user\napp/mailers/newsletter.rb:31:in `deliver'",
    "PG::ConnectionBad: could not connect to server\napp/models/user.rb:88:in `cleanup'",
]


def connect(database: str | None = DATABASE) -> Any:
    return pymysql.connect(**SERVER, database=database, autocommit=True)


def seed_row(i: int, now: datetime) -> tuple[object, ...]:
    """Row ``i`` of the seed: its state by i % 100, like benchmarks/operations.py."""
    kind = i % 100
    queue = ("default", "mailers", "reports")[i % 3]
    if i % 2:
        handler = ws.struct("NewsletterJob", text=f"Issue {i}", emails=["a@example.com"])
    else:
        handler = (
            "--- !ruby/object:Delayed::PerformableMethod\nobject: !ruby/class 'User'\n"
            f"method_name: :cleanup\nargs:\n- {i}\n"
        )
    attempts, error, locked_at, locked_by, failed_at = 0, None, None, None, None
    run_at = now - timedelta(seconds=(i * 37) % 86_400)
    if 70 <= kind < 80:  # scheduled over the next two days, half of them retrying
        run_at = now + timedelta(seconds=(i * 173) % 172_800 + 60)
        if kind >= 75:
            attempts, error = kind - 74, ERRORS[i % 3]
    elif kind == 80:  # running
        locked_at, locked_by = now - timedelta(seconds=i % 600), f"host:web{i % 8} pid:{i % 8}"
    elif kind > 80:  # failed over the last two days
        attempts, error = 25, ERRORS[i % 3]
        failed_at = now - timedelta(seconds=(i * 211) % 172_800 + 30)
    return (i % 3, attempts, handler, error, run_at, locked_at, locked_by, failed_at, queue)


def build(rows_log2: int) -> float:
    """A fresh table of SEED << rows_log2 rows; returns the seconds it took."""
    started = time.perf_counter()
    server = connect(None)
    with server.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cursor.execute(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4")
    server.close()
    backend = MysqlBackend(parse_url(URL))
    backend.create_schema()
    backend.close()
    now = utc_now().replace(microsecond=0)
    conn = connect()
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO delayed_jobs ({COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(), UTC_TIMESTAMP())",
            [seed_row(i, now) for i in range(SEED)],
        )
        for round_ in range(rows_log2):
            # Each copy gets its own handler text (a new argument or member) and times
            # moved by up to an hour, so no two rows share a handler or a timestamp.
            cursor.execute(
                f"INSERT INTO delayed_jobs ({COLUMNS}) SELECT priority, attempts, "
                "CASE WHEN handler LIKE '%PerformableMethod%' THEN CONCAT(handler, '- ', id, '\\n') "
                f"ELSE CONCAT(handler, 'k{round_}: ', id, '\\n') END, last_error, "
                "CASE WHEN failed_at IS NULL AND run_at > UTC_TIMESTAMP() "
                "THEN run_at + INTERVAL (id % 3600) SECOND ELSE run_at - INTERVAL (id % 3600) SECOND END, "
                "locked_at, locked_by, failed_at - INTERVAL (id % 3600) SECOND, queue, "
                "created_at, updated_at FROM delayed_jobs"
            )
        cursor.execute("ANALYZE TABLE delayed_jobs")
        cursor.fetchall()
    conn.close()
    return time.perf_counter() - started


def row_count() -> int:
    conn = connect()
    with conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM delayed_jobs")
        (count,) = cursor.fetchone()
    conn.close()
    return int(count)


def get(url: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - loopback
        body = response.read()
        status = response.status
    return time.perf_counter() - started, status, body


def timed(base: str, path: str, runs: int = 7) -> tuple[float, float, int]:
    times = []
    status = 0
    for _ in range(runs):
        elapsed, status, _body = get(base + path)
        times.append(elapsed)
    return statistics.median(times), max(times), status


def count_shown(base: str, path: str) -> tuple[float, float]:
    """A bulk confirmation with no count of its filter kept: seconds until the page
    answers, and until its count is shown (the live part, asked every 0.5 s as the
    page's script does)."""
    time.sleep(3)  # older than the 2 s a finished count is shown again
    started = time.perf_counter()
    answered, _status, body = get(base + path)
    live = re.search(rb'data-refresh-url="([^"]+)"', body)
    while b'data-test="counting"' in body:
        assert live is not None
        time.sleep(0.5)
        _elapsed, _status, body = get(base + live.group(1).decode().replace("&amp;", "&"))
    return answered, time.perf_counter() - started


def some_ids(rows: int) -> dict[str, int]:
    with Jobs(URL) as jobs:
        failed = jobs.list(JobFilter(state="failed"), limit=1, after=rows // 2).rows[0].id
        ready = jobs.list(JobFilter(state="ready"), limit=1, after=rows * 7 // 10).rows[0].id
    return {"failed": failed, "ready": ready}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-log2", type=int, default=10, help="doublings of 1,000 rows")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the database")
    args = parser.parse_args()
    expected = SEED << args.rows_log2
    try:
        existing = row_count()
    except pymysql.err.OperationalError:
        existing = 0
    if not (args.keep and existing == expected):
        print(
            f"building {expected:,} rows (1,000 seed rows doubled {args.rows_log2} times) ... ",
            end="",
            flush=True,
        )
        print(f"{build(args.rows_log2):.1f} s")
    rows = row_count()
    ids = some_ids(rows)

    dashboard = djmw.web.app(URL)
    try:
        with ws.served(dashboard) as base:
            cold_overview = get(base + "/")[0]
            cold_failures = get(base + "/failures")[0]
            # Let the background reads finish, so the pages show their summaries.
            summary_overview = wait_summary(dashboard, "overview")
            summary_failures = wait_summary(dashboard, "failures")
            pages = [
                ("overview (counts + charts, from the summary)", "/"),
                ("overview live fragment", "/fragments/overview"),
                ("list: all", "/jobs?state=all"),
                ("list: ready", "/jobs?state=ready"),
                ("list: scheduled", "/jobs?state=scheduled"),
                ("list: running", "/jobs?state=running"),
                ("list: failed", "/jobs?state=failed"),
                ("list: stuck (no row is stuck: scans the table)", "/jobs?state=stuck"),
                (
                    "list: failed, a page at 90 % of the ids",
                    f"/jobs?state=failed&after={rows * 9 // 10}",
                ),
                ("list: failed, queue mailers", "/jobs?state=failed&queue=mailers"),
                ("list: failed, name User.*", "/jobs?state=failed&name=User.%2A"),
                ("list: failed, error contains SMTP", "/jobs?state=failed&error=SMTP"),
                ("job: a failed row", f"/jobs/{ids['failed']}"),
                ("job: a ready row", f"/jobs/{ids['ready']}"),
                ("failures (from the summary)", "/failures"),
            ]
            bulk = [
                "/bulk?action=retry&state=failed&queue=mailers",
                "/bulk?action=delete&state=failed&error=SMTP",
            ]
            print(f"\n{rows:,} rows in delayed_jobs (MariaDB); times over HTTP on 127.0.0.1\n")
            print(f"{'page':<62} {'median':>8} {'worst':>8}  status")
            for label, path in pages:
                median, worst, status = timed(base, path)
                print(f"{label:<62} {median * 1000:6.0f} ms {worst * 1000:6.0f} ms  {status}")
            print()
            for path in bulk:
                answered, shown = count_shown(base, path)
                label = f"bulk confirmation {path.split('&', 1)[1]}: answer / count shown"
                print(f"{label:<62} {answered * 1000:6.0f} ms {shown * 1000:6.0f} ms")
            print(
                f"{'first overview request, before any summary (shows counting)':<62} {cold_overview * 1000:6.0f} ms"
            )
            print(
                f"{'first failures request, before any summary (shows grouping)':<62} {cold_failures * 1000:6.0f} ms"
            )
            print(
                f"{'background read: stats + timeline (whole table)':<62} {summary_overview * 1000:6.0f} ms"
            )
            print(
                f"{'background read: failure groups (newest 10,000 broken rows)':<62} {summary_failures * 1000:6.0f} ms"
            )
    finally:
        dashboard.close()
    if not args.keep:
        conn = connect(None)
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        conn.close()


def wait_summary(dashboard: djmw.web.Dashboard, kind: str) -> float:
    """Wait for the first summary of ``kind`` (``overview``, ``failures``); return how
    long its background read took."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for key, entry in list(dashboard.summaries._entries.items()):
            name = key if isinstance(key, str) else key[0]  # type: ignore[index]
            done = entry.future is not None and entry.future.done()
            if name == kind and entry.snapshot is not None and done:
                return entry.snapshot.duration
        time.sleep(0.1)
    msg = f"the {kind} summary was not read within 120 s"
    raise SystemExit(msg)


if __name__ == "__main__":
    main()
