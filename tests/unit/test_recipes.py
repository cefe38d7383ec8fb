"""Every recipe runs: each is dropped into a worker over the in-memory backend."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import djmw
from djmw import Handlers, Job, Rescheduled, Succeeded, Worker, default_middlewares
from djmw.testing import InMemoryBackend, ManualClock, make_job, returning
from recipes.alert_on_failure import AlertOnPermanentFailure, webhook
from recipes.circuit_breaker import CircuitBreaker, CircuitOpen
from recipes.dead_letter import DeadLetter, SqliteDeadLetters
from recipes.delayed_job_parity import parity_middlewares
from recipes.jittered_backoff import jittered_retry
from recipes.limit_concurrency import ConcurrencyLimited, LimitConcurrency
from recipes.rate_limit import RateLimit, RateLimited, TokenBucket
from recipes.tag_log_lines import TagLogLines, install_job_filter
from recipes.transaction_per_job import TransactionPerJob, current_session
from recipes.unique_enqueue import enqueue_unique


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


# -- the production recipes ----------------------------------------------------------------


def _worker(
    backend: InMemoryBackend, handlers: Handlers, clock: ManualClock, *extra: object
) -> Worker:
    chain = default_middlewares(handlers)
    chain[3:3] = extra  # type: ignore[arg-type]
    return Worker(
        handlers=handlers, backend=backend.factory(), clock=clock, middlewares=chain, name="w"
    )


def test_limit_concurrency_puts_back_a_job_over_the_limit_without_charging() -> None:
    """With ReportJob limited to 1, a second concurrent run is put back, attempts unchanged."""
    limit = LimitConcurrency(limits={"ReportJob": 1}, retry_in=7)
    clock = ManualClock()
    job = make_job(name="ReportJob", attempts=2, clock=clock)
    inside = threading.Event()
    release = threading.Event()

    def slow(j: Job) -> Succeeded:
        inside.set()
        release.wait(5)
        return Succeeded()

    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(limit(job, slow)))
    thread.start()
    assert inside.wait(5)
    second = limit(job, returning())
    release.set()
    thread.join(5)
    assert isinstance(second, Rescheduled)
    assert second.attempts == 2
    assert second.run_at == clock() + timedelta(seconds=7)
    assert isinstance(second.error, ConcurrencyLimited)
    assert results == [Succeeded()]
    assert limit(make_job(name="OtherJob"), returning()) == Succeeded()
    assert limit(job, returning()) == Succeeded()  # the slot was given back


def test_token_bucket_and_rate_limit_wait_then_put_back() -> None:
    """The bucket gives `burst` tokens, refills at `rate`; RateLimit sleeps for a near
    token and puts the job back, attempts unchanged, when the token is too far."""
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=2, clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() == 0.0

    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limit = RateLimit(rate=1, burst=1, max_wait=1.5, sleep=sleep, clock=lambda: now[0])
    job = make_job(name="MailJob", attempts=1)
    assert limit(job, returning()) == Succeeded()
    assert limit(job, returning()) == Succeeded()
    assert slept == [pytest.approx(1.0)]
    slow = RateLimit(rate=0.1, burst=1, max_wait=1, sleep=sleep, clock=lambda: now[0])
    assert slow(job, returning()) == Succeeded()
    put_back = slow(job, returning())
    assert isinstance(put_back, Rescheduled)
    assert isinstance(put_back.error, RateLimited)
    assert put_back.attempts == 1


def test_transaction_per_job_commits_success_and_rolls_back_failure(tmp_path: Path) -> None:
    """A handler's writes through current_session() are committed when the job succeeds
    and rolled back when the attempt fails."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (body TEXT)"))

    def write(job: Job) -> None:
        current_session().execute(sa.text("INSERT INTO notes VALUES (:b)"), {"b": job.name})
        if job.name == "BadJob":
            msg = "after the write"
            raise ValueError(msg)

    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    backend.enqueue("--- !ruby/struct:GoodJob\nn: 1\n")
    backend.enqueue("--- !ruby/struct:BadJob\nn: 1\n")
    handlers = Handlers({"GoodJob": write, "BadJob": write})
    worker = _worker(backend, handlers, clock, TransactionPerJob(sessionmaker(engine)))
    assert worker.work_off(2) == (1, 1)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT body FROM notes")).scalars().all() == ["GoodJob"]
    with pytest.raises(RuntimeError, match="no job transaction"):
        current_session()


