"""Summaries of the table: ``Stats`` (counts per state), ``FailureGroup`` (what is
broken) and ``CheckResult`` (delayed_job's ``jobs:check``), each with ``to_dict()``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from djmw.admin.rows import JobRow, iso
from djmw.admin.scope import STATES, State


@attrs.define(kw_only=True)
class Group:
    """Counts for one queue, job name or state.

    Attributes:
        key: the queue (None = the NULL queue), the job name, or the state.
        counts: rows per state.
        retrying: rows waiting for a retry or being retried (not failed, attempts > 0).
        oldest_ready: run_at of the oldest ready row: how long the queue lags.
        failed_last_hour / failed_last_day: rows whose failed_at is that recent.
    """

    key: str | None
    counts: dict[State, int] = attrs.field(factory=lambda: dict.fromkeys(STATES, 0))
    retrying: int = 0
    oldest_ready: datetime | None = None
    failed_last_hour: int = 0
    failed_last_day: int = 0

    @property
    def total(self) -> int:
        """Rows in the group."""
        return sum(self.counts.values())

    def add(
        self,
        state: State,
        count: int,
        *,
        retrying: int = 0,
        oldest: datetime | None = None,
        last_hour: int = 0,
        last_day: int = 0,
    ) -> None:
        """Fold one partial count into the group."""
        self.counts[state] += count
        self.retrying += retrying
        self.failed_last_hour += last_hour
        self.failed_last_day += last_day
        newer = self.oldest_ready is not None and oldest is not None and oldest >= self.oldest_ready
        if state == "ready" and oldest is not None and not newer:
            self.oldest_ready = oldest

    def to_dict(self, now: datetime) -> dict[str, object]:
        """Counts per state, total, retrying, the oldest ready row and recent failures."""
        age = (now - self.oldest_ready).total_seconds() if self.oldest_ready else None
        return {
            "key": self.key,
            **{state: self.counts[state] for state in STATES},
            "total": self.total,
            "retrying": self.retrying,
            "oldest_ready_run_at": iso(self.oldest_ready),
            "oldest_ready_age_seconds": age,
            "failed_last_hour": self.failed_last_hour,
            "failed_last_day": self.failed_last_day,
        }


@attrs.frozen(kw_only=True)
class Stats:
    """``Jobs.stats``: counts per state per group, the queue latency, recent failures
    and the rows each worker holds now.

    Attributes:
        by: ``queue``, ``name`` or ``state``.
        now: when the counts were taken (the clock's time).
        groups: one per key, ordered by key (None first).
        total: every row.
        workers: running rows per ``locked_by``.
    """

    by: str
    now: datetime
    groups: Sequence[Group]
    total: Group
    workers: Mapping[str, int]

    def to_dict(self) -> dict[str, object]:
        """``{"by", "now", "groups": [...], "total": {...}, "workers": [...], "count"}``."""
        return {
            "by": self.by,
            "now": iso(self.now),
            "groups": [group.to_dict(self.now) for group in self.groups],
            "total": self.total.to_dict(self.now),
            "workers": [{"locked_by": name, "locked": n} for name, n in self.workers.items()],
            "count": self.total.total,
        }


@attrs.define(kw_only=True)
class FailureGroup:
    """Failed and erroring rows that share a job name, error class and message.

    Attributes:
        name: the decoded job name.
        error_class: the class when last_error shows it (``Job failed to load`` is
            Delayed::DeserializationError, ``execution expired`` a JobTimeout); None
            otherwise, as delayed_job's last_error stores only the message and backtrace.
        message: the first line of last_error.
        origin: the first backtrace line of the newest row (where it was raised).
        failed: rows with failed_at set.
        erroring: rows still retrying (failed_at NULL, attempts > 0).
        newest_id: the highest row id in the group.
    """

    name: str
    error_class: str | None
    message: str
    origin: str | None = None
    failed: int = 0
    erroring: int = 0
    newest_id: int = 0

    @property
    def count(self) -> int:
        """Rows in the group."""
        return self.failed + self.erroring

    def to_dict(self) -> dict[str, object]:
        """The group's fields and its count."""
        return {
            "name": self.name,
            "error_class": self.error_class,
            "message": self.message,
            "origin": self.origin,
            "count": self.count,
            "failed": self.failed,
            "erroring": self.erroring,
            "newest_id": self.newest_id,
        }


@attrs.frozen(kw_only=True)
class FailureSummary:
    """``Jobs.failure_summary``: failure groups and how many broken rows they cover.

    Attributes:
        groups: largest group first (see ``FailureGroup``).
        rows: broken rows read (the sum of the groups' counts).
        complete: False when only the newest ``newest`` rows were read and older
            broken rows exist.
    """

    groups: Sequence[FailureGroup]
    rows: int
    complete: bool

    def to_dict(self) -> dict[str, object]:
        """``{"groups": [...], "count", "complete"}``."""
        return {
            "groups": [group.to_dict() for group in self.groups],
            "count": self.rows,
            "complete": self.complete,
        }


@attrs.frozen(kw_only=True)
class Timeline:
    """``Jobs.timeline``: rows per hour around now, for charts.

    Attributes:
        now: the clock's time the hours are counted from.
        hours: buckets on each side of now.
        failed: rows whose failed_at falls in each of the last ``hours`` hours, oldest
            first (``failed[-1]`` is the hour ending now).
        scheduled: scheduled rows (the ``scheduled`` state) whose run_at falls in each of
            the next ``hours`` hours, soonest first (``scheduled[0]`` starts now).
    """

    now: datetime
    hours: int
    failed: Sequence[int]
    scheduled: Sequence[int]

    def to_dict(self) -> dict[str, object]:
        """``{"now", "hours", "failed": [...], "scheduled": [...]}``."""
        return {
            "now": iso(self.now),
            "hours": self.hours,
            "failed": list(self.failed),
            "scheduled": list(self.scheduled),
        }


def error_class(message: str) -> str | None:
    """The error class a last_error message reveals, or None."""
    if message.startswith("Job failed to load:"):
        return "Delayed::DeserializationError"
    if message.startswith("execution expired"):
        return "JobTimeout"
    return None


@attrs.frozen(kw_only=True)
class CheckResult:
    """``Jobs.check``: delayed_job's ``jobs:check`` for cron and alerting.

    Attributes:
        max_age: seconds a ready row may wait past its run_at.
        late: how many ready rows waited longer; ``late_rows`` names the first 20 by id.
        failed: how many failed rows exist (0 when ignored); ``failed_rows`` the 20
            highest ids.
    """

    max_age: float
    late: int
    late_rows: Sequence[JobRow]
    failed: int
    failed_rows: Sequence[JobRow]

    @property
    def ok(self) -> bool:
        """True when no ready row is late and no failed row counts."""
        return self.late == 0 and self.failed == 0

    def to_dict(self) -> dict[str, object]:
        """``{"ok", "max_age", "late", "late_rows", "failed", "failed_rows"}``."""
        return {
            "ok": self.ok,
            "max_age": self.max_age,
            "late": self.late,
            "late_rows": [row.to_dict() for row in self.late_rows],
            "failed": self.failed,
            "failed_rows": [row.to_dict() for row in self.failed_rows],
        }
