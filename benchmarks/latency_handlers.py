"""Handlers for benchmarks/pg_latency.py: record how long each job waited to be picked up.

``LatencyJob`` appends ``<job id> <seconds>`` to the file named by ``DJMW_LATENCY_FILE``:
the time from the row's ``created_at`` (set by Ruby just before its INSERT, naive UTC)
to the moment the job started running in djmw.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from djmw import Handlers, Job

handlers = Handlers()


@handlers.register("LatencyJob")
def latency(job: Job) -> None:
    """Append this job's pickup latency to the record file."""
    started = datetime.now(UTC).replace(tzinfo=None)
    assert job.created_at is not None
    waited = (started - job.created_at).total_seconds()
    with open(os.environ["DJMW_LATENCY_FILE"], "a", encoding="utf-8") as out:
        out.write(f"{job.id} {waited:.6f}\n")
