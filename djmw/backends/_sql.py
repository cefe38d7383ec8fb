"""SQL pieces every dialect shares: the eligibility predicate, columns, identifiers."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from djmw.errors import ConfigurationError

#: The delayed_jobs columns djmw reads and writes; other columns are ignored.
COLUMNS = (
    "id",
    "priority",
    "attempts",
    "handler",
    "last_error",
    "run_at",
    "locked_at",
    "locked_by",
    "failed_at",
    "queue",
    "created_at",
    "updated_at",
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,63}")


def checked_table(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise ConfigurationError."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        msg = (
            f"table {name!r} is not a valid table name: use letters, digits, _ and $ "
            "(at most 64 characters, not starting with a digit)."
        )
        raise ConfigurationError(msg)
    return name


@attrs.frozen(kw_only=True)
class ReserveRequest:
    """What one reserve call asks for: delayed_job's ready_to_run scope plus filters.

    Attributes:
        worker_name: this worker's ``locked_by`` value.
        now: the worker's clock at reserve time (naive).
        max_run_time: the worker-wide limit in seconds; other workers' locks older than
            this are stolen.
        queues: only these queues (None = every queue, NULL included). A None entry in
            the tuple matches rows whose queue is NULL (as dj-consumer allows).
        min_priority / max_priority: inclusive bounds; 0 is an active bound.
        names: when set, only rows whose handler names one of these jobs (class-aware
            reservation); the worker confirms after decoding.
        exclude_ids: rows this worker gave back (class-aware reservation) and must not
            take again at once.
    """

    worker_name: str
    now: datetime
    max_run_time: float
    queues: tuple[str | None, ...] | None = None
    min_priority: int | None = None
    max_priority: int | None = None
    names: tuple[str, ...] | None = None
    exclude_ids: frozenset[int] = frozenset()

    @property
    def expired_before(self) -> datetime:
        """Locks taken before this instant have expired."""
        return self.now - timedelta(seconds=self.max_run_time)


@attrs.frozen(kw_only=True)
class NewJob:
    """One row to insert, as ``Delayed::Job.enqueue`` writes it (``djmw.enqueue_many``).

    Attributes:
        handler: the handler YAML (build it with ``djmw.ruby.encode``).
        priority: lower runs first (default 0).
        run_at: naive time in the worker's clock (default: now, at insert time).
        queue: the queue name, or None.
    """

    handler: str
    priority: int = 0
    run_at: datetime | None = None
    queue: str | None = None


def ready_where(
    request: ReserveRequest, mark: str, time_column: Callable[[str], str] = str
) -> tuple[str, list[object]]:
    """Return delayed_job's eligibility predicate and filters, with ``mark`` placeholders.

    ``((run_at <= now AND (locked_at IS NULL OR locked_at < now - mrt)) OR locked_by = name)
    AND failed_at IS NULL`` then ``priority >= min``, ``priority <= max``, ``queue IN (...)``.
    ``time_column`` gives the expression a time column is compared through (SQLite
    normalises text times written with an ISO ``T``).
    """
    run_at, locked_at = time_column("run_at"), time_column("locked_at")
    sql = (
        f"(({run_at} <= {mark} AND (locked_at IS NULL OR {locked_at} < {mark})) "
        f"OR locked_by = {mark}) AND failed_at IS NULL"
    )
    params: list[object] = [request.now, request.expired_before, request.worker_name]
    filters, filter_params = _filters(request, mark)
    return sql + filters, params + filter_params


def upcoming_where(
    request: ReserveRequest, mark: str, time_column: Callable[[str], str] = str
) -> tuple[str, list[object]]:
    """Return the predicate of rows that become eligible later: ``run_at > now``, not
    locked (or the lock expired), not failed, and the request's filters.

    ``MIN(run_at)`` over it is when the worker has something to do next (the idle sleep
    ends then). Rows whose lock expires later are not counted: the poll finds them.
    ``time_column`` is as in ``ready_where``.
    """
    run_at, locked_at = time_column("run_at"), time_column("locked_at")
    sql = f"{run_at} > {mark} AND (locked_at IS NULL OR {locked_at} < {mark}) AND failed_at IS NULL"
    params: list[object] = [request.now, request.expired_before]
    filters, filter_params = _filters(request, mark)
    return sql + filters, params + filter_params


def _filters(request: ReserveRequest, mark: str) -> tuple[str, list[object]]:
    sql = ""
    params: list[object] = []
    if request.min_priority is not None:
        sql += f" AND priority >= {mark}"
        params.append(request.min_priority)
    if request.max_priority is not None:
        sql += f" AND priority <= {mark}"
        params.append(request.max_priority)
    if request.queues is not None:
        named = [queue for queue in request.queues if queue is not None]
        parts = []
        if named:
            parts.append(f"queue IN ({', '.join([mark] * len(named))})")
            params.extend(named)
        if None in request.queues:
            parts.append("queue IS NULL")
        sql += f" AND ({' OR '.join(parts) or '1 = 0'})"
    if request.names is not None:
        likes, like_params = names_like(request.names, mark)
        sql += f" AND {likes}"
        params.extend(like_params)
    if request.exclude_ids:
        sql += f" AND id NOT IN ({', '.join([mark] * len(request.exclude_ids))})"
        params.extend(sorted(request.exclude_ids))
    return sql, params


def names_like(names: tuple[str, ...], mark: str) -> tuple[str, list[object]]:
    """Return the class-aware filter on the handler text: ``(handler LIKE ... OR ...)``.

    A row passes when its handler contains the marker of one of ``names``; the worker
    confirms the name after decoding. No names: ``(1 = 0)``, nothing passes.
    """
    likes = [f"handler LIKE {mark} ESCAPE '!'" for _ in names]
    params: list[object] = [f"%{_like_escape(handler_marker(name))}%" for name in names]
    return f"({' OR '.join(likes) or '1 = 0'})", params


def handler_marker(name: str) -> str:
    """Return text every handler of job ``name`` contains (for the class-aware LIKE filter).

    The class name for struct, object and ActiveJob jobs; the method name for ``.delay``
    calls (``User#activate!`` -> ``activate!``).
    """
    for separator in ("#", "."):
        if separator in name:
            return name.rsplit(separator, 1)[1]
    return name


def _like_escape(text: str) -> str:
    # '!' as the escape character reads the same in MySQL and SQLite string literals.
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


ORDER = "ORDER BY priority ASC, run_at ASC"


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes, keeping its start.

    The message comes first in last_error, so the start is what matters. A marker says
    the text was cut.
    """
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return text
    marker = "\n[truncated by djmw]"
    keep = max(max_bytes - len(marker.encode()), 0)
    return raw[:keep].decode("utf-8", "ignore") + marker
