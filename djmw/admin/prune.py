"""Pruner: the worker option that deletes old failed rows, once per interval per fleet.

djmw keeps failed rows (with failed_at and last_error) by default, and a table that grows
with them slows every reserve (delayed_job issue 202). ``Worker(prune_failed_after="30d")``
gives each worker a Pruner; between batches it asks whether a prune is due. Workers
agree through one row of the side table ``djmw_tasks``: a conditional UPDATE that only
one of them can win per interval, whatever the number of hosts, processes and threads.
The winner deletes at most ``max_rows`` failed rows older than the limit, ``batch`` rows
per short transaction (``Jobs.prune``), on its own connection, between two jobs.

The side table holds ``task`` (``prune_failed:<table>``), ``last_run_at`` (seconds since
1970 on the workers' clocks) and ``ran_by`` (the worker that ran it last). Ruby workers
never read it. The worker creates it at start if it is missing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import attrs

from djmw._clock import Clock, utc_now
from djmw.admin.durations import human, parse_duration
from djmw.admin.jobs import Jobs
from djmw.backends import Backend, SqlBackend
from djmw.errors import ConfigurationError
from djmw.logs import worker_prefix
from djmw.validation import positive_int, positive_number

#: The side table where workers record when a periodic task last ran.
TASKS_TABLE = "djmw_tasks"
_EPOCH = datetime(1970, 1, 1)


def _older_than(value: object) -> float:
    seconds = parse_duration(value, "Pruner: failed_older_than (prune_failed_after)")
    if seconds <= 0:
        msg = f"Pruner: failed_older_than (prune_failed_after) must be above 0, got {value!r}."
        raise ConfigurationError(msg)
    return seconds


def tasks_schema(backend: SqlBackend) -> str:
    """The CREATE TABLE statement of the side table, in standard SQL."""
    q = backend.quote
    return (
        f"CREATE TABLE IF NOT EXISTS {q}{TASKS_TABLE}{q} (task VARCHAR(191) NOT NULL "
        "PRIMARY KEY, last_run_at BIGINT NOT NULL, ran_by VARCHAR(255))"
    )


@attrs.define(kw_only=True)
class Pruner:
    """Delete failed rows older than ``failed_older_than``, at most once per ``interval``
    across every worker sharing the database.

    Args:
        failed_older_than: seconds, or a duration such as ``30d``.
        interval: seconds between two prunes of the whole fleet (default 300).
        batch: rows per DELETE, each its own short transaction (default 1000).
        max_rows: rows per prune at most (default 10,000), so that one worker pauses
            only briefly between two jobs; the rest waits for the next interval.
        clock: the worker's clock (intervals are measured on it).

    Limits: the interval is measured on each worker's own clock; clocks that disagree
    by more than the interval can let two prunes run closer together (never at the
    same time on one row: each DELETE repeats its filter).
    """

    failed_older_than: float = attrs.field(converter=_older_than)
    interval: float = attrs.field(default=300.0, validator=positive_number)
    batch: int = attrs.field(default=1000, validator=positive_int)
    max_rows: int = attrs.field(default=10_000, validator=positive_int)
    clock: Clock = utc_now
    _next_check: datetime | None = attrs.field(default=None, init=False)

    @staticmethod
    def task(backend: SqlBackend) -> str:
        """This table's key in the side table."""
        return f"prune_failed:{backend.table}"

    def prepare(self, backend: Backend) -> None:
        """Create the side table and this table's task row if missing.

        Raises ConfigurationError when the backend is not SQL or the table cannot be
        created (a database user without CREATE), naming the statement to run instead.
        """
        sql_backend = _sql(backend)
        t, m = f"{sql_backend.quote}{TASKS_TABLE}{sql_backend.quote}", sql_backend.mark
        task = self.task(sql_backend)
        exists = f"SELECT 1 FROM {t} WHERE task = {m}"
        try:
            sql_backend._write(lambda: sql_backend._execute(tasks_schema(sql_backend)))
            if not sql_backend._write(lambda: len(sql_backend._query(exists, [task]))):
                try:
                    sql_backend._execute(
                        f"INSERT INTO {t} (task, last_run_at) VALUES ({m}, 0)", [task]
                    )
                except Exception:
                    # Another worker inserted it first; anything else shows up below.
                    if not sql_backend._write(lambda: len(sql_backend._query(exists, [task]))):
                        raise
        except Exception as exc:
            msg = (
                f"prune_failed_after: cannot use the side table {TASKS_TABLE!r} ({exc}); "
                f"create it with: {tasks_schema(sql_backend)}"
            )
            raise ConfigurationError(msg) from exc

    def claim(self, backend: SqlBackend, worker_name: str) -> bool:
        """Take this interval's prune for ``worker_name``; False if another worker has."""
        now = int((self.clock() - _EPOCH).total_seconds())
        t, m = f"{backend.quote}{TASKS_TABLE}{backend.quote}", backend.mark
        sql = (
            f"UPDATE {t} SET last_run_at = {m}, ran_by = {m} "
            f"WHERE task = {m} AND last_run_at <= {m}"
        )
        params = [now, worker_name[:255], self.task(backend), now - int(self.interval)]
        return backend._write(lambda: backend._execute(sql, params)) == 1

    def run(
        self, backend: Backend, worker_name: str, logger: logging.Logger | None = None
    ) -> int | None:
        """Prune if this worker's check is due and it wins the interval; return the rows
        deleted, or None when it did not prune. Called by the worker between batches."""
        now = self.clock()
        if self._next_check is not None and now < self._next_check:
            return None
        self._next_check = now + timedelta(seconds=self.interval)
        sql_backend = _sql(backend)
        if not self.claim(sql_backend, worker_name):
            return None
        jobs = Jobs(sql_backend, clock=self.clock, batch_size=self.batch)
        change = jobs.prune(self.failed_older_than, max_rows=self.max_rows)
        if logger is not None:
            logger.info(
                "%s Pruned %d failed jobs older than %s%s",
                worker_prefix(worker_name),
                change.count,
                human(self.failed_older_than),
                " (more left for the next prune)" if change.count >= self.max_rows else "",
            )
        return change.count


def _sql(backend: Backend) -> SqlBackend:
    if not isinstance(backend, SqlBackend):
        msg = (
            "prune_failed_after needs a SQL database backend (MariaDB/MySQL, SQLite, "
            f"PostgreSQL), not {type(backend).__name__}."
        )
        raise ConfigurationError(msg)
    return backend
