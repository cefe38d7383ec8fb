"""Orphan recovery time: a worker killed with kill -9 mid-job, the job taken up under a new name.

Each trial starts worker ``a`` on one long job, kills it with SIGKILL at a random moment
of its heartbeat cycle, and starts worker ``b`` (a new name, as a restarted container
gets). It measures the time from the kill to ``b`` running the job again (the row
locked by ``b`` with attempts 1). The bound is ``dead_worker_timeout`` plus one poll
(``sleep_delay``) plus the once-a-second scan: the crash is dated at the dead worker's
last sign of life, which is no later than the kill.

Run: ``.venv/bin/python benchmarks/orphan_recovery.py [--trials 5] [--databases sqlite,mysql,postgresql]
[--heartbeat-interval 1 --dead-worker-timeout 6 --sleep-delay 0.2]``; with no interval
options, djmw's defaults (15 s, 60 s, 5 s: about a minute per trial). MariaDB and
PostgreSQL on 127.0.0.1 are what ``scripts/test`` starts (``DJMW_TEST_PG_URL`` names the
PostgreSQL server, as for the tests).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pymysql

import djmw
from djmw.backends.base import SqlBackend

ROOT = Path(__file__).resolve().parents[1]
LONG_JOB = "--- !ruby/struct:SleepJob\nseconds: 600\n"


PG_SERVER = os.environ.get("DJMW_TEST_PG_URL", "postgresql://djmw:djmw@127.0.0.1:5432")


def fresh_database(dialect: str, folder: Path) -> str:
    if dialect == "sqlite":
        return f"sqlite:///{folder / 'recovery.db'}"
    if dialect == "postgresql":
        with psycopg.connect(f"{PG_SERVER}/djmw", autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "djmw_bench_recovery" WITH (FORCE)')
            conn.execute('CREATE DATABASE "djmw_bench_recovery"')
        return f"{PG_SERVER}/djmw_bench_recovery"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS djmw_bench_recovery")
        cursor.execute("CREATE DATABASE djmw_bench_recovery CHARACTER SET utf8mb4")
    conn.close()
    return "mysql://root@127.0.0.1:3306/djmw_bench_recovery"


def worker(url: str, name: str, options: list[str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "djmw", "work", "--database", url, "--name", name]
    command += ["--handlers", "recovery_handlers:handlers", *options]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "benchmarks")}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def wait_row(db: SqlBackend, job_id: int, locked_by: str, attempts: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        row = db.job(job_id)
        if row is not None and (row.locked_by, row.attempts) == (locked_by, attempts):
            return
        if time.monotonic() > deadline:
            msg = f"job {job_id} not locked by {locked_by} with attempts {attempts}: {row}"
            raise SystemExit(msg)
        time.sleep(0.02)


def trial(url: str, options: list[str], interval: float, timeout: float) -> float:
    db = djmw.open_backend(url)
    db.create_schema()
    db._execute("DELETE FROM delayed_jobs")
    db._execute("DELETE FROM delayed_workers")
    job_id = db.enqueue(LONG_JOB)
    first = worker(url, "a", options)
    try:
        wait_row(db, job_id, "a", 0, 60)
        time.sleep(random.uniform(0, interval))  # anywhere in the heartbeat cycle
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed = time.monotonic()
    second = worker(url, "b", options)
    try:
        wait_row(db, job_id, "b", 1, timeout + 60)
        return time.monotonic() - killed
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait()
        db.close()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--trials", type=int, default=1)
    cli.add_argument("--databases", default="sqlite,mysql,postgresql")
    cli.add_argument("--heartbeat-interval", type=float, default=15.0)
    cli.add_argument("--dead-worker-timeout", type=float, default=60.0)
    cli.add_argument("--sleep-delay", type=float, default=5.0)
    args = cli.parse_args()
    options = [
        "--heartbeat-interval",
        str(args.heartbeat_interval),
        "--dead-worker-timeout",
        str(args.dead_worker_timeout),
        "--sleep-delay",
        str(args.sleep_delay),
    ]
    bound = args.dead_worker_timeout + args.sleep_delay + 1.0
    print(
        f"heartbeat_interval {args.heartbeat_interval:g} s, dead_worker_timeout "
        f"{args.dead_worker_timeout:g} s, sleep_delay {args.sleep_delay:g} s; "
        f"bound: timeout + one poll + the 1 s scan = {bound:g} s"
    )
    with tempfile.TemporaryDirectory() as folder:
        for dialect in args.databases.split(","):
            url = fresh_database(dialect, Path(folder))
            times = [
                trial(url, options, args.heartbeat_interval, args.dead_worker_timeout)
                for _ in range(args.trials)
            ]
            print(
                f"{dialect:10} kill -9 -> job running again under a new name, {len(times)} "
                f"trials: min {min(times):.2f} s, median {statistics.median(times):.2f} s, "
                f"max {max(times):.2f} s"
            )


if __name__ == "__main__":
    main()
