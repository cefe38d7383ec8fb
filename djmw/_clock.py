"""The clock djmw reads "now" from: naive UTC, as ActiveRecord writes with default_timezone :utc."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time as a naive UTC datetime (microsecond precision)."""
    return datetime.now(UTC).replace(tzinfo=None)


def local_now() -> datetime:
    """Return the current local wall time, naive; mimics ``default_timezone = :local``."""
    return datetime.now()
