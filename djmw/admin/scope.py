"""The SQL of the operations API: job states, filters and the live-worker guard.

Every predicate is built from one ``Scope`` (one backend, one "now", one lock expiry), so
that a state means the same in a listing, a count, a bulk write and ``djmw check``.
``ready`` is the worker's own eligibility predicate (``SqlBackend.where``); the others are
written so that each row is in exactly one state:

========== ==========================================================================
state      rows
========== ==========================================================================
failed     ``failed_at IS NOT NULL``
ready      a worker would claim it now: delayed_job's reserve predicate
running    not failed, ``locked_at`` within ``max_run_time`` (the lock has not expired)
scheduled  not failed, not running, ``run_at`` in the future (retries waiting included)
stuck      not failed, not running, ``run_at`` NULL: no worker ever claims it
========== ==========================================================================

SQL is standard (``CASE``, ``COALESCE``, ``LIKE ... ESCAPE``, ``IN``); dialect details
come from the backend's hooks (``mark``, ``_t``, ``_compare``). Values are parameters.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol, get_args

import attrs

from djmw.backends import ReserveRequest, SqlBackend, handler_marker
from djmw.errors import ConfigurationError

State = Literal["ready", "scheduled", "running", "failed", "stuck"]
#: Every state, in the order listings and stats show them.
STATES: tuple[State, ...] = get_args(State)
StateFilter = Literal["ready", "scheduled", "running", "failed", "stuck", "all"]

#: A worker name no worker can have (locked_by holds at most 255 characters), so the
#: worker predicate's ``OR locked_by = <name>`` clause matches no row.
NO_WORKER = "djmw operations: no worker has this name " + "-" * 250

Sql = tuple[str, list[object]]

#: The name the worker gives an undecodable handler without a class tag.
UNKNOWN_NAME = "<unknown job>"


def _ids(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int | str):
        value = [value]
    try:
        ids = tuple(int(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        msg = f"JobFilter: ids must be job ids (integers), got {value!r}."
        raise ConfigurationError(msg) from None
    return ids


def _queues(value: object) -> tuple[str | None, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(q is None or isinstance(q, str) for q in value):
        msg = f"JobFilter: queues must be queue names (None = the NULL queue), got {value!r}."
        raise ConfigurationError(msg)
    return tuple(value)


def _state(instance: object, attribute: object, value: object) -> None:
    if value not in (*STATES, "all"):
        msg = f"JobFilter: state must be one of {', '.join((*STATES, 'all'))}, got {value!r}."
        raise ConfigurationError(msg)


def _error(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        msg = f"JobFilter: error must be non-empty text to look for in last_error, got {value!r}."
        raise ConfigurationError(msg)
    return value


def _older_than(value: object) -> float | None:
    from djmw.admin.durations import parse_duration  # noqa: PLC0415 - a sibling, no cycle

    return None if value is None else parse_duration(value, "JobFilter: older_than")


@attrs.frozen(kw_only=True)
class JobFilter:
    """Which rows an operation works on; every condition given must hold.

    Attributes:
        ids: only these row ids.
        state: ``ready``, ``scheduled``, ``running``, ``failed``, ``stuck`` or ``all``.
        queues: only these queues; a None entry selects rows whose queue is NULL.
        name: a glob over the decoded job name (``NewsletterJob``, ``User#*``,
            ``Reports::*``), matched case-sensitively as ``fnmatch.fnmatchcase``; an
            undecodable row is named as the worker names it in its log line.
        older_than: seconds (or ``2h``, ``30d``): rows that failed, or were due, longer
            ago than this (``COALESCE(failed_at, run_at)`` before now minus it).
        error: text that last_error contains, whatever its case, on every database
            (``LOWER(last_error) LIKE '%text%'``).

    Limits: ``name`` is checked by decoding each candidate row's handler in Python,
    after a SQL ``LIKE`` prefilter on the text every such handler holds; on a big table
    a name filter reads more rows than the other filters.
    """

    ids: tuple[int, ...] | None = attrs.field(default=None, converter=_ids)
    state: StateFilter = attrs.field(default="all", validator=_state)
    queues: tuple[str | None, ...] | None = attrs.field(default=None, converter=_queues)
    name: str | None = None
    older_than: float | None = attrs.field(default=None, converter=_older_than)
    error: str | None = attrs.field(default=None, converter=_error)


class Liveness(Protocol):
    """Which rows a live worker holds: retry, delete and prune never touch them.

    The default is ``LockAge``: a lock younger than ``max_run_time`` is live. A registry
    of live workers (heartbeats in a side table) can offer a sharper rule by returning a
    predicate that also names the rows its live workers hold.
    """

    def held(self, backend: SqlBackend, now: datetime) -> Sql:
        """Return a predicate true for the rows a live worker holds at ``now``."""
        ...


@attrs.frozen
class LockAge:
    """A row is held while it is not failed and its lock is younger than ``max_run_time``.

    This is the rule delayed_job's reserve applies before it takes a lock over, so what
    the guard protects is exactly what no worker would steal.
    """

    max_run_time: float

    def held(self, backend: SqlBackend, now: datetime) -> Sql:
        """``failed_at IS NULL AND locked_at >= now - max_run_time``."""
        expiry = now - timedelta(seconds=self.max_run_time)
        sql = f"(failed_at IS NULL AND locked_at IS NOT NULL AND locked_at >= {backend.mark})"
        return sql, [backend._compare(expiry)]


@attrs.frozen
class Scope:
    """The predicates of one operation, all read at the same ``now``.

    Args:
        backend: the connection whose dialect the SQL is written in.
        now: the clock's time when the operation started (naive, as stored).
        max_run_time: the workers' max_run_time in seconds (the lock expiry).
        liveness: the guard of destructive operations (default ``LockAge``).
    """

    backend: SqlBackend
    now: datetime
    max_run_time: float
    liveness: Liveness

    @property
    def expiry(self) -> datetime:
        """Locks taken before this instant have expired."""
        return self.now - timedelta(seconds=self.max_run_time)

    def _p(self, value: datetime) -> object:
        return self.backend._compare(value)

    def ready(self) -> Sql:
        """The worker's own eligibility predicate (``SqlBackend.where``), for any worker."""
        request = ReserveRequest(
            worker_name=NO_WORKER, now=self.now, max_run_time=self.max_run_time
        )
        sql, params = self.backend.where(request)
        return f"({sql})", params

    def state(self, state: State) -> Sql:
        """The predicate of one state (see the module docstring)."""
        m, expiry = self.backend.mark, self._p(self.expiry)
        if state == "ready":
            return self.ready()
        if state == "failed":
            return "failed_at IS NOT NULL", []
        if state == "running":
            return f"(failed_at IS NULL AND locked_at >= {m})", [expiry]
        free = f"(locked_at IS NULL OR locked_at < {m})"
        if state == "scheduled":
            return f"(failed_at IS NULL AND run_at > {m} AND {free})", [self._p(self.now), expiry]
        return f"(failed_at IS NULL AND run_at IS NULL AND {free})", [expiry]

    def state_case(self, values: Mapping[State, Sql] | None = None) -> Sql:
        """A SQL expression giving each row's state name, or ``values[state]`` (an SQL
        expression with its parameters) for the row's state."""
        given = values or {state: (f"'{state}'", []) for state in STATES}
        ready, ready_params = self.ready()
        m = self.backend.mark
        sql = (
            f"CASE WHEN failed_at IS NOT NULL THEN {given['failed'][0]} "
            f"WHEN {ready} THEN {given['ready'][0]} "
            f"WHEN locked_at >= {m} THEN {given['running'][0]} "
            f"WHEN run_at > {m} THEN {given['scheduled'][0]} "
            f"ELSE {given['stuck'][0]} END"
        )
        params = [
            *given["failed"][1],
            *ready_params,
            *given["ready"][1],
            self._p(self.expiry),
            *given["running"][1],
            self._p(self.now),
            *given["scheduled"][1],
            *given["stuck"][1],
        ]
        return sql, params

    def not_held(self) -> Sql:
        """True for rows no live worker holds (the guard of every destructive write)."""
        sql, params = self.liveness.held(self.backend, self.now)
        # CASE makes a NULL from the rule count as "not held" instead of dropping the row.
        return f"(CASE WHEN {sql} THEN 0 ELSE 1 END) = 1", params

    def where(self, jobs: JobFilter, *, guarded: bool = False) -> Sql:
        """The WHERE clause of ``jobs`` (the name glob only as its SQL prefilter).

        ``guarded`` adds the live-worker guard, for writes and their dry runs.
        """
        m = self.backend.mark
        parts: list[Sql] = []
        if jobs.ids is not None:
            marks = ", ".join([m] * len(jobs.ids))
            parts.append((f"id IN ({marks})" if jobs.ids else "1 = 0", list(jobs.ids)))
        if jobs.state != "all":
            parts.append(self.state(jobs.state))
        if jobs.queues is not None:
            parts.append(queue_predicate(jobs.queues, m))
        if jobs.older_than is not None:
            cutoff = self.now - timedelta(seconds=jobs.older_than)
            parts.append((f"COALESCE(failed_at, run_at) < {m}", [self._p(cutoff)]))
        if jobs.name is not None:
            like = name_prefilter(jobs.name)
            if like is not None:
                parts.append((f"handler LIKE {m} ESCAPE '!'", [like]))
        if jobs.error is not None:
            # LOWER on both sides: the same case-blind search on every database.
            pattern = f"%{like_escape(jobs.error.lower())}%"
            parts.append((f"LOWER(last_error) LIKE {m} ESCAPE '!'", [pattern]))
        if guarded:
            parts.append(self.not_held())
        return conjunction(parts)


