"""RSS of one djmw worker process over 100,000 jobs on MariaDB.

The worker runs the default chain with INFO lines to a file, as ``djmw work`` does,
and samples its resident set size every 1,000 jobs. Growth is the RSS at the end minus
the RSS after the first 5,000 jobs (interpreter, caches and buffers warmed up).
``--prefetch`` (default 20) only shortens the run; tests/unit/test_memory_growth.py
guards both settings against a per-job leak.

Run: ``python benchmarks/memory.py [--jobs 100000] [--prefetch 20]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.throughput import ROOT, drop_database, fresh_table

WARM = 5_000


def measure(jobs: int, prefetch: int) -> dict[str, object]:
    url = fresh_table(jobs)
    with tempfile.TemporaryDirectory(prefix="djmw-memory-") as tmp:
        argv = [sys.executable, str(ROOT / "benchmarks" / "procs.py"), "djmw", url, "0"]
        argv += ["--prefetch", str(prefetch), "--rss-every", "1000", "--log", f"{tmp}/djmw.log"]
        started = time.monotonic()
        out = subprocess.run(argv, input="go\n", capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    samples = [(int(n), int(kib)) for n, kib in result["rss"]]
    warm = next(kib for n, kib in samples if n >= WARM)
    end = samples[-1][1]
    return {
        "jobs": int(result["jobs"]),
        "prefetch": prefetch,
        "seconds": time.monotonic() - started,
        "rss_first_mib": samples[0][1] / 1024,
        "rss_warm_mib": warm / 1024,
        "rss_end_mib": end / 1024,
        "growth_mib": (end - warm) / 1024,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--prefetch", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        result = measure(args.jobs, args.prefetch)
    finally:
        drop_database()
    shown = {key: value for key, value in result.items() if key != "samples"}
    print(json.dumps(shown, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
