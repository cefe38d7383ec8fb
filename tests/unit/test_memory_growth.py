"""A worker must not keep anything per job: Python memory stays flat over thousands of jobs.

The benchmark (``benchmarks/memory.py``) measures RSS over 100,000 jobs on MariaDB; this
test is the quick guard against a per-job leak, with tracemalloc over the default chain.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tracemalloc
from collections.abc import Iterator

import pytest

from djmw import Handlers, Worker
from djmw.logs import DelayedJobFormatter, LineHandler
from djmw.testing import InMemoryBackend

HANDLER = "--- !ruby/struct:NoopJob\nn: 1\n"
ROUND = 1_000


@contextlib.contextmanager
def info_logging() -> Iterator[None]:
    """The djmw logger at INFO into a discarding stream, as a production worker logs, and
    nothing else: a capturing handler would keep every record."""
    logger = logging.getLogger("djmw")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    with open(os.devnull, "w") as sink:
        handler = LineHandler(sink)
        handler.setFormatter(DelayedJobFormatter())
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            yield
        finally:
            logger.handlers[:], logger.level, logger.propagate = saved
            handler.close()


def _rounds(worker: Worker, backend: InMemoryBackend, count: int) -> None:
    for _ in range(count):
        for _ in range(ROUND):
            backend.enqueue(HANDLER)
        assert worker.work_off(ROUND) == (ROUND, 0)


@pytest.mark.parametrize("prefetch", [1, 10])
def test_five_thousand_jobs_leave_no_memory_behind(prefetch: int) -> None:
    """After a warm-up, 5,000 more jobs through the default chain with INFO logging
    grow traced Python memory by less than 128 KiB: under 27 bytes a job, less than the
    smallest object a per-job leak would keep (a small int in a list: 36 bytes)."""
    backend = InMemoryBackend()
    worker = Worker(
        handlers=Handlers({"NoopJob": lambda job: None}),
        backend=backend.factory(),
        name="w",
        prefetch=prefetch,
    )
    with info_logging():
        _rounds(worker, backend, 2)  # warm-up: caches, the watchdog's heap, logging
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            _rounds(worker, backend, 5)
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 128 * 1024, [str(stat) for stat in after.compare_to(before, "lineno")[:5]]
    assert backend.rows == {}
