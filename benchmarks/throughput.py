"""Jobs per second on one MariaDB: Ruby's delayed_job worker, a raw PyMySQL loop, djmw.

Each contender drains the same number of no-op jobs from a fresh delayed_jobs table, one
worker, on the same server; every contender logs at its usual level to a null stream.
Run: ``.venv/bin/python benchmarks/throughput.py [--jobs 5000]`` (MariaDB on 127.0.0.1
and Debian's ruby-delayed-job are what ``scripts/test`` installs).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pymysql

import djmw
from djmw.backends.mysql import MysqlBackend

ROOT = Path(__file__).resolve().parents[1]
SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
HANDLER = "--- !ruby/struct:NoopJob\nn: 1\n"


def fresh_table(database: str, jobs: int) -> str:
    conn = pymysql.connect(**SERVER, autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    conn.close()
    url = f"mysql://root@127.0.0.1:3306/{database}"
    backend = djmw.open_backend(url)
    assert isinstance(backend, MysqlBackend)
    backend.create_schema()
    now = backend.clock().replace(microsecond=0)
    with backend.connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO delayed_jobs (priority, attempts, handler, run_at, created_at, updated_at) "
            "VALUES (0, 0, %s, %s, %s, %s)",
            [(HANDLER, now, now, now)] * jobs,
        )
    backend.close()
    return url


def run_ruby(url: str) -> float:
    env = {**os.environ, "DJ_DATABASE": url.replace("mysql://", "mysql2://")}
    out = subprocess.run(
        ["ruby", str(ROOT / "benchmarks" / "ruby_worker.rb")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run_raw(url: str) -> float:
    """The floor: the same SKIP LOCKED claim and DELETE, no decoding, no chain."""
    database = url.rsplit("/", 1)[1]
    conn = pymysql.connect(**SERVER, database=database, autocommit=True)
    started = time.perf_counter()
    with conn.cursor() as cursor:
        while True:
            conn.begin()
            cursor.execute(
                "SELECT id, handler FROM delayed_jobs WHERE run_at <= UTC_TIMESTAMP() AND locked_at IS NULL "
                "AND failed_at IS NULL ORDER BY priority, run_at LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
            row = cursor.fetchone()
            if row is None:
                conn.rollback()
                break
            cursor.execute(
                "UPDATE delayed_jobs SET locked_at = UTC_TIMESTAMP(), locked_by = 'raw' WHERE id = %s",
                (row[0],),
            )
            conn.commit()
            cursor.execute("DELETE FROM delayed_jobs WHERE id = %s", (row[0],))
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def run_djmw(url: str) -> float:
    handlers = djmw.Handlers({"NoopJob": lambda job: None})
    logger = logging.getLogger("djmw")
    logger.handlers[:] = [logging.StreamHandler(open(os.devnull, "w"))]  # noqa: SIM115
    logger.setLevel(logging.INFO)
    logger.propagate = False
    worker = djmw.Worker(database=url, handlers=handlers, exit_on_complete=True, name="bench")
    started = time.perf_counter()
    worker.run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    results = {}
    for name, runner in (
        ("ruby delayed_job 4.1.9", run_ruby),
        ("raw PyMySQL loop", run_raw),
        ("djmw", run_djmw),
    ):
        url = fresh_table("djmw_bench", args.jobs)
        elapsed = runner(url)
        results[name] = args.jobs / elapsed
        print(
            f"{name:24} {args.jobs} jobs in {elapsed:7.2f} s = {results[name]:8.0f} jobs/s",
            flush=True,
        )
    ratio = results["djmw"] / results["ruby delayed_job 4.1.9"]
    share = results["djmw"] / results["raw PyMySQL loop"]
    print(f"djmw / ruby = {ratio:.2f}x (target 3x); djmw / raw loop = {share:.0%}")
    sys.exit(0)


if __name__ == "__main__":
    main()
