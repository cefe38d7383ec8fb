"""The operations commands on a MariaDB table of 1,000,000 rows, and a worker's claim
latency while ``djmw jobs prune`` deletes a million failed rows.

``reads``: fills ``delayed_jobs`` with a million rows (70 % ready, 10 % scheduled, 1 %
running, 19 % failed; three queues; three job shapes) and times the commands as an
operator runs them (``djmw ...`` in a new process: Python start-up included), then the
main ones through the Python API in one process, best of 3 each.

``prune``: fills a million failed rows older than 30 days (behind the ready jobs in the
claim's index order) plus 60,000 ready no-op jobs, starts a real djmw worker in another
process, and records the time of each of its claims (``reserve`` / ``finish_and_reserve``:
lock and read the next job, with the previous job's outcome) before, during and after
``djmw jobs prune --failed-older-than 30d --yes``: what a prune costs the workers.

``prune-202``: the same with 200,000 failed rows ahead of the ready ones (delayed_job
issue 202: every claim walks past the kept failed rows, which is why pruning matters).

Run: ``.venv/bin/python benchmarks/operations.py [reads|prune|prune-202|all]`` (``all``
is reads and prune; MariaDB on 127.0.0.1, as ``scripts/test`` starts it). Each part
takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pymysql

from djmw.backends.mysql import MysqlBackend
from djmw.backends.url import parse_url

ROOT = Path(__file__).resolve().parents[1]
DJMW = [sys.executable, "-m", "djmw"]
SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
DATABASE = "djmw_bench_operations"
URL = f"mysql://root@127.0.0.1:3306/{DATABASE}"
ROWS = 1_000_000

STRUCT = "CONCAT('--- !ruby/struct:NewsletterJob\\ntext: hello ', seq, '\\nemails:\\n- a@b.c\\n')"
METHOD = (
    "CONCAT('--- !ruby/object:Delayed::PerformableMethod\\nobject: !ruby/class ''User''\\n"
    "method_name: :cleanup\\nargs:\\n- ', seq, '\\n')"
)
NIGHTLY = "CONCAT('--- !ruby/struct:Reports::Nightly\\ndate: ''2026-01-', seq % 28 + 1, '''\\n')"


def connect() -> Any:
    return pymysql.connect(**SERVER, database=DATABASE, autocommit=True)


def fresh_database() -> None:
    conn = pymysql.connect(**SERVER, autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cursor.execute(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4")
    conn.close()
    backend = MysqlBackend(parse_url(URL))
    backend.create_schema()
    backend.close()


def drop_database() -> None:
    conn = pymysql.connect(**SERVER, autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    conn.close()


def fill(sql: str) -> float:
    started = time.perf_counter()
    conn = connect()
    with conn.cursor() as cursor:
        cursor.execute(sql)
    conn.close()
    return time.perf_counter() - started


COLUMNS = (
    "priority, attempts, handler, last_error, run_at, locked_at, locked_by, failed_at, "
    "queue, created_at, updated_at"
)


def fill_mixed() -> float:
    """A million rows: by seq % 100, 0-69 ready, 70-79 scheduled, 80 running, 81-99 failed."""
    now = "UTC_TIMESTAMP()"
    state = "seq % 100"
    return fill(
        f"INSERT INTO delayed_jobs ({COLUMNS}) SELECT seq % 3, "
        f"IF({state} >= 81, 25, IF({state} BETWEEN 70 AND 79, seq % 5, 0)), "
        f"CASE seq % 3 WHEN 0 THEN {STRUCT} WHEN 1 THEN {METHOD} ELSE {NIGHTLY} END, "
        f"IF({state} >= 81 OR {state} BETWEEN 75 AND 79, "
        f"CONCAT('Net::ReadTimeout ', seq % 7, '\\napp/jobs/x.rb:1:in `perform'''), NULL), "
        f"CASE WHEN {state} BETWEEN 70 AND 79 THEN {now} + INTERVAL seq % 3600 SECOND "
        f"ELSE {now} - INTERVAL (1000000 - seq) SECOND END, "
        f"IF({state} = 80, {now} - INTERVAL seq % 600 SECOND, NULL), "
        f"IF({state} = 80, CONCAT('host:web', seq % 8, ' pid:', seq % 8), NULL), "
        f"IF({state} >= 81, {now} - INTERVAL (1000000 - seq) SECOND, NULL), "
        f"ELT(seq % 3 + 1, 'default', 'mailers', 'reports'), {now}, {now} "
        f"FROM seq_1_to_{ROWS}"
    )


def timed(args: list[str], runs: int = 3) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(
            [*DJMW, *args, "--database", URL], capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - started
        if proc.returncode not in (0, 1):
            raise SystemExit(f"djmw {' '.join(args)} failed:\n{proc.stderr}")
        best, out = min(best, elapsed), proc.stdout
    return best, out


def reads() -> None:
    fresh_database()
    print(f"filling {ROWS:,} mixed rows ... ", end="", flush=True)
    print(f"{fill_mixed():.1f} s")
    started = time.perf_counter()
    subprocess.run([*DJMW, "--version"], capture_output=True, check=True)
    print(f"python + djmw start-up (djmw --version): {time.perf_counter() - started:.2f} s")
    commands = [
        ["jobs", "stats"],
        ["jobs", "stats", "--by", "state"],
        ["jobs", "list", "--limit", "50"],
        ["jobs", "list", "--limit", "50", "--state", "ready"],
        ["jobs", "list", "--limit", "50", "--state", "failed"],
        ["jobs", "list", "--limit", "50", "--state", "running"],
        ["jobs", "list", "--limit", "50", "--after", "900000"],
        ["jobs", "list", "--limit", "50", "--queue", "mailers", "--state", "scheduled"],
        ["jobs", "list", "--limit", "50", "--name", "Reports::*"],
        ["jobs", "list", "--limit", "50", "--json"],
        ["check", "--ignore-failed"],
    ]
    print(f"{'command':<72} {'best of 3':>9}")
    for args in commands:
        elapsed, out = timed(args)
        last = out.strip().splitlines()[-1] if out.strip() else ""
        if "--json" in args:
            last = f"{json.loads(out)['count']} rows (JSON)"
        print(f"djmw {' '.join(args):<67} {elapsed:>7.2f} s   ({last})")
    in_process()
    drop_database()


def in_process() -> None:
    """The same through the Python API in this process (no start-up), best of 3."""
    from djmw.admin import JobFilter, Jobs

    calls = {
        "Jobs.stats()": lambda jobs: jobs.stats(),
        "Jobs.stats() on one connection": lambda jobs: Jobs(URL, scan_connections=1).stats(),
        "Jobs.list(limit=50)": lambda jobs: jobs.list(limit=50),
        "Jobs.list(JobFilter(state='running'), limit=50)": lambda jobs: jobs.list(
            JobFilter(state="running"), limit=50
        ),
    }
    with Jobs(URL) as jobs:
        for label, call in calls.items():
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                call(jobs)
                best = min(best, time.perf_counter() - started)
            print(f"{label:<72} {best:>7.2f} s")


# -- prune under load -----------------------------------------------------------------
class TimedBackend(MysqlBackend):
    """The worker's real backend, timing each claim."""

    claims: list[tuple[float, float]]

    def reserve(self, request: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().reserve(request)
        finally:
            self.claims.append((time.time(), time.perf_counter() - started))

    def finish_and_reserve(self, job: Any, outcome: Any, request: Any) -> Any:
        started = time.perf_counter()
        try:
            return MysqlBackend.finish_and_reserve(self, job, outcome, request)
        finally:
            self.claims.append((time.time(), time.perf_counter() - started))


def fill_failed(priority: int, rows: int) -> float:
    """``rows`` failed rows, failed (and due) 31 to 43 days ago, at ``priority``."""
    return fill(
        f"INSERT INTO delayed_jobs ({COLUMNS}) SELECT {priority}, 25, {STRUCT}, "
        "'Net::ReadTimeout\\napp/jobs/x.rb:1', "
        "UTC_TIMESTAMP() - INTERVAL 31 DAY - INTERVAL (1000000 - seq) SECOND, "
        "UTC_TIMESTAMP() - INTERVAL 31 DAY, 'host:old pid:1', "
        "UTC_TIMESTAMP() - INTERVAL 31 DAY - INTERVAL (1000000 - seq) SECOND, "
        f"'default', UTC_TIMESTAMP(), UTC_TIMESTAMP() FROM seq_1_to_{rows}"
    )


def fill_ready(count: int) -> float:
    return fill(
        f"INSERT INTO delayed_jobs ({COLUMNS}) SELECT 5, 0, '--- !ruby/struct:NoopJob {{}}\\n', "
        "NULL, UTC_TIMESTAMP() - INTERVAL 1 MINUTE, NULL, NULL, NULL, 'default', "
        f"UTC_TIMESTAMP(), UTC_TIMESTAMP() FROM seq_1_to_{count}"
    )


def percentiles(values: list[float]) -> str:
    if not values:
        return "no claims"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (
        f"{len(values):>6} claims  p50 {at(0.5):7.1f} ms  p95 {at(0.95):7.1f} ms  "
        f"p99 {at(0.99):7.1f} ms  max {ordered[-1] * 1000:7.1f} ms  "
        f"mean {statistics.fmean(values) * 1000:6.1f} ms"
    )


def prune_under_load(layout: str, failed_priority: int, rows: int, settle: float = 8.0) -> None:
    fresh_database()
    print(f"\n[{layout}] filling {rows:,} failed rows at priority {failed_priority} ... ", end="")
    print(
        f"{fill_failed(failed_priority, rows):.1f} s; 60,000 ready jobs at priority 5 ... ", end=""
    )
    print(f"{fill_ready(60_000):.1f} s")
    out = Path(tempfile.gettempdir()) / f"djmw_claims_{os.getpid()}.json"
    budget = 900.0
    worker = subprocess.Popen(
        [sys.executable, __file__, "claimer", str(budget), str(out)], cwd=ROOT
    )
    time.sleep(settle)
    started = time.time()
    proc = subprocess.run(
        [*DJMW, "jobs", "prune", "--failed-older-than", "30d", "--yes", "--database", URL],
        capture_output=True,
        text=True,
        check=True,
    )
    ended = time.time()
    time.sleep(settle)
    worker.terminate()  # SIGTERM: the claimer stops its worker and writes its figures
    worker.wait(60)
    print(f"  {proc.stdout.strip()} in {ended - started:.1f} s")
    conn = connect()
    with conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM delayed_jobs")
        (left,) = cursor.fetchone()
    conn.close()
    print(f"  rows left: {left:,} (ready jobs not yet run)")
    claims = json.loads(out.read_text()) if out.exists() else []
    out.unlink(missing_ok=True)
    before = [c for t, c in claims if t < started]
    during = [c for t, c in claims if started <= t <= ended]
    after = [c for t, c in claims if t > ended]
    print(f"  claim latency before the prune: {percentiles(before)}")
    print(f"  claim latency during the prune: {percentiles(during)}")
    print(f"  claim latency after the prune:  {percentiles(after)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    choices = ["reads", "prune", "prune-202", "all", "claimer"]
    parser.add_argument("what", nargs="?", default="all", choices=choices)
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    if args.what == "claimer":
        claimer_until_terminated(float(args.rest[0]), args.rest[1])
        return
    print(
        f"load average at start: {os.getloadavg()[0]:.1f} (this machine has {os.cpu_count()} cores)"
    )
    try:
        if args.what in ("reads", "all"):
            reads()
        if args.what in ("prune", "all"):
            prune_under_load("failed rows behind the ready ones", failed_priority=10, rows=ROWS)
        if args.what == "prune-202":
            # delayed_job issue 202: the claim walks past every kept failed row.
            prune_under_load("failed rows ahead of the ready ones", failed_priority=0, rows=200_000)
    finally:
        drop_database()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def claimer_until_terminated(seconds: float, out: str) -> None:
    """``claimer``, writing its figures when the parent terminates it."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=claimer_with_event, args=(stop, seconds, out))
    thread.start()
    while thread.is_alive():
        thread.join(0.2)


def claimer_with_event(stop: threading.Event, seconds: float, out: str) -> None:
    import djmw

    claims: list[tuple[float, float]] = []

    def factory() -> TimedBackend:
        backend = TimedBackend(parse_url(URL))
        backend.claims = claims
        return backend

    handlers = djmw.Handlers()
    handlers.add("NoopJob", lambda job: None)
    worker = djmw.Worker(handlers=handlers, backend=factory, sleep_delay=0.05)
    worker.start()
    stop.wait(seconds)
    worker.stop()
    worker.join(60)
    Path(out).write_text(json.dumps(claims))


if __name__ == "__main__":
    main()
