"""Durations and times as operators type them (``30d``, ``2h``, ``+5m``) and read them back.

Used by the operations API (``djmw.admin``), the ``djmw jobs`` commands and the worker's
``prune_failed_after`` option, so that ``30d`` means the same everywhere. No I/O.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from djmw.errors import ConfigurationError

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|min|m|sec|s)", re.IGNORECASE)
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")
_WHOLE = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*(?:w|d|h|min|m|sec|s)\s*)+", re.IGNORECASE)


def parse_duration(value: object, what: str = "duration") -> float:
    """Return ``value`` in seconds: a number of seconds, or text like ``90s``, ``5m``,
    ``2h``, ``30d``, ``1w``, ``1h30m``.

    Raises:
        ConfigurationError: naming ``what`` and the value, for anything else or a
            negative number.
    """
    if (isinstance(value, int | float) and not isinstance(value, bool)) or (
        isinstance(value, str) and _NUMBER.fullmatch(value)
    ):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.fullmatch(value):
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in _PART.findall(value))
    else:
        msg = f"{what} must be seconds or a duration like 90s, 5m, 2h, 30d or 1w, got {value!r}."
        raise ConfigurationError(msg)
    if seconds < 0 or not math.isfinite(seconds):
        msg = f"{what} must be a finite duration >= 0, got {value!r}."
        raise ConfigurationError(msg)
    return seconds


def parse_time(value: str, now: datetime, what: str = "time") -> datetime:
    """Return the naive time ``value`` names: ISO 8601 (naive = the table's time zone,
    UTC by default; an offset is converted to naive UTC), ``now``, or ``+<duration>``
    / ``<duration>`` from ``now`` (``+5m``, ``2h``)."""
    text = value.strip()
    if text.lower() == "now":
        return now
    relative = text[1:] if text.startswith("+") else text
    try:
        return now + timedelta(seconds=parse_duration(relative, what))
    except ConfigurationError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        msg = (
            f"{what} must be an ISO 8601 time (2026-01-31T12:00:00), 'now' or a delay like "
            f"+5m, got {value!r}."
        )
        raise ConfigurationError(msg) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def human(seconds: float) -> str:
    """Return a short reading of ``seconds``: ``12 s``, ``4 min``, ``3 h``, ``3 days``."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    days = seconds / 86400
    return f"{days:.0f} day" if round(days) == 1 else f"{days:.0f} days"
