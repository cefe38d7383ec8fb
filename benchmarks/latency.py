"""Enqueue-to-start latency of an idle djmw worker on MariaDB, p50 and p99.

Immediate jobs: a worker with the default ``sleep_delay`` (5 s) sits idle; jobs are
enqueued one at a time at random moments, and each one's latency is the time from its
INSERT's return to the start of its perform function. Expect about half the poll
interval: MariaDB cannot tell a worker that a row arrived.

Scheduled jobs: rows with run_at 7, 8, ... seconds ahead (whole seconds, as the
DATETIME column stores them) are enqueued at once; the worker learns of them at its next
poll and then sleeps until each run_at. Latency is the start minus the stored run_at.

Run: ``python benchmarks/latency.py [--immediate 30] [--scheduled 20]``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import djmw
from benchmarks.throughput import HANDLER, ROOT, drop_database, fresh_table

_EPOCH = datetime(1970, 1, 1)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


class IdleWorker:
    """A djmw worker process in latency mode; ``starts`` maps job id -> start time."""

    def __init__(self, url: str) -> None:
        argv = [sys.executable, str(ROOT / "benchmarks" / "procs.py"), "djmw", url, "0"]
        self.process = subprocess.Popen(
            [*argv, "--latency"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.starts: dict[int, float] = {}
        self.run_ats: dict[int, float] = {}
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the latency worker did not start")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            record = json.loads(line)
            if "start" in record:
                self.starts[record["id"]] = record["start"]
                self.run_ats[record["id"]] = record["run_at"]

    def wait_for(self, ids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(job_id in self.starts for job_id in ids):
            if time.monotonic() > deadline:
                raise RuntimeError("jobs did not start in time")
            time.sleep(0.05)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(60)


def immediate(samples: int) -> list[float]:
    url = fresh_table(0)
    worker = IdleWorker(url)
    backend = djmw.open_backend(url)
    enqueued: dict[int, float] = {}
    try:
        for _ in range(samples):
            time.sleep(random.uniform(0.2, 2.0))
            job_id = backend.enqueue(HANDLER)
            enqueued[job_id] = time.time()
        worker.wait_for(list(enqueued), 60)
    finally:
        backend.close()
        worker.close()
    return [worker.starts[job_id] - at for job_id, at in enqueued.items()]


def scheduled(samples: int) -> list[float]:
    url = fresh_table(0)
    worker = IdleWorker(url)
    backend = djmw.open_backend(url)
    first = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(seconds=7)
    rows = [
        djmw.NewJob(handler=HANDLER, run_at=first + timedelta(seconds=i)) for i in range(samples)
    ]
    try:
        ids = djmw.enqueue_many(backend, rows)
        worker.wait_for(ids, samples + 60)
    finally:
        backend.close()
        worker.close()
    return [worker.starts[job_id] - worker.run_ats[job_id] for job_id in ids]


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "samples": len(latencies),
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--immediate", type=int, default=30)
    parser.add_argument("--scheduled", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        result = {
            "immediate": summary(immediate(args.immediate)),
            "scheduled": summary(scheduled(args.scheduled)),
        }
    finally:
        drop_database()
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
