"""Ruby scalar formats: what an unquoted YAML scalar means to Psych, and the formats djmw writes.

``tokenize`` ports Psych's ``ScalarScanner#tokenize`` (ruby/psych,
lib/psych/scalar_scanner.rb, non-strict integers as in Psych 4 and 5). The loader applies
it to plain scalars; the encoder uses it to decide when a string must be quoted to stay a
string. The writers (``iso8601``, ``duration_seconds``, ``check_constant``) are shared by
the encoder and the ActiveJob argument serializer.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone

from djmw.ruby.values import Symbol

# Ruby's [[:alpha:]] is approximated by "word characters except ASCII digits".
_STRINGISH = re.compile(r"[^0-9.:\-]?(?:[^\W0-9]|[\s!@#$%^&*(){}<>|/\\~;=])+")
_NOT_BOOL_OR_NULL_START = re.compile(r"^[^ytonf~]", re.IGNORECASE | re.MULTILINE)
_NULL_LINE = re.compile(r"^null$", re.IGNORECASE | re.MULTILINE)
_TRUE_LINE = re.compile(r"^(?:yes|true|on)$", re.IGNORECASE | re.MULTILINE)
_FALSE_LINE = re.compile(r"^(?:no|false|off)$", re.IGNORECASE | re.MULTILINE)
_TIME = re.compile(
    r"-?\d{4}-\d{1,2}-\d{1,2}(?:[Tt]|\s+)\d{1,2}:\d\d:\d\d(?:\.\d*)?"
    r"(?:\s*(?:Z|[-+]\d{1,2}:?(?:\d\d)?))?",
    re.ASCII,
)
_DATE = re.compile(r"(\d{4})-(1[012]|0\d|\d)-([12]\d|3[01]|0\d|\d)", re.ASCII)
_QUOTED_SYMBOL = re.compile(r":([\"'])(.*)\1")
_SEXAGESIMAL_INT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9]){1,2}")
_SEXAGESIMAL_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9]){1,2}\.[0-9_]*")
_FLOAT = re.compile(
    r"[-+]?(?:[0-9][0-9_,]*)?\.[0-9]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_FLOAT_CLEANUP = re.compile(r"[,_]|\.([Ee]|$)")
_INTEGER = re.compile(
    r"[-+]?0b[0-1_,]+|[-+]?0[0-7_,]+|[-+]?(?:0|[1-9](?:[0-9]|,[0-9]|_[0-9])*)|[-+]?0x[0-9a-fA-F_,]+"
)
_TIME_PARTS = re.compile(r"(\d+:\d+:\d+)(?:\.(\d*))?\s*(Z|[-+]\d+(?::\d\d)?)?")
_DATE_TIME_SPLIT = re.compile(r"[ tT]")
_DAY = re.compile(r"(-?\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII)
_LEADING_INT = re.compile(r"[-+]?[0-9]+(?:_[0-9]+)*")
_CONSTANT = re.compile(r"[A-Z][A-Za-z0-9_]*(?:::[A-Z][A-Za-z0-9_]*)*")
_ZONE = re.compile(r"([+\-]?)(\d{1,2}):?(\d{1,2})?")


def tokenize(text: str) -> object:
    """Return what Psych makes of a plain scalar: None, bool, int, float, Symbol, dates or str.

    Times become aware datetimes in UTC (truncated to microseconds; a time without a zone
    is read as UTC, as Psych does); dates become ``datetime.date``. Values Python cannot
    represent (year 0, hour 25) stay strings, as Psych keeps text it cannot parse.
    """
    if not text:
        return None
    first = text[0]
    # Fast paths for the two commonest shapes; both agree with the full rules below.
    if first == ":" and len(text) > 1 and "\n" not in text:
        return _symbol(text)
    if first.isascii() and first.isdigit() and text.isascii() and text.isdigit():
        if first != "0" or len(text) == 1:
            return int(text)
        return _integer(text) if _INTEGER.fullmatch(text) else text
    if _STRINGISH.match(text) or "\n" in text:
        return _word(text)
    if _TIME.fullmatch(text):
        return _time_or_text(text)
    if match := _DATE.fullmatch(text):
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return text
    lowered = text.lower()
    if lowered in ("+.inf", ".inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    if _SEXAGESIMAL_INT.fullmatch(text):
        return sum(_to_i(part) * 60 ** abs(i - 2) for i, part in enumerate(text.split(":")))
    if _SEXAGESIMAL_FLOAT.fullmatch(text):
        return sum(_to_f(part) * 60 ** abs(i - 2) for i, part in enumerate(text.split(":")))
    if _FLOAT.fullmatch(text):
        if text in (".", "-.", "+."):
            return text
        return float(_FLOAT_CLEANUP.sub(r"\1", text))
    if _INTEGER.fullmatch(text):
        return _integer(text)
    return text


def _word(text: str) -> object:
    # Ruby's ^ and $ match at every line, hence MULTILINE searches for multi-line text.
    if len(text) > 5 or _NOT_BOOL_OR_NULL_START.search(text):
        return text
    if text == "~" or _NULL_LINE.search(text):
        return None
    if _TRUE_LINE.search(text):
        return True
    if _FALSE_LINE.search(text):
        return False
    return text


def _symbol(text: str) -> Symbol:
    if match := _QUOTED_SYMBOL.match(text):
        inner = match[2]
        return Symbol(inner[1:] if inner.startswith(":") else inner)
    return Symbol(text[1:])


def _integer(text: str) -> int | str:
    digits = text.replace(",", "").replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    body = digits.lstrip("+-")
    try:
        if body[:2] in ("0b", "0x"):
            return sign * int(body[2:], 2 if body[1] == "b" else 16)
        if len(body) > 1 and body[0] == "0":
            return sign * int(body, 8)
        return sign * int(body)
    except ValueError:
        return text


def _to_i(text: str) -> int:
    # Ruby's String#to_i reads the longest integer prefix ("1__0" is 1).
    match = _LEADING_INT.match(text)
    return int(match[0]) if match else 0


def _to_f(text: str) -> float:
    # Ruby's String#to_f reads the longest numeric prefix and ignores underscores.
    cleaned = text.replace("_", "").rstrip(".")
    return float(cleaned) if cleaned not in ("", "+", "-") else 0.0


def _time_or_text(text: str) -> datetime | str:
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        return text


def parse_time(text: str) -> datetime:
    """Parse a YAML/Psych timestamp (``2024-01-02 03:04:05.000006000 Z``) into UTC.

    Raises:
        ValueError, OverflowError: the text is not a timestamp Python can represent.
    """
    pieces = _DATE_TIME_SPLIT.split(text.strip(), maxsplit=1)
    date_part, time_part = pieces if len(pieces) == 2 else (text, "")
    day = _DAY.match(date_part)
    parts = _TIME_PARTS.search(time_part)
    if day is None or parts is None:
        msg = f"not a timestamp: {text!r}"
        raise ValueError(msg)
    hour, minute, second = (int(x) for x in parts[1].split(":"))
    micro = int((parts[2] or "").ljust(6, "0")[:6])
    zone = _utc_offset(parts[3])
    local = datetime(
        int(day[1]), int(day[2]), int(day[3]), hour, minute, second, micro, tzinfo=zone
    )
    return local.astimezone(UTC)


def _utc_offset(zone: str | None) -> timezone:
    if zone is None or zone == "Z":
        return UTC
    match = _ZONE.fullmatch(zone)
    if match is None:
        msg = f"bad UTC offset {zone!r}"
        raise ValueError(msg)
    offset = timedelta(hours=int(match[2]), minutes=int(match[3] or 0))
    return timezone(-offset if match[1] == "-" else offset)


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused (Ruby times always carry an offset).

    Raises:
        ValueError: ``value`` has no timezone.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"naive datetime {value.isoformat()} is ambiguous; give it a tzinfo"
        raise ValueError(msg)
    return value.astimezone(UTC)


def iso8601(value: datetime, *, whole_seconds: bool = False) -> str:
    """Ruby's ``Time#iso8601(9)`` in UTC (``2024-01-02T03:04:05.123456000Z``), or whole seconds."""
    utc = to_utc(value)
    fraction = "" if whole_seconds else f".{utc.microsecond:06d}000"
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}{fraction}Z"


def duration_seconds(value: timedelta) -> float | int:
    """An ActiveSupport::Duration's ``value``: whole seconds as int, else float seconds."""
    if value.microseconds == 0:
        return value.days * 86400 + value.seconds
    return value.total_seconds()


def check_constant(name: str) -> str:
    """Return ``name`` if it is a Ruby constant path (``Reports::Nightly``).

    Raises:
        ValueError: it is not one, so Ruby could not resolve it.
    """
    if not isinstance(name, str) or not _CONSTANT.fullmatch(name):
        msg = f"{name!r} is not a Ruby class name (a constant path such as Reports::Nightly)"
        raise ValueError(msg)
    return name
