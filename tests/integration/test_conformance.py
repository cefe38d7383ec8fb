"""Ruby's delayed_job worker and djmw, side by side, on the same always-failing job.

Ruby enqueues ``FailJob`` (its ``perform`` raises ``ArgumentError, "boom"``) twice, once
per queue; Ruby's worker (tests/ruby/work.rb) runs one row, a djmw Worker the other, with a
perform function raising an exception class named ``ArgumentError`` with message ``boom``.
Each test then compares the two rows and the two logs, on MariaDB and SQLite.

============================  ===========================================  ==========
after                         what is compared                             Ruby = djmw
============================  ===========================================  ==========
a failure, retries left       attempts 1                                   yes
                              run_at = failure time + 1⁴ + 5 s (± 1 s)     yes
                              locked_at, locked_by NULL; failed_at NULL    yes
                              last_error: ``boom`` then backtrace lines    yes
                              ``file:line:in `name'``
                              log lines: ``Starting job worker``,          yes
                              ``Job FailJob (id=N) (queue=Q) RUNNING``,
                              ``... FAILED (0 prior attempts) with
                              ArgumentError: boom``, ``1 jobs processed
                              at R j/s, 1 failed``, ``No more jobs
                              available. Exiting``; same levels
a failure, no retries left    failed_at set (≈ failure time), attempts 1   yes
(max_attempts 1, failed       locked_by still the worker's name,           yes
rows kept; work_off)          locked_at still set, run_at unchanged
                              log: ``FAILED (0 prior attempts) ...`` then  yes
                              ``FAILED permanently because of 1
                              consecutive failures`` (error)
the worker exits after a      the failed row's locked_by / locked_at       **no**
permanent failure (start /    Ruby: cleared (ClearLocks runs
run with exit_on_complete)    ``UPDATE ... WHERE locked_by = name``);
                              djmw: kept (it clears only rows with
                              ``failed_at IS NULL``)
============================  ===========================================  ==========

Worker names, row ids, queue names, timestamps and rates are stripped before the log
lines are compared. Skipped without Ruby, except under CI, where the suite must not go
weaker.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime, timedelta

import pytest
import rubyenv

from djmw import Handlers, Job, Worker, default_middlewares
from djmw.backends import open_backend
from djmw.chain import Middleware
from djmw.middleware import ScheduleRetry

pytestmark = [pytest.mark.ruby, pytest.mark.usefixtures("ruby_delayed_job")]

RUBY_NAME = "ruby conformance"
DJMW_NAME = "djmw conformance"
RUBY_LOG_LINE = re.compile(
    r"^[DIWEFA], \[(?P<time>\S+) #\d+\]\s+(?P<level>[A-Z]+) -- : \S+: (?P<message>.*)$"
)
FRAME = re.compile(r"^.+:\d+:in `.+'$")

# Log lines as (level, text) once worker name, id, queue and numbers are stripped.
STARTING = ("INFO", "Starting job worker")
RUNNING = ("INFO", "Job FailJob (id=N) (queue=Q) RUNNING")
FAILED = (
    "ERROR",
    "Job FailJob (id=N) (queue=Q) FAILED (0 prior attempts) with ArgumentError: boom",
)
PERMANENT = (
    "ERROR",
    "Job FailJob (id=N) (queue=Q) FAILED permanently because of 1 consecutive failures",
)
PROCESSED = ("INFO", "1 jobs processed at R j/s, 1 failed")
EXITING = ("INFO", "No more jobs available. Exiting")


class ArgumentError(Exception):
    """Named like Ruby's, so that last_error and the log read the same."""


def fail(job: Job) -> None:
    """FailJob#perform."""
    raise ArgumentError("boom")


