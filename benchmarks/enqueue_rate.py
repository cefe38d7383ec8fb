"""Rows enqueued per second on MariaDB: Ruby's Delayed::Job.enqueue against djmw.

``ruby``: ``Delayed::Job.enqueue(NoopJob.new(i))`` in a loop (one INSERT each, through
ActiveRecord), timed after boot. ``djmw.enqueue``: one row per call on one connection.
``djmw.enqueue_many``: batches of 1,000 rows, one INSERT statement each. The three run
round-robin; the figures are medians.

Run: ``python benchmarks/enqueue_rate.py [--reps 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import djmw
from benchmarks.throughput import HANDLER, ROOT, drop_database, fresh_table

RUBY_ROWS = 1_000
SINGLE_ROWS = 1_000
BULK_ROWS = 20_000


def ruby_rate() -> float:
    url = fresh_table(0)
    env = {**os.environ, "DJ_DATABASE": url.replace("mysql://", "mysql2://")}
    out = subprocess.run(
        ["ruby", str(ROOT / "benchmarks" / "ruby_enqueue_rate.rb"), str(RUBY_ROWS)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return RUBY_ROWS / float(out.stdout.strip().splitlines()[-1])


def single_rate() -> float:
    backend = djmw.open_backend(fresh_table(0))
    started = time.perf_counter()
    for _ in range(SINGLE_ROWS):
        backend.enqueue(HANDLER)
    elapsed = time.perf_counter() - started
    backend.close()
    return SINGLE_ROWS / elapsed


def bulk_rate() -> float:
    backend = djmw.open_backend(fresh_table(0))
    started = time.perf_counter()
    ids = djmw.enqueue_many(backend, [HANDLER] * BULK_ROWS)
    elapsed = time.perf_counter() - started
    backend.close()
    assert len(ids) == BULK_ROWS
    return BULK_ROWS / elapsed


def measure(reps: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {"ruby": [], "djmw.enqueue": [], "djmw.enqueue_many": []}
    for _ in range(reps):
        rates["ruby"].append(ruby_rate())
        rates["djmw.enqueue"].append(single_rate())
        rates["djmw.enqueue_many"].append(bulk_rate())
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        result = measure(args.reps)
    finally:
        drop_database()
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
