"""Ruby's own view of a value, as the Python value djmw gives for it, and a strict comparison.

tests/ruby/env.rb (``DjLab.describe``) writes every Ruby value it is shown as JSON: in
``expected`` of each job enqueue.rb prints (and tests/fixtures/ruby/expected.json), and in
the records Ruby's job code appends to ``DJ_RECORD``. The format is in tests/ruby/README.md.
``ruby_value`` turns such a description into what djmw decodes; ``same`` then compares it
with djmw's value, types included::

    assert same(dict(payload.fields), {k: ruby_value(v) for k, v in members.items()})
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from djmw.ruby.values import (
    GlobalId,
    KeywordArgs,
    RecordRef,
    RubyModule,
    RubyObject,
    RubyRange,
    RubyRegexp,
    Symbol,
)

__all__ = ["ruby_value", "same", "utc"]


def ruby_value(description: Any, *, activejob: bool = False) -> object:
    """Turn a value described by ``DjLab.describe`` into the Python value djmw decodes.

    JSON scalars stay as they are and Arrays become lists. A Hash, with indifferent access
    or not, becomes a dict, or KeywordArgs when Ruby flagged it as keywords
    (``ruby2_keywords``). A record becomes a RecordRef; with ``activejob`` a GlobalID (app
    ``djlab``) instead, as in ``ActiveJobCall.arguments``. Times of every kind become aware
    UTC datetimes (see ``utc``). A description of a kind djmw has no value for fails the
    test (AssertionError).
    """

    def convert(item: Any) -> object:
        return ruby_value(item, activejob=activejob)

    if isinstance(description, list):
        return [convert(item) for item in description]
    if not isinstance(description, dict):
        return description
    ((kind, content), *rest) = description.items()
    extra = dict(rest)
    if kind in ("hash", "hash_with_indifferent_access"):
        pairs = {convert(key): convert(item) for key, item in content}
        if extra.get("ruby2_keywords"):
            return KeywordArgs({key.name: item for key, item in pairs.items()})  # type: ignore[attr-defined]
        return pairs
    if kind == "record":
        if activejob:
            uri = f"gid://djlab/{content}/{extra['id']}"
            return GlobalId(uri, "djlab", content, str(extra["id"]))
        return RecordRef(content, extra["id"])
    if kind == "struct":
        return RubyObject(content, {k: convert(v) for k, v in extra["members"].items()}, "struct")
    if kind == "object":
        return RubyObject(content, {k: convert(v) for k, v in extra["ivars"].items()})
    if kind == "range":
        return RubyRange(convert(content[0]), convert(content[1]), extra["exclude_end"])
    if kind == "regexp":
        return RubyRegexp(content, extra["flags"])
    if kind == "set":
        return frozenset(convert(item) for item in content)
    if kind == "duration":
        return timedelta(seconds=content)
    simple: dict[str, Callable[[Any], object]] = {
        "symbol": Symbol,
        "binary": base64.b64decode,
        "bigdecimal": Decimal,
        "rational": Fraction,
        "complex": lambda text: complex(text.replace("i", "j")),
        "date": date.fromisoformat,
        "time": utc,
        "datetime": utc,
        "time_with_zone": utc,
        "class": RubyModule,
        "module": RubyModule,
        "float": float,
    }
    if kind in simple:
        return simple[kind](content)
    msg = f"no conversion for {description!r}"
    raise AssertionError(msg)


def utc(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (microseconds, as djmw keeps them)."""
    return datetime.fromisoformat(text).astimezone(UTC)


def same(actual: object, expected: object) -> bool:
    """Equality of types and values at any depth (NaN equals NaN).

    Dicts compare key sets and each value; lists and tuples compare length and each item;
    anything else compares with ``==`` once both have the same type (a float and an int
    are never the same, nor a dict and KeywordArgs).
    """
    if isinstance(actual, float) and isinstance(expected, float):
        return actual == expected or (math.isnan(actual) and math.isnan(expected))
    if type(actual) is not type(expected):
        return False
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same(actual[key], expected[key]) for key in actual
        )
    if isinstance(actual, list | tuple) and isinstance(expected, list | tuple):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    return actual == expected
