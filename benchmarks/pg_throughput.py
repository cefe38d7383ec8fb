"""Jobs per second on one PostgreSQL table: Ruby's delayed_job, rubydj-pyworker and djmw.

Each contender drains the same no-op jobs (a ``.delay``-style PerformableMethod handler,
the one shape rubydj-pyworker reads) from the same ``delayed_jobs`` table on the same
server, with W = 1 and W = 4 worker processes. The runs go round-robin (every contender
at W=1, then every one at W=4, repeated ``--rounds`` times) and the best round of each
is reported. Every process loads first, then all start at one wall-clock instant; the
time is from that instant until the last process has finished. Logs go to null streams
at each worker's usual level (INFO).

Run: ``.venv/bin/python benchmarks/pg_throughput.py [--jobs 3000] [--rounds 2]``, with
PostgreSQL from ``scripts/setup_postgresql.sh``, Ruby's delayed_job from
``scripts/setup_ruby.sh`` and rubydj-pyworker in its own venv, never djmw's::

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install rubydj-pyworker==1.2.1

rubydj-pyworker is skipped (and says so) when that interpreter is missing.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("DJMW_TEST_PG_URL", "postgresql://djmw:djmw@127.0.0.1:5432")
DATABASE = "djmw_bench"
HANDLER = (
    "--- !ruby/object:Delayed::PerformableMethod\n"
    "object: !ruby/object:NoopJob\n"
    "  raw_attributes:\n"
    "    n: 1\n"
    "method_name: :perform\n"
    "args: []\n"
)
#: Seconds each contender's processes get to load before the common start.
BOOT = {"ruby": 6.0, "pyworker": 3.0, "djmw": 3.0}


def prepare_database() -> str:
    """(Re)create the benchmark database and its table; return its URL."""
    with psycopg.connect(f"{SERVER}/djmw", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    url = f"{SERVER}/{DATABASE}"
    subprocess.run(
        [sys.executable, "-m", "djmw", "schema", "--database", url],
        check=True,
        capture_output=True,
    )
    return url


def fill(url: str, jobs: int) -> None:
    """Empty the table and insert ``jobs`` ready rows in queue 'default'."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE delayed_jobs")
        conn.execute(
            "INSERT INTO delayed_jobs (priority, attempts, handler, run_at, queue, created_at, "
            "updated_at) SELECT 0, 0, %s, ts, 'default', ts, ts FROM generate_series(1, %s), "
            "(SELECT (now() AT TIME ZONE 'UTC') - interval '1 minute' AS ts) AS t",
            [HANDLER, jobs],
        )
        conn.execute("VACUUM ANALYZE delayed_jobs")


def left(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM delayed_jobs").fetchone()
    return int(row[0]) if row else -1


def command(
    contender: str, url: str, start_at: float, index: int, *, pyworker: str, finish_sql: str
) -> list[str]:
    if contender == "ruby":
        return ["ruby", str(ROOT / "benchmarks" / "ruby_worker.rb")]
    if contender == "pyworker":
        return [pyworker, str(ROOT / "benchmarks" / "pyworker_child.py"), url, str(start_at)]
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--child", url, str(start_at), f"bench.{index}", finish_sql]


def run(
    contender: str, url: str, workers: int, pyworker: str, finish_sql: str = "pipeline"
) -> float:
    """Start ``workers`` processes of ``contender``; return the seconds to drain the table."""
    start_at = time.time() + BOOT[contender]
    env = {**os.environ, "DJ_DATABASE": url, "DJ_START_AT": str(start_at)}
    procs = [
        subprocess.Popen(
            command(contender, url, start_at, index, pyworker=pyworker, finish_sql=finish_sql),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(workers)
    ]
    ends = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            msg = f"{contender} exited {proc.returncode}:\n{out}\n{err}"
            raise RuntimeError(msg)
        ready, end = (float(x) for x in out.strip().splitlines()[-1].split())
        if ready > start_at:
            print(f"  warning: a {contender} process was ready {ready - start_at:.2f} s late")
        ends.append(end)
    remaining = left(url)
    if remaining:
        msg = f"{contender} left {remaining} jobs"
        raise RuntimeError(msg)
    return max(ends) - start_at


def child(url: str, start_at: float, name: str, finish_sql: str) -> None:
    """One djmw worker process: load, wait for the start, drain, print ready and end."""
    import djmw

    handlers = djmw.Handlers({"NoopJob#perform": lambda job: None})
    logger = logging.getLogger("djmw")
    logger.handlers[:] = [logging.StreamHandler(open(os.devnull, "w"))]  # noqa: SIM115
    logger.setLevel(logging.INFO)
    logger.propagate = False
    worker = djmw.Worker(
        database=url,
        handlers=handlers,
        exit_on_complete=True,
        name=name,
        backend_options={"finish_sql": finish_sql},
    )
    worker.prepare()
    ready = time.time()
    time.sleep(max(start_at - ready, 0))
    worker.run()
    print(f"{ready:.6f} {time.time():.6f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--pyworker-python",
        default="/tmp/bench-venv/bin/python",  # noqa: S108 - a venv path
    )
    parser.add_argument(
        "--finish-sql", default="statement", choices=["pipeline", "statement", "separate"]
    )
    parser.add_argument(
        "--only", nargs="+", choices=["ruby", "pyworker", "djmw"], help="run these contenders"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]), args.child[2], args.child[3])
        return
    contenders = list(args.only or ["ruby", "pyworker", "djmw"])
    if "pyworker" in contenders and not Path(args.pyworker_python).exists():
        print(f"rubydj-pyworker skipped: no {args.pyworker_python} (see the docstring)")
        contenders.remove("pyworker")
    url = prepare_database()
    rates: dict[tuple[str, int], list[float]] = {}
    for round_ in range(1, args.rounds + 1):
        for workers in (1, 4):
            for contender in contenders:
                fill(url, args.jobs)
                elapsed = run(contender, url, workers, args.pyworker_python, args.finish_sql)
                rate = args.jobs / elapsed
                rates.setdefault((contender, workers), []).append(rate)
                print(
                    f"round {round_} W={workers} {contender:9} {args.jobs} jobs in "
                    f"{elapsed:6.2f} s = {rate:7.0f} jobs/s",
                    flush=True,
                )
    best: Callable[[str, int], float] = lambda c, w: max(rates[(c, w)])  # noqa: E731
    print("\nbest of rounds, jobs/s (median in brackets):")
    print(f"{'':10}" + "".join(f"{f'W={w}':>20}" for w in (1, 4)))
    for contender in contenders:
        cells = "".join(
            f"{best(contender, w):12.0f} ({statistics.median(rates[(contender, w)]):5.0f})"
            for w in (1, 4)
        )
        print(f"{contender:10}{cells}")
    if "djmw" not in contenders or "ruby" not in contenders:
        return
    for w in (1, 4):
        line = f"W={w}: djmw / ruby = {best('djmw', w) / best('ruby', w):.2f}x (target 3x)"
        if "pyworker" in contenders:
            ratio = best("djmw", w) / best("pyworker", w)
            line += f"; djmw / rubydj-pyworker = {ratio:.2f}x (target 1.3x)"
        print(line)


if __name__ == "__main__":
    main()
