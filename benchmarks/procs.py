"""The worker processes the benchmarks start: djmw, and the raw PyMySQL floor.

``python benchmarks/procs.py djmw URL INDEX [--prefetch K] [--log FILE] [--ids FILE]``
and ``python benchmarks/procs.py raw URL INDEX`` print ``ready`` once connected, wait
for a line on standard input, work until the table has nothing left, and print one JSON
line: jobs run, CPU seconds of the process (all threads) and the end time. ``djmw`` logs
at INFO to ``--log`` as ``djmw work`` does (delayed_job's lines through LineHandler).

``python benchmarks/procs.py sql URL INDEX`` is djmw's SQL alone: the MariaDB
backend's one-round-trip finish-and-claim (``finish_and_reserve``) in a loop, with the
worker's class-aware request, and no decoding, chain, logging or loop around it.

``--rss-every N`` adds the process's RSS every N jobs (benchmarks/memory.py), and
``--latency`` prints a line per job start and keeps running until standard input
closes (benchmarks/latency.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path

import pymysql

import djmw
from djmw._clock import utc_now
from djmw.backends import parse_url
from djmw.backends.base import ReserveRequest
from djmw.logs import DelayedJobFormatter, LineHandler
from djmw.outcome import Succeeded

_EPOCH = datetime(1970, 1, 1)  # run_at is naive UTC


def rss_kib() -> int:
    """The resident set size of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def configure_log(path: str | None) -> None:
    logger = logging.getLogger("djmw")
    stream = open(path or "/dev/null", "a")  # noqa: SIM115 - open for the process's life
    handler = LineHandler(stream)
    handler.setFormatter(DelayedJobFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run_djmw(args: argparse.Namespace) -> dict[str, object]:
    configure_log(args.log)
    ran: list[int] = []  # kept only for --ids: 100,000 ids would be 3.6 MiB of RSS
    count = 0
    rss: list[tuple[int, int]] = []

    def noop(job: djmw.Job) -> None:
        nonlocal count
        count += 1
        if args.ids:
            ran.append(job.id)
        if args.rss_every and count % args.rss_every == 0:
            rss.append((count, rss_kib()))
        if args.latency:
            run_at = (job.run_at - _EPOCH).total_seconds() if job.run_at else None
            print(json.dumps({"id": job.id, "start": time.time(), "run_at": run_at}), flush=True)

    worker = djmw.Worker(
        database=args.url,
        handlers=djmw.Handlers({"NoopJob": noop}),
        name=f"djmw.{args.index} bench",
        exit_on_complete=not args.latency,
        prefetch=args.prefetch,
    )
    worker.prepare()
    if args.latency:
        worker.start()
        while worker.status != "sleeping":
            time.sleep(0.01)
        print("ready", flush=True)
        sys.stdin.read()  # until the benchmark closes it
        worker.stop()
        worker.join()
        return {"jobs": count}
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    worker.run()
    end = time.time()
    cpu = time.process_time() - cpu
    if args.ids:
        Path(args.ids).write_text("\n".join(map(str, ran)))
    return {"jobs": count, "cpu": cpu, "end": end, "rss": rss}


def run_raw(args: argparse.Namespace) -> dict[str, object]:
    """The floor: a SKIP LOCKED claim, then a DELETE (two commits per job, no decoding)."""
    url = parse_url(args.url)
    conn = pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.user or "root",
        password=url.password or "",
        database=url.database,
        autocommit=True,
    )
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    jobs = 0
    name = f"raw.{args.index}"
    with conn.cursor() as cursor:
        while True:
            conn.begin()
            cursor.execute(
                "SELECT id, handler FROM delayed_jobs WHERE run_at <= UTC_TIMESTAMP() "
                "AND locked_at IS NULL AND failed_at IS NULL ORDER BY priority, run_at "
                "LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
            row = cursor.fetchone()
            if row is None:
                conn.rollback()
                break
            cursor.execute(
                "UPDATE delayed_jobs SET locked_at = UTC_TIMESTAMP(), locked_by = %s WHERE id = %s",
                (name, row[0]),
            )
            conn.commit()
            cursor.execute("DELETE FROM delayed_jobs WHERE id = %s", (row[0],))
            jobs += 1
    end = time.time()
    cpu = time.process_time() - cpu
    conn.close()
    return {"jobs": jobs, "cpu": cpu, "end": end}


def run_sql(args: argparse.Namespace) -> dict[str, object]:
    """djmw's claim and write with nothing around them: the floor of the SQL it sends."""
    backend = djmw.open_backend(args.url)
    name = f"djmw-sql.{args.index}"

    def request() -> ReserveRequest:
        return ReserveRequest(
            worker_name=name, now=utc_now(), max_run_time=14400, names=("NoopJob",)
        )

    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    jobs = 0
    job = backend.reserve(request())
    while job is not None:
        jobs += 1
        job = backend.finish_and_reserve(job, Succeeded(), request())
    end = time.time()
    cpu = time.process_time() - cpu
    backend.close()
    return {"jobs": jobs, "cpu": cpu, "end": end}


RUNNERS = {"djmw": run_djmw, "raw": run_raw, "sql": run_sql}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(RUNNERS))
    parser.add_argument("url")
    parser.add_argument("index", type=int)
    parser.add_argument("--prefetch", type=int, default=1)
    parser.add_argument("--log")
    parser.add_argument("--ids")
    parser.add_argument("--rss-every", type=int, default=0)
    parser.add_argument("--latency", action="store_true")
    args = parser.parse_args()
    result = RUNNERS[args.kind](args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
