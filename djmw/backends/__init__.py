"""Backends: the SQL dialect layer. Only backends write job rows."""

from __future__ import annotations

from typing import Any

from djmw._clock import Clock, utc_now
from djmw.backends._sql import NewJob, ReserveRequest, handler_marker, truncate_utf8
from djmw.backends._workers import WorkerRecord, registry_table_for
from djmw.backends.base import Backend, BackendFactory, Finish, QueueStats, SqlBackend
from djmw.backends.url import DatabaseUrl, parse_url
from djmw.errors import ConfigurationError


def open_backend(
    database: str | DatabaseUrl | None,
    *,
    table: str = "delayed_jobs",
    clock: Clock = utc_now,
    create: bool = True,
    **options: Any,
) -> SqlBackend:
    """Connect to ``database`` (a URL, or ``$DATABASE_URL`` when None) and return a backend.

    ``create=False`` refuses to create a database that does not exist (an SQLite file:
    a mistyped path fails instead of leaving an empty file behind); a server database is
    never created. ``options`` go to the dialect's backend, which owns their names (its
    ``OPTIONS``: ``reserve_sql`` for MySQL, ``busy_timeout`` for SQLite, ``pipeline`` for
    PostgreSQL, ...); an unknown one raises ConfigurationError naming it and listing what
    that backend accepts.
    """
    url = database if isinstance(database, DatabaseUrl) else parse_url(database)
    if url.dialect == "sqlite":
        from djmw.backends.sqlite import SqliteBackend  # noqa: PLC0415 - load the driver in use

        _check_options(SqliteBackend, options)
        return SqliteBackend(url.path or "", table=table, clock=clock, create=create, **options)
    if url.dialect == "postgresql":
        try:
            from djmw.backends.postgresql import (  # noqa: PLC0415 - load the driver in use
                PostgresqlBackend,
            )
        except ImportError as exc:
            msg = (
                f"{url.redacted} needs the psycopg package: install djmw with the "
                f"postgresql extra (pip install 'djmw[postgresql]'); {exc}."
            )
            raise ConfigurationError(msg) from exc
        _check_options(PostgresqlBackend, options)
        return PostgresqlBackend(url, table=table, clock=clock, **options)
    from djmw.backends.mysql import MysqlBackend  # noqa: PLC0415 - load the driver in use

    _check_options(MysqlBackend, options)
    return MysqlBackend(url, table=table, clock=clock, **options)


def _check_options(backend: type[SqlBackend], options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - backend.OPTIONS)
    if unknown:
        msg = (
            f"backend_options {unknown} are not known to {backend.__name__}; it accepts "
            f"{', '.join(sorted(backend.OPTIONS)) or 'none'}."
        )
        raise ConfigurationError(msg)


__all__ = [
    "Backend",
    "BackendFactory",
    "DatabaseUrl",
    "Finish",
    "NewJob",
    "QueueStats",
    "ReserveRequest",
    "SqlBackend",
    "WorkerRecord",
    "handler_marker",
    "open_backend",
    "parse_url",
    "registry_table_for",
    "truncate_utf8",
]
