"""Copy every job that fails for good into a dead-letter table, with its error.

Use this when failed rows are deleted (``delete_failed=True``, the parity chain) but
someone must still be able to inspect or replay them, or when failures should be kept
apart from the live ``delayed_jobs`` table.

Drop in::

    from recipes.dead_letter import DeadLetter, SqliteDeadLetters

    chain = djmw.default_middlewares(handlers)
    chain.insert(3, DeadLetter(store=SqliteDeadLetters("dead_letters.db")))  # after LogOutcome
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

``store`` is any callable taking a ``DeadLetterRecord``; ``SqliteDeadLetters`` writes one
row per record to a table it creates. For MariaDB, write the same INSERT with PyMySQL.

delayed_job equivalent: none (``destroy_failed_jobs`` keeps nothing; Sidekiq's Dead set).

Caveats: the copy is written before djmw writes the job's own row, through another
connection: when that final write is lost the job runs again and may be copied twice
(the record's ``job_id`` tells). A store that raises is logged; the outcome stands.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import traceback
from collections.abc import Callable
from datetime import datetime

import attrs

from djmw import CallNext, Failed, Job, Outcome

logger = logging.getLogger("djmw")


@attrs.frozen(kw_only=True)
class DeadLetterRecord:
    """What is kept of a job that failed for good."""

    job_id: int
    job_name: str
    queue: str | None
    priority: int
    attempts: int
    handler: str
    last_error: str
    failed_at: datetime


@attrs.frozen(kw_only=True)
class DeadLetter:
    """Hand a ``DeadLetterRecord`` to ``store`` when the outcome is ``Failed``.

    Where: inside LogOutcome, outside MarkFailed (it must see the final outcome).
    """

    store: Callable[[DeadLetterRecord], None]

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain; copy the job away when it failed for good."""
        outcome = call_next(job)
        if isinstance(outcome, Failed):
            handler = job.handler or ""
            record = DeadLetterRecord(
                job_id=job.id,
                job_name=job.display_name,
                queue=job.queue,
                priority=job.priority or 0,
                attempts=outcome.attempts,
                handler=handler.decode("utf-8", "replace")
                if isinstance(handler, bytes)
                else handler,
                last_error="".join(traceback.format_exception(outcome.error)),
                failed_at=job.clock(),
            )
            try:
                self.store(record)
            except Exception as exc:  # the job's own outcome must still be written
                logger.warning("dead letter for job %s not stored: %s", job.id, exc)
        return outcome


class SqliteDeadLetters:
    """A store writing records to ``table`` in an SQLite file (created if missing)."""

    def __init__(self, path: str, table: str = "dead_letters") -> None:
        if not table.isidentifier():
            msg = f"table must be a plain identifier, got {table!r}"
            raise ValueError(msg)
        self._table = table
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{table}" (id INTEGER PRIMARY KEY, job_id INTEGER, '
            "job_name TEXT, queue TEXT, priority INTEGER, attempts INTEGER, handler TEXT, "
            "last_error TEXT, failed_at TEXT)"
        )

    def __call__(self, record: DeadLetterRecord) -> None:
        """Insert one record."""
        with self._lock:
            self._conn.execute(
                f'INSERT INTO "{self._table}" (job_id, job_name, queue, priority, attempts, '
                "handler, last_error, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.job_id,
                    record.job_name,
                    record.queue,
                    record.priority,
                    record.attempts,
                    record.handler,
                    record.last_error,
                    record.failed_at.isoformat(sep=" "),
                ),
            )

    def rows(self) -> list[tuple[object, ...]]:
        """Every stored record as (job_id, job_name, queue, attempts, last_error's first line)."""
        with self._lock:
            rows = self._conn.execute(
                f'SELECT job_id, job_name, queue, attempts, last_error FROM "{self._table}" ORDER BY id'
            ).fetchall()
        return [(*row[:4], str(row[4]).split("\n", 1)[0]) for row in rows]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
