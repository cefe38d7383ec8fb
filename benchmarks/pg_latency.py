"""Pickup latency on PostgreSQL, with and without the notify trigger.

An idle fleet of 2 djmw worker processes (``djmw work --processes 2 --sleep-delay 5``)
works a table while Ruby enqueues jobs one at a time (``Delayed::Job.enqueue``, 0.05 to
0.25 s apart). Each job's latency is from its ``created_at`` (Ruby's INSERT) to the start
of its perform function in djmw (just after the RUNNING line). Printed: p50, p99 and max,
first with the trigger (``djmw schema --notify``), then without it (polling every 5 s).

Run: ``.venv/bin/python benchmarks/pg_latency.py [--jobs 100]`` with PostgreSQL from
``scripts/setup_postgresql.sh`` and Ruby's delayed_job with ruby-pg from
``scripts/setup_ruby.sh``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("DJMW_TEST_PG_URL", "postgresql://djmw:djmw@127.0.0.1:5432")
DATABASE = "djmw_latency"


def prepare(notify: bool) -> str:
    """A fresh database with delayed_jobs, and the trigger when ``notify``."""
    with psycopg.connect(f"{SERVER}/djmw", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    url = f"{SERVER}/{DATABASE}"
    flags = ["--notify"] if notify else []
    subprocess.run(
        [sys.executable, "-m", "djmw", "schema", "--database", url, *flags],
        check=True,
        capture_output=True,
    )
    return url


def measure(notify: bool, jobs: int) -> list[float]:
    """Run the fleet while Ruby enqueues ``jobs`` jobs; return their latencies in seconds."""
    url = prepare(notify)
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "latency.txt"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DJMW_LATENCY_FILE": str(record)}
        work = ["work", "--database", url, "--processes", "2", "--sleep-delay", "5"]
        fleet = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "djmw",
                *work,
                "--handlers",
                "benchmarks.latency_handlers:handlers",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)  # both workers started and idle
            subprocess.run(
                ["ruby", str(ROOT / "benchmarks" / "ruby_enqueue.rb"), str(jobs)],
                env={**os.environ, "DJ_DATABASE": url},
                check=True,
                capture_output=True,
            )
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                lines = record.read_text().splitlines() if record.exists() else []
                if len(lines) >= jobs:
                    break
                time.sleep(0.2)
        finally:
            fleet.send_signal(signal.SIGTERM)
            fleet.wait(timeout=60)
        lines = record.read_text().splitlines()
    latencies = [float(line.split()[1]) for line in lines]
    if len(latencies) != jobs:
        msg = f"{len(latencies)} of {jobs} jobs ran"
        raise RuntimeError(msg)
    return latencies


def report(label: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        f"{label:22} {len(ordered):4} jobs  p50 {p50 * 1000:8.1f} ms  p99 {p99 * 1000:8.1f} ms  "
        f"max {ordered[-1] * 1000:8.1f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    report("with the trigger", measure(notify=True, jobs=args.jobs))
    report("without (polling 5 s)", measure(notify=False, jobs=args.jobs))
    print("target: p99 <= 50 ms with the trigger")


if __name__ == "__main__":
    main()
