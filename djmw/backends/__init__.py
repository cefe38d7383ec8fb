"""Backends: the SQL dialect layer. Only backends write job rows."""

from __future__ import annotations

from typing import Any

from djmw._clock import Clock, utc_now
from djmw.backends._sql import ReserveRequest
from djmw.backends.base import Backend, SqlBackend
from djmw.backends.url import DatabaseUrl, parse_url


def open_backend(
    database: str | DatabaseUrl | None,
    *,
    table: str = "delayed_jobs",
    clock: Clock = utc_now,
    **options: Any,
) -> SqlBackend:
    """Connect to ``database`` (a URL, or ``$DATABASE_URL`` when None) and return a backend.

    ``options`` go to the dialect's backend (e.g. ``reserve_sql`` for MySQL).
    """
    url = database if isinstance(database, DatabaseUrl) else parse_url(database)
    if url.dialect == "sqlite":
        from djmw.backends.sqlite import SqliteBackend  # noqa: PLC0415 - load the driver in use

        return SqliteBackend(url.path or "", table=table, clock=clock, **options)
    from djmw.backends.mysql import MysqlBackend  # noqa: PLC0415 - load the driver in use

    return MysqlBackend(url, table=table, clock=clock, **options)


__all__ = ["Backend", "DatabaseUrl", "ReserveRequest", "SqlBackend", "open_backend", "parse_url"]
