"""Rows and a server for the dashboard's tests (and ``scripts/web_screenshots.py``).

``sample_rows`` fills a table with what an on-call engineer sees on a busy day: ready
jobs in three queues, jobs scheduled over the next day, a running one, retries, failures
spread over the last day with two kinds of error, a stuck row and an undecodable one.
``HOSTILE`` rows carry script tags, ``javascript:`` URLs, attribute-breaking quotes and
direction marks in every column a page shows. ``Served`` runs a dashboard under uvicorn
on a free loopback port in a thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import uvicorn

from djmw.backends.base import SqlBackend
from djmw.ruby import encode
from djmw.ruby.values import RubyModule

HOUR = timedelta(hours=1)
#: The name a simulated live worker holds its rows under.
LIVE_WORKER = "host:web1 pid:4242"

SCRIPT = "<script>window.__pwned = (window.__pwned || 0) + 1; alert('xss')</script>"
IMG = "<img src=x onerror=\"window.__pwned=1;alert('img')\">"
JS_URL = "javascript:alert('url')"
QUOTES = "\"'><svg onload=alert('attr')>"
BIDI = "invoice\u202egpj.exe\u200b\u2066hidden\u2069"
#: A last_error that tries everything at once.
HOSTILE_ERROR = f"{SCRIPT} {QUOTES}\n{IMG}\n\tfrom {JS_URL}:1:in `{BIDI}'"


def struct(name: str = "NewsletterJob", **fields: object) -> str:
    """A Struct job's handler YAML, as a Rails app writes it."""
    return encode.struct_job(name, fields)


def insert(db: SqlBackend, handler: str | bytes, **columns: object) -> int:
    """Enqueue ``handler`` then set ``columns`` (datetimes stamped as the dialect stores
    them; bytes handlers stored raw)."""
    job_id = db.enqueue(handler if isinstance(handler, str) else "x")
    if isinstance(handler, bytes):
        columns["handler"] = handler
    if columns:
        sets = ", ".join(f"{name} = {db.mark}" for name in columns)
        values = [db._stamp(v) if isinstance(v, datetime) else v for v in columns.values()]
        db._execute(f"UPDATE {db._t} SET {sets} WHERE id = {db.mark}", [*values, job_id])
    return job_id


def sample_rows(db: SqlBackend, now: datetime) -> dict[str, list[int]]:
    """A busy day's table; returns the ids of each kind of row."""
    ids: dict[str, list[int]] = {}

    def add(kind: str, handler: str, **columns: object) -> None:
        ids.setdefault(kind, []).append(insert(db, handler, **columns))

    for i in range(6):
        add(
            "ready",
            struct("NewsletterJob", text=f"Issue {i}", emails=["a@example.com"]),
            queue="mailers",
            run_at=now - timedelta(minutes=3 + 7 * i),
        )
    add("ready", encode.active_job("ReportJob", [42]), queue="reports", run_at=now - HOUR)
    for i in range(30):
        add(
            "scheduled",
            encode.method_call(RubyModule("User"), "cleanup", [i]),
            queue="default",
            run_at=now + timedelta(minutes=20 + 47 * i),
        )
    add(
        "running",
        struct("Reports::Nightly", date="2026-11-27"),
        queue="reports",
        run_at=now - 2 * HOUR,
        locked_at=now - timedelta(minutes=2),
        locked_by=LIVE_WORKER,
    )
    add(
        "retrying",
        struct("ImportJob", file="users.csv"),
        queue="default",
        attempts=3,
        run_at=now + timedelta(minutes=9),
        last_error="Net::ReadTimeout\napp/jobs/import_job.rb:12:in `perform'",
    )
    for i in range(14):
        smtp = i % 3 != 0
        add(
            "failed",
            struct("NewsletterJob", text=f"Digest {i}", emails=["gone@example.com"]),
            queue="mailers" if smtp else None,
            attempts=25,
            run_at=now - timedelta(minutes=50 * i + 30),
            failed_at=now - timedelta(minutes=95 * i + 10),
            last_error=(
                "Net::SMTPFatalError: 550 5.1.1 no such user\n"
                "app/mailers/newsletter.rb:31:in `deliver'\napp/jobs/newsletter_job.rb:8:in `perform'"
                if smtp
                else "PG::ConnectionBad: could not connect to server\n"
                "app/models/user.rb:88:in `cleanup'"
            ),
        )
    add("stuck", struct("OrphanJob"), queue="default", run_at=None)
    add("undecodable", "--- !ruby/object:Legacy::Importer\n  : : bad\n", queue="default")
    return ids


def hostile_method(method_name: str, argument: str) -> str:
    """A ``.delay`` call whose decoded name (``User.<method>``) carries ``method_name``."""
    quoted = method_name.replace("\\", "\\\\").replace('"', '\\"')
    return (
        "--- !ruby/object:Delayed::PerformableMethod\nobject: !ruby/class 'User'\n"
        f'method_name: :"{quoted}"\nargs:\n- {encode.dump_value(argument)[4:]}'
    )


def hostile_rows(db: SqlBackend, now: datetime) -> list[int]:
    """Rows whose every shown column tries to break out of the page."""
    return [
        insert(
            db,
            hostile_method(SCRIPT, QUOTES),
            queue=SCRIPT,
            last_error=HOSTILE_ERROR,
            failed_at=now - HOUR,
            attempts=25,
            locked_by=QUOTES,
            locked_at=now - 30 * HOUR,
        ),
        insert(
            db,
            struct("Evil", text=IMG),
            queue=JS_URL,
            last_error=f"{JS_URL}\n{BIDI}",
            attempts=2,
            run_at=now + HOUR,
        ),
        insert(
            db,
            f"--- !ruby/object:{QUOTES}\n  : : {SCRIPT}\n",
            queue=BIDI,
            locked_by=SCRIPT,
            locked_at=now - timedelta(minutes=1),
            run_at=now - HOUR,
        ),
        insert(
            db,
            "--- !ruby/object:Delayed::PerformableMethod\n"
            f"object: !ruby/class '{BIDI}'\nmethod_name: :run\nargs:\n- {JS_URL!r}\n",
            queue=QUOTES,
            run_at=now - HOUR,
        ),
    ]


def free_port() -> int:
    """A TCP port nothing listens on, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its base URL; stop it after."""
    port = free_port()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            msg = "uvicorn did not start"
            raise RuntimeError(msg)
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


def hold_counts(monkeypatch: Any) -> threading.Event:
    """Make ``Jobs.count`` wait (up to 20 s) until the returned event is set: a count
    that outlasts the bulk confirmation's wait, as on a table of a million rows."""
    from djmw.admin import Jobs

    real = Jobs.count
    release = threading.Event()

    def slow(self: Jobs, *args: Any, **kwargs: Any) -> int:
        release.wait(20)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Jobs, "count", slow)
    return release
