"""enqueue() and enqueue_many(): write delayed_job rows from Python, as ``Delayed::Job.enqueue`` does."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from djmw.backends import Backend, NewJob, open_backend
from djmw.tracecontext import with_trace_context


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


#: The most handler text one INSERT carries (MariaDB's max_allowed_packet is 16 MiB).
BATCH_BYTES = 4 * 1024 * 1024


def enqueue_many(
    database: str | Backend | None,
    jobs: Iterable[str | NewJob],
    *,
    priority: int = 0,
    run_at: datetime | None = None,
    queue: str | None = None,
    table: str = "delayed_jobs",
    batch_size: int = 1000,
) -> list[int]:
    """Insert many job rows, one INSERT statement per batch; return their ids in order.

    Each item is a handler (``priority``, ``run_at`` and ``queue`` apply to it) or a
    ``djmw.NewJob`` with its own. The rows are those ``enqueue`` writes; a batch holds
    at most ``batch_size`` rows and 4 MiB of handler text.

    Args:
        database: a URL (a connection is opened and closed), or an open Backend.
        jobs: handlers or NewJob rows.
        priority / run_at / queue: the columns of plain-handler items.
        table: the table name when ``database`` is a URL.
        batch_size: rows per INSERT (default 1000).

    Raises:
        TypeError: an item that is neither a str nor a NewJob (nothing is inserted).
        ValueError: a batch_size below 1.
        BackendError: a batch failed; the batches before it are committed (each batch
            is its own statement), the ids of none are returned.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        msg = f"enqueue_many: batch_size must be a positive integer, got {batch_size!r}."
        raise ValueError(msg)
    rows = [_row(item, index, priority, run_at, queue) for index, item in enumerate(jobs)]
    if database is not None and not isinstance(database, str):
        return _insert_batches(database, rows, batch_size)
    backend = open_backend(database, table=table)
    try:
        return _insert_batches(backend, rows, batch_size)
    finally:
        backend.close()


def _row(
    item: object, index: int, priority: int, run_at: datetime | None, queue: str | None
) -> NewJob:
    if isinstance(item, NewJob):
        return item
    if isinstance(item, str):
        return NewJob(handler=item, priority=priority, run_at=run_at, queue=queue)
    msg = f"enqueue_many: item {index} is a {type(item).__name__}, not a handler str or a NewJob."
    raise TypeError(msg)


def _insert_batches(backend: Backend, rows: list[NewJob], batch_size: int) -> list[int]:
    ids: list[int] = []
    batch: list[NewJob] = []
    size = 0
    for row in rows:
        if batch and (len(batch) >= batch_size or size + len(row.handler) > BATCH_BYTES):
            ids.extend(backend.enqueue_many(batch))
            batch, size = [], 0
        batch.append(row)
        size += len(row.handler)
    if batch:
        ids.extend(backend.enqueue_many(batch))
    return ids
