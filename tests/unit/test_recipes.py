"""Every recipe runs: each is dropped into a worker over the in-memory backend."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from djmw import Handlers, Job, Worker, default_middlewares
from djmw.testing import InMemoryBackend, ManualClock
from recipes.delayed_job_parity import parity_middlewares
from recipes.jittered_backoff import jittered_retry
from recipes.tag_log_lines import TagLogLines, install_job_filter


def failing(job: Job) -> None:
    msg = "boom"
    raise ValueError(msg)


def test_parity_chain_deletes_failed_jobs() -> None:
    """The parity chain deletes a job once its retries are used up, as delayed_job does."""
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    job_id = backend.enqueue("--- !ruby/struct:FailJob\nn: 1\n")
    handlers = Handlers({"FailJob": failing})
    worker = Worker(
        handlers=handlers,
        backend=backend.factory(),
        clock=clock,
        name="w",
        middlewares=parity_middlewares(handlers, max_attempts=2),
    )
    assert worker.work_off(1) == (0, 1)
    assert backend.rows[job_id].run_at == clock() + timedelta(seconds=6)
    clock.advance(60)
    assert worker.work_off(1) == (0, 1)
    assert job_id not in backend.rows


def test_jittered_retry_stays_within_its_bounds() -> None:
    """The jittered backoff waits base·2^(n-1) plus at most the jitter, capped."""
    retry = jittered_retry(base=5, cap=100, jitter=10)
    for attempts, floor in ((1, 5), (2, 10), (3, 20), (10, 100)):
        delays = {retry.backoff(attempts) for _ in range(50)}
        assert all(floor <= float(d) <= floor + 10 for d in delays)  # type: ignore[arg-type]
        assert len(delays) > 1


def test_tag_log_lines_tags_records_logged_during_the_job(caplog: pytest.LogCaptureFixture) -> None:
    """Records logged while a job runs carry its id and name; others carry '-'."""
    logger = logging.getLogger("recipe-test")
    handler = logging.Handler()
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    install_job_filter(logger)
    backend = InMemoryBackend(clock=ManualClock())
    job_id = backend.enqueue("--- !ruby/struct:LogJob\nn: 1\n")
    handlers = Handlers({"LogJob": lambda job: logger.info("inside")})
    chain = default_middlewares(handlers)
    chain.insert(1, TagLogLines())
    Worker(handlers=handlers, backend=backend.factory(), middlewares=chain, name="w").work_off(1)
    logger.info("outside")
    tags = [(r.getMessage(), r.job_id, r.job_name) for r in records]  # type: ignore[attr-defined]
    assert tags == [("inside", job_id, "LogJob"), ("outside", "-", "-")]
