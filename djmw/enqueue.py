"""enqueue(): write a delayed_job row from Python, as ``Delayed::Job.enqueue`` does."""

from __future__ import annotations

from datetime import datetime

from djmw.backends import Backend, open_backend
from djmw.observe.tracecontext import with_trace_context


def enqueue(
    database: str | Backend | None,
    handler: str,
    *,
    priority: int = 0,
    run_at: datetime | None = None,
    queue: str | None = None,
    table: str = "delayed_jobs",
    trace_context: bool = True,
) -> int:
    """Insert one job row and return its id.

    ``handler`` is the YAML a Ruby worker loads; build it with ``djmw.ruby.encode``
    (``struct_job``, ``active_job``, ``method_call``) so that Ruby and djmw workers can
    both run it. ``run_at`` is naive UTC (default now); attempts is 0 and the lock and
    failure columns stay NULL, as delayed_job writes them.

    Args:
        database: a URL (a connection is opened and closed), or an open Backend to
            reuse (any implementation: SQL, or ``djmw.testing.InMemoryBackend``).
        handler: the handler YAML.
        priority / run_at / queue: the row's columns (lower priority runs first).
        table: the table name when ``database`` is a URL.
        trace_context: when the application uses OpenTelemetry and a span is active,
            append its W3C trace context to the handler as YAML comment lines (Ruby and
            djmw's decoder ignore them; ``djmw.middleware.Trace`` continues the trace).
            Nothing is appended otherwise, and opentelemetry is never imported here.

    Note:
        A Ruby worker takes any eligible row: put Python-only jobs in a queue Ruby
        workers do not work, or give them a job class that exists on both sides.
    """
    if trace_context:
        handler = with_trace_context(handler)
    if database is not None and not isinstance(database, str):
        return database.enqueue(handler, priority=priority, run_at=run_at, queue=queue)
    backend = open_backend(database, table=table)
    try:
        return backend.enqueue(handler, priority=priority, run_at=run_at, queue=queue)
    finally:
        backend.close()
