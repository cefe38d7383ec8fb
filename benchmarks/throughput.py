"""Jobs per second on one MariaDB: Ruby's delayed_job worker, a raw PyMySQL loop, djmw.

Each run fills a fresh delayed_jobs table with the same no-op Struct jobs (the handler
Ruby writes for ``NoopJob.new(1)``), starts W worker processes of one contender, waits
until every one is booted and connected, then lets them go at once; the run lasts until
the last process finds the table empty. Contenders run round-robin, so each repetition
sees the same machine load, and the figures are medians of the repetitions.

Contenders: ``ruby`` (delayed_job 4.1.9's worker, logging at INFO to a file), ``raw``
(a PyMySQL loop: SKIP LOCKED claim then DELETE, no decoding, no logging: the floor),
``djmw-sql`` (djmw's own claim-and-write SQL through its MariaDB backend, in a loop with
nothing around it: what djmw's statements cost before any job work),
``djmw`` (the default worker and chain, INFO lines to a file, as ``djmw work``) and
``djmw-k20`` (the same with ``prefetch=20``).

Per run it records jobs/s, the worker processes' CPU seconds per job (counted from the
go signal, so interpreter and Rails boot are not charged), the MariaDB server's CPU
seconds per job (the whole server process: other load on a shared server shows up
here), and for djmw the ids each job ran under (duplicates) and deadlock retries.

Run: ``python benchmarks/throughput.py [--jobs 2000] [--processes 1,4,8] [--reps 3]``;
``benchmarks/run`` runs it with the other benchmarks and writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pymysql

import djmw
from djmw.backends.mysql import MysqlBackend

ROOT = Path(__file__).resolve().parents[1]
SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
HANDLER = "--- !ruby/struct:NoopJob\nn: 1\n"
CONTENDERS = ("ruby", "raw", "djmw-sql", "djmw", "djmw-k20")
#: Where a run's database lives; one per benchmark process, dropped at the end.
DATABASE = f"djmw_bench_{os.getpid()}"


def server_url(database: str = DATABASE) -> str:
    return f"mysql://root@127.0.0.1:3306/{database}"


def fresh_table(jobs: int, database: str = DATABASE) -> str:
    """Drop and create ``database`` with a delayed_jobs table holding ``jobs`` no-op rows."""
    conn = pymysql.connect(**SERVER, autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    conn.close()
    url = server_url(database)
    backend = djmw.open_backend(url)
    assert isinstance(backend, MysqlBackend)
    backend.create_schema()
    djmw.enqueue_many(backend, [HANDLER] * jobs)
    backend.close()
    return url


def drop_database(database: str = DATABASE) -> None:
    conn = pymysql.connect(**SERVER, autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    conn.close()


def remaining(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    conn = pymysql.connect(**SERVER, database=database)
    with conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM delayed_jobs")
        (count,) = cursor.fetchone() or (0,)
    conn.close()
    return int(count)


def server_cpu() -> float:
    """CPU seconds the MariaDB server process has used so far (0 when not readable)."""
    for pidfile in ("/run/mysqld/mysqld.pid", "/var/run/mysqld/mysqld.pid"):
        try:
            pid = Path(pidfile).read_text().strip()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def command(
    contender: str, url: str, index: int, workdir: Path
) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if contender == "ruby":
        env["DJ_DATABASE"] = url.replace("mysql://", "mysql2://")
        env["DJ_LOG"] = str(workdir / f"ruby.{index}.log")
        env["DJ_INDEX"] = str(index)
        return ["ruby", str(ROOT / "benchmarks" / "ruby_bench_worker.rb")], env
    procs = [sys.executable, str(ROOT / "benchmarks" / "procs.py")]
    if contender == "raw":
        return [*procs, "raw", url, str(index)], env
    if contender == "djmw-sql":
        return [*procs, "sql", url, str(index)], env
    prefetch = contender.partition("-k")[2] or "1"
    extra = ["--prefetch", prefetch, "--log", str(workdir / f"djmw.{index}.log")]
    extra += ["--ids", str(workdir / f"ids.{index}")]
    return [*procs, "djmw", url, str(index), *extra], env


def run_once(contender: str, jobs: int, processes: int) -> dict[str, object]:
    """One timed run of ``processes`` workers of ``contender`` over ``jobs`` fresh rows."""
    url = fresh_table(jobs)
    with tempfile.TemporaryDirectory(prefix="djmw-bench-") as tmp:
        workdir = Path(tmp)
        children = []
        for index in range(processes):
            argv, env = command(contender, url, index, workdir)
            children.append(
                subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
            )
        for child in children:
            line = child.stdout.readline() if child.stdout else ""
            if line.strip() != "ready":
                for other in children:
                    other.kill()
                raise RuntimeError(f"{contender} worker did not start: {line!r}")
        server_before = server_cpu()
        started = time.time()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, _ = child.communicate(timeout=1800)
            if child.returncode != 0:
                raise RuntimeError(f"{contender} worker exited {child.returncode}: {out[-500:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        server_after = server_cpu()
        ended = max(float(result["end"]) for result in results)
        left = remaining(url)
        ran = sum(int(result["jobs"]) for result in results)
        run: dict[str, object] = {
            "contender": contender,
            "processes": processes,
            "jobs": jobs,
            "ran": ran,
            "left": left,
            "seconds": ended - started,
            "jobs_per_s": (jobs - left) / (ended - started),
            "cpu_ms_per_job": 1000 * sum(float(r["cpu"]) for r in results) / max(ran, 1),
            "server_cpu_ms_per_job": 1000 * (server_after - server_before) / max(ran, 1),
        }
        if contender == "ruby":
            run["escaped_deadlocks"] = sum(int(r.get("deadlocks", 0)) for r in results)
        if contender in ("djmw", "djmw-k20"):
            ids: list[str] = []
            for index in range(processes):
                ids += (workdir / f"ids.{index}").read_text().split()
            logs = "".join(p.read_text() for p in workdir.glob("djmw.*.log"))
            run["duplicates"] = len(ids) - len(set(ids))
            run["deadlock_retries"] = logs.count("Retrying a write after")
            run["reserve_errors"] = logs.count("Error while reserving job")
    return run


def matrix(
    jobs: int, processes: Sequence[int], reps: int, contenders: Sequence[str] = CONTENDERS
) -> list[dict[str, object]]:
    """Every contender at every process count, round-robin, ``reps`` times.

    A run that fails (a server restart by someone else, say) is retried once.
    """
    runs = []
    for rep in range(reps):
        for count in processes:
            for contender in contenders:
                for attempt in range(2):
                    try:
                        run = run_once(contender, jobs, count)
                        break
                    except (RuntimeError, pymysql.err.MySQLError) as exc:
                        print(f"  {contender} W={count}: {exc}; again", file=sys.stderr)
                        if attempt:
                            raise
                        time.sleep(5)
                run["rep"] = rep
                runs.append(run)
                print(
                    f"rep {rep + 1}/{reps} W={count} {contender:9} "
                    f"{run['jobs_per_s']:7.0f} jobs/s  cpu {run['cpu_ms_per_job']:.3f} ms/job",
                    flush=True,
                )
    return runs


def medians(runs: list[dict[str, object]], key: str) -> dict[tuple[str, int], float]:
    """Median of ``key`` per (contender, processes)."""
    groups: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        group = (str(run["contender"]), int(run["processes"]))  # type: ignore[call-overload]
        groups.setdefault(group, []).append(float(run[key]))  # type: ignore[arg-type]
    return {group: statistics.median(values) for group, values in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--processes", default="1,4,8")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--json", help="write every run to this file")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    try:
        runs = matrix(args.jobs, counts, args.reps, args.contenders.split(","))
    finally:
        drop_database()
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    rates = medians(runs, "jobs_per_s")
    for (contender, count), rate in sorted(rates.items()):
        print(f"{contender:9} W={count}: {rate:7.0f} jobs/s (median)")


if __name__ == "__main__":
    main()