def enqueue_fail_jobs(db_url: str) -> tuple[str, int, int]:
    """Create the table and enqueue FailJob from Ruby into queues ``ruby`` and ``python``."""
    database = rubyenv.ruby_database(db_url)
    rubyenv.create_schema(database)
    jobs = rubyenv.enqueue("fail_job", database, extra_args=("--queue", "ruby", "fail_job"))
    ruby_id, python_id = (job["id"] for job in jobs)
    backend = open_backend(db_url)
    try:
        m = backend.mark
        backend._execute(
            f"UPDATE delayed_jobs SET queue = {m} WHERE id = {m}", ["python", python_id]
        )
    finally:
        backend.close()
    return database, ruby_id, python_id


def run_ruby_worker(database: str, *args: str) -> tuple[list[tuple[str, str]], datetime, datetime]:
    """Run work.rb on queue ``ruby``; return its (level, message) log lines and the failure time.

    The failure time is the Logger timestamp of the ``FAILED (`` line (the Ruby process runs
    with TZ=UTC), checked to lie within the wall-clock window around the run.
    """
    before = utc_now()
    proc = rubyenv.run_ruby(
        "work.rb",
        "--quiet",
        "--queues",
        "ruby",
        "--name",
        RUBY_NAME,
        *args,
        database=database,
        env={"TZ": "UTC", "DJ_RECORD": os.devnull},
    )
    after = utc_now()
    lines: list[tuple[str, str]] = []
    failed_at = None
    for line in proc.stdout.splitlines():
        match = RUBY_LOG_LINE.match(line)
        if match is None:
            continue
        lines.append((match["level"], match["message"]))
        if " FAILED (" in match["message"]:
            failed_at = datetime.fromisoformat(match["time"])
    assert failed_at is not None, proc.stdout
    assert before <= failed_at <= after
    return lines, failed_at, after


def run_djmw_worker(
    db_url: str, caplog: pytest.LogCaptureFixture, *, max_attempts: int = 25, loop: bool
) -> tuple[list[tuple[str, str]], datetime]:
    """Run a djmw Worker on queue ``python``; return its log lines and the failure time.

    With ``loop`` it runs as ``start`` with exit_on_complete does (``Worker.run``),
    otherwise one ``work_off``.
    """
    handlers = Handlers({"FailJob": fail})
    middlewares: list[Middleware] = [
        ScheduleRetry(max_attempts=max_attempts) if isinstance(m, ScheduleRetry) else m
        for m in default_middlewares(handlers)
    ]
    worker = Worker(
        database=db_url,
        handlers=handlers,
        middlewares=middlewares,
        queues=["python"],
        name=DJMW_NAME,
        exit_on_complete=True,
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="djmw"):
        if loop:
            worker.run()
        else:
            try:
                assert worker.work_off(10) == (0, 1)
            finally:
                worker.close(clear_locks=False)  # as Ruby's work_off, which has no ClearLocks
    lines = [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "djmw" and record.getMessage().startswith("[Worker(")
    ]
    failed = [r for r in caplog.records if " FAILED (" in r.getMessage()]
    assert len(failed) == 1, lines
    return lines, datetime.fromtimestamp(failed[0].created, UTC).replace(tzinfo=None)


def utc_now() -> datetime:
    """Naive UTC now, as delayed_job stores times."""
    return datetime.now(UTC).replace(tzinfo=None)


