"""The worker registry's side table: its row, its default name and its columns.

djmw's own table (``delayed_workers`` by default), beside ``delayed_jobs``: one row per
running djmw worker, keyed by the name it writes into ``locked_by``. Ruby's delayed_job
never reads it. ``djmw.registry`` keeps a worker's row fresh and rescues the rows of
workers whose heartbeat stopped; the backends hold the SQL.
"""

from __future__ import annotations

import json
from datetime import datetime

import attrs

from djmw.backends._sql import checked_table
from djmw.errors import ConfigurationError

#: The registry's columns, in the order every read returns them.
REGISTRY_COLUMNS = ("name", "host", "pid", "queues", "started_at", "heartbeat_at", "job_id")


@attrs.frozen(kw_only=True)
class WorkerRecord:
    """One row of the worker registry.

    Attributes:
        name: the worker's name, as it writes it into ``delayed_jobs.locked_by``.
        host / pid: where the worker runs.
        queues: the queues it works (None = every queue), as the Worker's ``queues``.
        started_at: when it registered (the worker's clock, naive).
        heartbeat_at: its last beat (the worker's clock, naive).
        job_id: the job it was running at its last beat, or None.
    """

    name: str
    host: str
    pid: int
    queues: tuple[str | None, ...] | None
    started_at: datetime
    heartbeat_at: datetime
    job_id: int | None = None


def registry_table_for(table: str) -> str:
    """Return the registry table that goes with the jobs table ``table``.

    ``delayed_jobs`` -> ``delayed_workers``; a prefixed ``app_delayed_jobs`` ->
    ``app_delayed_workers`` (so two apps with prefixed tables in one database keep
    separate registries); any other name -> ``<table>_workers``.
    """
    suffix = "delayed_jobs"
    name = (
        f"{table[: -len(suffix)]}delayed_workers" if table.endswith(suffix) else f"{table}_workers"
    )
    return checked_table(name)


def encode_queues(queues: tuple[str | None, ...] | None) -> str | None:
    """Store a queue list as JSON text (None = every queue)."""
    return None if queues is None else json.dumps(list(queues))


def decode_queues(text: object) -> tuple[str | None, ...] | None:
    """Read back what ``encode_queues`` stored; unreadable text reads as every queue."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    return tuple(q if q is None else str(q) for q in value)


def check_registry_columns(table: str, present: set[str], fix: str) -> None:
    """Raise ConfigurationError if the registry table is missing or lacks a column.

    The message says how to create it and how to run without it.
    """
    if not present:
        msg = (
            f"the worker registry table {table!r} does not exist; create it with `{fix}` "
            "(it creates only the tables that are missing and never alters delayed_jobs), "
            "or run without the registry: Worker(registry=False), `djmw work --no-registry`."
        )
        raise ConfigurationError(msg)
    missing = [column for column in REGISTRY_COLUMNS if column not in present]
    if missing:
        msg = (
            f"the worker registry table {table!r} lacks the columns {missing}; it must have "
            f"{', '.join(REGISTRY_COLUMNS)} (drop it and run `{fix}`)."
        )
        raise ConfigurationError(msg)