def conjunction(parts: Sequence[Sql]) -> Sql:
    """AND the predicates together (``1 = 1`` when there are none)."""
    if not parts:
        return "1 = 1", []
    return " AND ".join(sql for sql, _ in parts), [p for _, params in parts for p in params]


def queue_predicate(queues: Sequence[str | None], mark: str) -> Sql:
    """``queue IN (...)``, with ``queue IS NULL`` for a None entry, as the worker filters."""
    named = [queue for queue in queues if queue is not None]
    parts = []
    if named:
        parts.append(f"queue IN ({', '.join([mark] * len(named))})")
    if None in queues:
        parts.append("queue IS NULL")
    return f"({' OR '.join(parts) or '1 = 0'})", list(named)


# Receivers that are plain Ruby values are named by their Ruby class (``String#upcase``),
# which their handler never spells out: a glob fragment inside one of these cannot be
# looked for in the handler text.
_VALUE_CLASSES = (
    *("NilClass", "TrueClass", "FalseClass", "Integer", "Float", "String", "Symbol"),
    *("Array", "Hash", "Set", "BigDecimal", "Time", "Date", "Range", "Object"),
)
_GLOB_CLASS = re.compile(r"\[[^\]]*\]")


def name_prefilter(pattern: str) -> str | None:
    """A ``LIKE`` pattern every handler whose decoded name matches ``pattern`` satisfies.

    The worker's class-aware reservation looks for the same text (``handler_marker``):
    the method name of a ``.delay`` call, else the class name. For a glob, the longest
    literal run of that part is used; None when no such text is certain to be in the
    handler (then every row is decoded and matched).
    """
    if fnmatch.fnmatchcase(UNKNOWN_NAME, pattern):
        return None
    marker = handler_marker(pattern)
    literal_runs = re.split(r"[*?]", _GLOB_CLASS.sub("*", marker))
    longest = max(literal_runs, key=len)
    if len(longest) < 2:
        return None
    # A glob without "#"/"." may match "Class#method" through its wildcards; the
    # fragment is then part of the class name, absent from value receivers' handlers.
    through_wildcards = marker == pattern and longest != pattern
    if through_wildcards and any(longest in value_class for value_class in _VALUE_CLASSES):
        return None
    return f"%{like_escape(longest)}%"


def like_escape(text: str) -> str:
    """Escape ``text`` for ``LIKE ... ESCAPE '!'`` (the escape the worker's filter uses)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
