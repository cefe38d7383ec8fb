"""A mixed fleet on MariaDB and PostgreSQL: a Ruby delayed_job worker and a class-aware djmw
worker share a queue.

Both workers run at the same time while jobs arrive in one queue: ~40 Ruby jobs
(``CounterJob``, enqueued by Ruby), ~40 Python-only jobs (``PyOnlyJob``, a class only djmw
registers; Ruby would fail them with ``NameError``) and a few decoys (Ruby ``CounterJob``
rows, enqueued from Python, whose handler text mentions ``PyOnlyJob``, so djmw's SQL filter
takes them and gives them back after decoding). Every job must run exactly once, on the
runtime that owns it, and no row may ever show a failed attempt.

delayed_job reserves every eligible row whatever its class, so the Ruby side is kept off
the Python-only jobs by an app-side scope (``work.rb --skip-classes PyOnlyJob``); djmw's
side is ``Worker(class_aware=True)``.

Skipped without Ruby, except under CI, where the suite must not go weaker.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import rubyenv

import djmw
from djmw import Handlers, Job, Worker, encode
from djmw.backends import open_backend

pytestmark = [pytest.mark.ruby, pytest.mark.usefixtures("ruby_delayed_job")]

RUBY_JOBS = 40
PYTHON_JOBS = 40
DECOYS = 5
DEADLINE = 45.0  # seconds for the whole run; it takes a few


@pytest.fixture(params=["mysql", "postgresql"])
def server_url(request: pytest.FixtureRequest) -> str:
    """A fresh MariaDB database, then a fresh PostgreSQL one: the fleet runs on both."""
    request.applymarker(getattr(pytest.mark, request.param))
    return str(request.getfixturevalue("mysql_url" if request.param == "mysql" else "pg_url"))


def test_ruby_and_djmw_workers_share_one_queue(
    server_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each job runs once on its own runtime; no attempt is ever charged, nothing is left."""
    caplog.set_level(logging.DEBUG, logger="djmw")
    database = rubyenv.ruby_database(server_url)
    rubyenv.create_schema(database)
    record = tmp_path / "ruby-record.jsonl"
    ruby_log = tmp_path / "ruby-worker.log"

    python_runs: list[int] = []
    lock = threading.Lock()

    def py_only(job: Job) -> None:
        time.sleep(0.01)  # long enough for the two workers to overlap
        with lock:
            python_runs.append(job.id)

    worker = Worker(
        database=server_url,
        handlers=Handlers({"PyOnlyJob": py_only}),
        class_aware=True,
        name="djmw fleet",
        sleep_delay=0.1,
    )

    bad_rows: dict[int, tuple[object, ...]] = {}
    remaining: list[int] = []
    watching = threading.Event()
    monitor_backend = open_backend(server_url)

    def watch() -> None:
        """Look at the table every few ms: no row may get attempts, last_error or failed_at."""
        query = "SELECT id, attempts, last_error, failed_at FROM delayed_jobs"
        while not watching.is_set():
            rows = monitor_backend._query(query)
            for row in rows:
                if row[1] or row[2] is not None or row[3] is not None:
                    bad_rows.setdefault(int(row[0]), tuple(row))
            remaining[:] = [int(row[0]) for row in rows]
            time.sleep(0.02)

    python_ids: list[int] = []
    decoy_ids: list[int] = []

    def enqueue_python_jobs() -> None:
        backend = open_backend(server_url)
        try:
            for n in range(PYTHON_JOBS):
                handler = encode.struct_job("PyOnlyJob", {"n": n})
                python_ids.append(djmw.enqueue(backend, handler, queue="shared"))
                if n % (PYTHON_JOBS // DECOYS) == 0:
                    decoy = encode.struct_job("CounterJob", {"n": f"mentions PyOnlyJob {n}"})
                    decoy_ids.append(djmw.enqueue(backend, decoy, queue="shared"))
                time.sleep(0.01)
        finally:
            backend.close()

    started = time.monotonic()
    with ruby_log.open("w") as log:
        ruby = rubyenv.start_worker(
            database,
            "--no-exit-on-complete",
            "--sleep-delay",
            "0.1",
            "--skip-classes",
            "PyOnlyJob",
            "--name",
            "ruby fleet",
            "--quiet",
            env={"DJ_RECORD": str(record)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        monitor = threading.Thread(target=watch, daemon=True)
        producer = threading.Thread(target=enqueue_python_jobs)
        try:
            monitor.start()
            worker.start()
            while "Starting job worker" not in ruby_log.read_text():
                assert ruby.poll() is None, ruby_log.read_text()
                assert time.monotonic() - started < DEADLINE, "the Ruby worker did not start"
                time.sleep(0.05)
            # Jobs arrive while both workers are running: Python's and Ruby's at once.
            producer.start()
            ruby_jobs = rubyenv.enqueue(
                "bulk", database, extra_args=("--queue", "shared", "--count", str(RUBY_JOBS))
            )
            producer.join(DEADLINE)
            ruby_ids = [line["id"] for line in ruby_jobs]
            expected_ruby = len(ruby_ids) + len(decoy_ids)
            while time.monotonic() - started < DEADLINE:
                done = len(python_runs) == len(python_ids) and (
                    len(rubyenv.read_records(record)) >= expected_ruby
                )
                if done and not remaining:
                    break
                time.sleep(0.1)
        finally:
            worker.stop()
            worker.join(10)
            ruby.send_signal(signal.SIGTERM)
            try:
                ruby.wait(timeout=20)
            except subprocess.TimeoutExpired:
                ruby.kill()
                ruby.wait()
            time.sleep(0.05)
            watching.set()
            monitor.join(5)
            monitor_backend.close()
    elapsed = time.monotonic() - started

    log_text = ruby_log.read_text()
    assert elapsed < DEADLINE + 30, f"took {elapsed:.1f} s"
    assert worker.error is None, worker.error
    assert not bad_rows, f"rows with a failed attempt: {bad_rows}\n{log_text}"
    assert " FAILED" not in log_text, log_text
    assert len(ruby_ids) == RUBY_JOBS
    assert len(python_ids) == PYTHON_JOBS
    assert len(decoy_ids) == DECOYS

    ruby_runs = [call["job_id"] for call in rubyenv.read_records(record)]
    assert sorted(python_runs) == sorted(python_ids), "djmw ran other jobs, or some twice"
    assert sorted(ruby_runs) == sorted(ruby_ids + decoy_ids), "Ruby ran other jobs, or some twice"
    # djmw's SQL filter only ever took a Ruby job by a false match (a decoy), and gave it back.
    given_back = [
        int(match.group(1))
        for record in caplog.records
        if (match := re.search(r"job (\d+) \(\S+\) has no perform function here", record.message))
    ]
    assert set(given_back) <= set(decoy_ids), given_back
    check = open_backend(server_url)
    try:
        assert check.jobs() == []
    finally:
        check.close()