def test_dead_letter_copies_a_job_that_failed_for_good(tmp_path: Path) -> None:
    """A job whose retries are used up is copied to the dead-letter table with its error;
    a rescheduled attempt is not."""
    store = SqliteDeadLetters(str(tmp_path / "dead.db"))
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    job_id = backend.enqueue("--- !ruby/struct:FailJob\nn: 1\n", queue="q")
    chain = parity_middlewares(Handlers({"FailJob": failing}), max_attempts=2)
    chain.insert(3, DeadLetter(store=store))
    worker = Worker(
        handlers=Handlers({"FailJob": failing}),
        backend=backend.factory(),
        clock=clock,
        middlewares=chain,
        name="w",
    )
    assert worker.work_off(1) == (0, 1)
    assert store.rows() == []
    clock.advance(60)
    assert worker.work_off(1) == (0, 1)
    assert job_id not in backend.rows  # parity chain deleted it; the copy remains
    assert store.rows() == [(job_id, "FailJob", "q", 2, "Traceback (most recent call last):")]
    store.close()


class _Hook(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_alert_on_permanent_failure_posts_once_to_a_webhook() -> None:
    """A permanent failure POSTs one JSON message to the webhook; a retry posts nothing."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.bodies = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        clock = ManualClock()
        backend = InMemoryBackend(clock=clock)
        job_id = backend.enqueue("--- !ruby/struct:FailJob\nn: 1\n")
        handlers = Handlers({"FailJob": failing})
        chain = parity_middlewares(handlers, max_attempts=2)
        chain.insert(3, AlertOnPermanentFailure(send=webhook(url)))
        worker = Worker(
            handlers=handlers, backend=backend.factory(), clock=clock, middlewares=chain, name="w"
        )
        worker.work_off(1)
        assert _Hook.bodies == []
        clock.advance(60)
        worker.work_off(1)
        assert [json.loads(b) for b in _Hook.bodies] == [
            {
                "text": f"djmw: job FailJob (id={job_id}, queue=default) failed for good after 2 attempts: ValueError: boom"
            }
        ]
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ValueError, match="http"):
        webhook("file:///etc/passwd")


def test_circuit_breaker_opens_holds_back_then_closes_after_a_trial() -> None:
    """Two failures in a row open it: jobs are put back untried (attempts unchanged);
    after reset_after one trial runs, and its success closes the breaker."""
    now = [0.0]
    breaker = CircuitBreaker(
        names={"ChargeJob"}, failures=2, reset_after=10, retry_in=3, clock=lambda: now[0]
    )
    calls: list[int] = []

    def failing_call(job: Job) -> Rescheduled:
        calls.append(job.id)
        return Rescheduled(run_at=job.clock(), attempts=job.attempts + 1, error=ValueError("down"))

    job = make_job(name="ChargeJob", attempts=4)
    breaker(job, failing_call)
    breaker(job, failing_call)
    assert breaker.state == "open"
    held = breaker(job, failing_call)
    assert isinstance(held, Rescheduled)
    assert isinstance(held.error, CircuitOpen)
    assert held.attempts == 4
    assert len(calls) == 2
    assert breaker(make_job(name="OtherJob"), returning()) == Succeeded()
    now[0] += 10
    assert breaker.state == "half-open"
    assert breaker(job, returning()) == Succeeded()
    assert breaker.state == "closed"


def test_unique_enqueue_refuses_a_second_live_copy(tmp_path: Path) -> None:
    """A second enqueue under the same key returns the first row's id; once that row has
    failed, the key is free again."""
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}"
    backend = djmw.open_backend(url)
    backend.create_schema()
    engine = sa.create_engine(f"sqlite:///{path}")
    handler = "--- !ruby/struct:TotalsJob\naccount_id: 42\n"
    first, created = enqueue_unique(engine, url, handler, key="totals:42")
    assert created
    assert enqueue_unique(engine, url, handler, key="totals:42") == (first, False)
    other, created_other = enqueue_unique(engine, url, handler, key="totals:43")
    assert created_other
    assert other != first
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE delayed_jobs SET failed_at = '2026-01-01' WHERE id = :i"), {"i": first}
        )
    third, created_third = enqueue_unique(engine, url, handler, key="totals:42")
    assert created_third
    assert third not in (first, other)
    job = backend.job(third)
    assert job is not None
    assert isinstance(job.handler, bytes)
    assert job.handler.decode().endswith("# djmw-unique: totals:42\n")
    backend.close()
    engine.dispose()
