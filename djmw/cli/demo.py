"""The README's first command: a worker over real delayed_job rows in an SQLite file.

It creates the table exactly as delayed_job_active_record's migration does, inserts the
YAML a Rails app writes (a Struct job, a plain-object job, a ``.delay`` call), runs a
worker until nothing is left to run, and prints what happened to each row.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import tenacity

from djmw import middleware as mw
from djmw.backends.sqlite import SqliteBackend
from djmw.backends.url import parse_url
from djmw.errors import ConfigurationError, PermanentJobError
from djmw.handlers import Handlers
from djmw.job import Job
from djmw.worker import Worker

ROWS = [
    (
        "NewsletterJob",
        "--- !ruby/struct:NewsletterJob\ntext: Hello\nemails:\n- a@example.com\n- b@example.com\n",
    ),
    ("PlainJob", "--- !ruby/object:PlainJob\na: 1\nb: two\nsym: :hello\n"),
    (
        "User.cleanup",
        "--- !ruby/object:Delayed::PerformableMethod\nobject: !ruby/class 'User'\nmethod_name: :cleanup\nargs:\n- 30\n",
    ),
    ("FlakyJob", "--- !ruby/struct:FlakyJob\nname: flaky\n"),
    ("BrokenJob", "--- !ruby/struct:BrokenJob\nreason: bad input\n"),
    ("(bad YAML)", "--- !ruby/struct:Oops\n  : [unclosed\n"),
]


def demo_handlers(log: list[str]) -> Handlers:
    """Handlers for the demo rows: most succeed, one fails once, one fails for good."""
    handlers = Handlers()
    tries: dict[int, int] = {}

    @handlers.register("NewsletterJob")
    def newsletter(job: Job) -> None:
        log.append(f"NewsletterJob sent {job.payload!r}")

    @handlers.register("PlainJob")
    def plain(job: Job) -> None:
        log.append(f"PlainJob ran with {job.payload!r}")

    @handlers.register("User.cleanup")
    def cleanup(job: Job) -> None:
        log.append(f"User.cleanup called with {job.payload!r}")

    @handlers.register("FlakyJob")
    def flaky(job: Job) -> None:
        tries[job.id] = tries.get(job.id, 0) + 1
        if tries[job.id] == 1:
            msg = "the mail server timed out (first try only)"
            raise ConnectionError(msg)
        log.append("FlakyJob succeeded on its second try")

    @handlers.register("BrokenJob")
    def broken(job: Job) -> None:
        msg = "the input is invalid; retrying cannot help"
        raise PermanentJobError(msg)

    return handlers


#: The SQLite application_id the demo writes into its file ("djmw"), so that a later
#: demo knows it may replace the file.
DEMO_APPLICATION_ID = 0x646A6D77


def is_demo_database(path: str) -> bool:
    """True when ``path`` is an SQLite file an earlier ``djmw demo`` made.

    It carries the demo's application_id; or, made by a demo from before that mark, its
    only tables are delayed_jobs (and the worker registry's delayed_workers) and every
    row of delayed_jobs is a demo row. Opened read-only:
    a text file, another app's database or a damaged file is False.
    """
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            (application_id,) = conn.execute("PRAGMA application_id").fetchone()
            if application_id == DEMO_APPLICATION_ID:
                return True
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if tables - {"sqlite_sequence", "delayed_workers"} != {"delayed_jobs"}:
                return False
            handlers = [r[0] for r in conn.execute("SELECT handler FROM delayed_jobs")]
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    demo_handlers = {handler for _, handler in ROWS}
    return bool(handlers) and all(handler in demo_handlers for handler in handlers)


def demo_path(database: str, *, force: bool = False) -> str:
    """Return the demo's SQLite file for ``database``, after checking it may be replaced.

    Raises ConfigurationError for a URL that is not SQLite (shown redacted), or for an
    existing file that an earlier demo did not make, unless ``force``.
    """
    url = parse_url(database)
    if url.dialect != "sqlite" or not url.path:
        msg = (
            f"djmw demo runs on an SQLite file, as in --database sqlite:///demo.db; "
            f"got {url.redacted}. To try a worker on this database, use `djmw schema` "
            "and `djmw work`."
        )
        raise ConfigurationError(msg)
    path = url.path
    if os.path.lexists(path) and not force and not is_demo_database(path):
        msg = (
            f"{path!r} exists and is not a database made by djmw demo; the demo replaces "
            "its file, so it leaves this one alone. Choose another --database, or pass "
            "--force to replace it."
        )
        raise ConfigurationError(msg)
    return path


def run_demo(database: str, *, force: bool = False, out: list[str] | None = None) -> list[str]:
    """Create and fill the SQLite file, run a worker until done; return the report lines.

    An existing file is replaced only if an earlier demo made it, or with ``force``.
    """
    path = demo_path(database, force=force)
    for leftover in (path, f"{path}-wal", f"{path}-shm"):
        Path(leftover).unlink(missing_ok=True)
    backend = SqliteBackend(path)
    backend._execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
    backend.create_schema()
    names = {backend.enqueue(handler): label for label, handler in ROWS}
    backend.close()

    log: list[str] = out if out is not None else []
    handlers = demo_handlers(log)
    chain = mw.default_middlewares(handlers)
    # Retry after one second instead of delayed_job's 6 s, so the demo ends quickly.
    chain[4] = mw.ScheduleRetry(backoff=tenacity.wait_fixed(1))
    # delayed_job's strict behaviour, so that the broken row shows how a bad job fails.
    worker = Worker(
        database=database,
        handlers=handlers,
        middlewares=chain,
        sleep_delay=0.2,
        unknown_jobs="fail",
    )
    worker.start()
    deadline = time.monotonic() + 30
    watcher = SqliteBackend(path)
    while time.monotonic() < deadline:
        pending = [j for j in watcher.jobs() if j.failed_at is None]
        if not pending:
            break
        time.sleep(0.2)
    worker.stop()
    worker.join()

    report = ["", "What happened:"]
    remaining = {job.id: job for job in watcher.jobs()}
    for job_id, label in names.items():
        row = remaining.get(job_id)
        if row is None:
            report.append(f"  job {job_id} {label}: succeeded, row deleted")
        else:
            reason = (row.last_error or "").splitlines()[0]
            report.append(
                f"  job {job_id} {label}: failed after {row.attempts} attempt(s), row kept "
                f"with failed_at; last_error: {reason}"
            )
    watcher.close()
    report.append("")
    report.extend(f"  handler output: {line}" for line in log)
    return report
