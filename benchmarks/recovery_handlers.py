"""The handler ``benchmarks/orphan_recovery.py`` runs: a job that sleeps ``seconds``."""

from __future__ import annotations

import time

from djmw import Handlers, Job

handlers = Handlers()


@handlers.register("SleepJob")
def sleep(job: Job) -> None:
    """Sleep ``seconds`` (a field of the job) in short steps."""
    deadline = time.monotonic() + float(getattr(job.payload, "fields", {}).get("seconds", 1))
    while time.monotonic() < deadline:
        time.sleep(0.05)
