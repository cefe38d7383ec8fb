"""Enqueue a job only if no live job with the same key is waiting or running.

Use this when the same work gets enqueued many times (a "recompute totals for account
42" fired by every edit) and one pending copy is enough.

Drop in (``pip install sqlalchemy``)::

    from recipes.unique_enqueue import enqueue_unique

    engine = sqlalchemy.create_engine("mysql+pymysql://app:secret@db/app")
    job_id, created = enqueue_unique(
        engine, "mysql2://app:secret@db/app",
        djmw.encode.struct_job("TotalsJob", {"account_id": 42}), key="totals:42",
    )

The key is stored in the handler as a YAML comment (``# djmw-unique: totals:42``), which
Ruby and djmw ignore; a row with that key and no ``failed_at`` blocks a second enqueue.
On MariaDB/MySQL the check and the insert are serialized per key with ``GET_LOCK``.

delayed_job equivalent: none (dj#72, #192 and #800 asked; gems such as
delayed_job_unique_key add a column).

Caveats: only djmw enqueues through this function are guarded; Ruby enqueues are not.
The lookup is a ``LIKE`` on the handler (a scan; fine for small tables, index-free).
On SQLite the check and the insert are not serialized across processes. Third-party
import: sqlalchemy.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

import djmw

MARKER = "# djmw-unique: "


def unique_handler(handler: str, key: str) -> str:
    """Return ``handler`` with the uniqueness key appended as a comment line."""
    if "\n" in key or "%" in key or "_" in key:
        msg = f"a uniqueness key has no newline, % or _ (they break the lookup): {key!r}"
        raise ValueError(msg)
    return f"{handler}{'' if handler.endswith(chr(10)) else chr(10)}{MARKER}{key}\n"


def find_live(connection: sa.Connection, key: str, table: str = "delayed_jobs") -> int | None:
    """Return the id of an unfailed row carrying ``key``, or None."""
    jobs = sa.table(table, sa.column("id"), sa.column("handler"), sa.column("failed_at"))
    query = (
        sa.select(jobs.c.id)
        .where(jobs.c.handler.like(f"%{MARKER}{key}\n%"), jobs.c.failed_at.is_(None))
        .order_by(jobs.c.id)
        .limit(1)
    )
    found = connection.execute(query).scalar()
    return int(found) if found is not None else None


def enqueue_unique(
    engine: sa.Engine,
    database: str,
    handler: str,
    *,
    key: str,
    queue: str | None = None,
    priority: int = 0,
    run_at: datetime | None = None,
    table: str = "delayed_jobs",
) -> tuple[int, bool]:
    """Enqueue ``handler`` under ``key`` unless a live row has it; return (id, created).

    ``engine`` (SQLAlchemy) looks up and locks; ``database`` (a djmw URL of the same
    database) inserts, through ``djmw.enqueue``, the row a Ruby worker also runs.
    """
    marked = unique_handler(handler, key)
    with engine.connect() as connection:
        mysql = connection.dialect.name in ("mysql", "mariadb")
        lock = f"djmw-unique:{key}"[:64]
        if (
            mysql
            and connection.execute(sa.text("SELECT GET_LOCK(:k, 10)"), {"k": lock}).scalar() != 1
        ):
            msg = f"could not take the uniqueness lock for {key!r} within 10 s"
            raise TimeoutError(msg)
        try:
            existing = find_live(connection, key, table)
            if existing is not None:
                return existing, False
            job_id = djmw.enqueue(
                database, marked, queue=queue, priority=priority, run_at=run_at, table=table
            )
            return job_id, True
        finally:
            if mysql:
                connection.execute(sa.text("SELECT RELEASE_LOCK(:k)"), {"k": lock})
            connection.rollback()