def shapes(lines: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    """Log lines without worker name, ids, queue names and numbers that vary."""
    out = []
    for level, message in lines:
        prefix = f"[Worker({name})] "
        assert message.startswith(prefix), message
        text = message.removeprefix(prefix)
        text = re.sub(r"\(id=\d+\)", "(id=N)", text)
        text = re.sub(r"\(queue=[^)]*\)", "(queue=Q)", text)
        text = re.sub(r"processed at \d+\.\d{4} j/s", "processed at R j/s", text)
        text = re.sub(r"COMPLETED after \d+\.\d{4}", "COMPLETED after S", text)
        out.append((level, text))
    return out


def check_last_error(last_error: str | None) -> None:
    """``boom``, then one ``file:line:in `name'`` line per frame."""
    assert last_error is not None
    first, *frames = last_error.splitlines()
    assert first == "boom"
    assert frames
    assert all(FRAME.match(frame) for frame in frames), frames


def test_a_failure_with_retries_left(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Same row after one failure (attempts, run_at = now + 6 s, no lock) and same log lines."""
    database, ruby_id, python_id = enqueue_fail_jobs(db_url)
    ruby_lines, ruby_failed, _ = run_ruby_worker(database)
    before = utc_now()
    djmw_lines, djmw_failed = run_djmw_worker(db_url, caplog, loop=True)
    assert before <= djmw_failed <= utc_now()

    backend = open_backend(db_url)
    try:
        rows = {row.id: row for row in backend.jobs()}
    finally:
        backend.close()
    for row_id, failed_at in ((ruby_id, ruby_failed), (python_id, djmw_failed)):
        row = rows[row_id]
        assert row.attempts == 1
        assert row.run_at is not None
        assert abs(row.run_at - (failed_at + timedelta(seconds=1**4 + 5))) <= timedelta(seconds=1)
        assert (row.locked_at, row.locked_by, row.failed_at) == (None, None, None)
        check_last_error(row.last_error)

    expected = [STARTING, RUNNING, FAILED, PROCESSED, EXITING]
    assert shapes(ruby_lines, RUBY_NAME) == expected
    assert shapes(djmw_lines, DJMW_NAME) == expected
    assert f"(id={ruby_id})" in ruby_lines[1][1]
    assert f"(id={python_id})" in djmw_lines[1][1]


def test_a_failure_with_no_retries_left(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """max_attempts 1, failed rows kept: failed_at set, lock kept, run_at unchanged; same log."""
    database, ruby_id, python_id = enqueue_fail_jobs(db_url)
    backend = open_backend(db_url)
    try:
        enqueued = {row.id: row for row in backend.jobs()}
        ruby_lines, ruby_failed, _ = run_ruby_worker(
            database, "--max-attempts", "1", "--no-destroy-failed-jobs", "--work-off", "10"
        )
        djmw_lines, djmw_failed = run_djmw_worker(db_url, caplog, max_attempts=1, loop=False)
        rows = {row.id: row for row in backend.jobs()}
    finally:
        backend.close()

    for row_id, name, failed_at in (
        (ruby_id, RUBY_NAME, ruby_failed),
        (python_id, DJMW_NAME, djmw_failed),
    ):
        row = rows[row_id]
        assert row.attempts == 1
        assert row.failed_at is not None
        assert abs(row.failed_at - failed_at) <= timedelta(seconds=1)
        assert row.locked_by == name
        assert row.locked_at is not None
        assert abs(row.locked_at - failed_at) <= timedelta(seconds=2)  # the reserve time
        assert row.run_at == enqueued[row_id].run_at
        check_last_error(row.last_error)

    expected = [RUNNING, FAILED, PERMANENT]
    assert shapes(ruby_lines, RUBY_NAME) == expected
    assert shapes(djmw_lines, DJMW_NAME) == expected


def test_worker_exit_after_a_permanent_failure(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Same log lines and rows; on exit both clear every lock the worker holds, failed rows included."""
    database, ruby_id, python_id = enqueue_fail_jobs(db_url)
    ruby_lines, _, _ = run_ruby_worker(database, "--max-attempts", "1", "--no-destroy-failed-jobs")
    djmw_lines, _ = run_djmw_worker(db_url, caplog, max_attempts=1, loop=True)
    backend = open_backend(db_url)
    try:
        rows = {row.id: row for row in backend.jobs()}
    finally:
        backend.close()

    expected = [STARTING, RUNNING, FAILED, PERMANENT, PROCESSED, EXITING]
    assert shapes(ruby_lines, RUBY_NAME) == expected
    assert shapes(djmw_lines, DJMW_NAME) == expected
    for row_id in (ruby_id, python_id):
        assert rows[row_id].failed_at is not None
        assert rows[row_id].attempts == 1
        # delayed_job's ClearLocks clears every lock the worker holds at exit.
        assert (rows[row_id].locked_by, rows[row_id].locked_at) == (None, None)
