"""Decoded payloads as plain data (for ``--json``) and as pretty text (for terminals).

A handler's payload is made of djmw's Ruby value types (``djmw.ruby.values``) inside
``StructJob``/``ObjectJob``/``MethodCall``/``ActiveJobCall``. ``to_plain`` turns it into
JSON-ready data with stable keys; ``pretty`` prints it the way a perform function sees it
(``StructJob(class_name='NewsletterJob', fields={...})``), one field per line when long.
Neither ever runs code from the row.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

import attrs

from djmw.ruby.values import KeywordArgs, Symbol

#: Lines longer than this are broken up by ``pretty``.
WIDTH = 88


def to_plain(value: object, depth: int = 0) -> object:
    """Return ``value`` as JSON-ready data.

    ``None``, bool, int, float and str stay; lists, tuples and str-keyed dicts keep their
    shape; anything else becomes an object with a ``type`` key: attrs values
    (``{"type": "StructJob", "class_name": ..., "fields": ...}``), ``Symbol`` (``name``),
    bytes (``base64``), times (``iso``), Decimal/Fraction/complex (``value``), dicts with
    other keys (``items``: [key, value] pairs) and frozensets (``items``).
    """
    if depth > 200:
        return {"type": "...", "repr": "nested too deeply"}
    deeper = depth + 1
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"type": "float", "value": repr(value)}
    if isinstance(value, Symbol):
        return {"type": "Symbol", "name": value.name}
    if isinstance(value, bytes):
        return {"type": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime | date):
        return {"type": type(value).__name__, "iso": value.isoformat()}
    if isinstance(value, timedelta):
        return {"type": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, Decimal | Fraction | complex):
        return {"type": type(value).__name__, "value": str(value)}
    if isinstance(value, list | tuple):
        return [to_plain(item, deeper) for item in value]
    if isinstance(value, frozenset | set):
        return {"type": "Set", "items": [to_plain(item, deeper) for item in value]}
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value) and not isinstance(value, KeywordArgs):
            return {key: to_plain(item, deeper) for key, item in value.items()}
        items = [[to_plain(key, deeper), to_plain(item, deeper)] for key, item in value.items()]
        return {"type": type(value).__name__, "items": items}
    if attrs.has(type(value)):
        fields = {
            field.name: to_plain(getattr(value, field.name), deeper)
            for field in attrs.fields(cast(Any, type(value)))
        }
        return {"type": type(value).__name__, **fields}
    return {"type": type(value).__name__, "repr": repr(value)}


def pretty(value: object, indent: int = 0) -> str:
    """Return ``value`` as Python-like text, broken over lines when it is long."""
    flat = _flat(value)
    if len(flat) + indent <= WIDTH or indent > 80:
        return flat
    inner = " " * (indent + 4)
    close = " " * indent
    if attrs.has(type(value)):
        lines = [
            f"{inner}{field.name}={pretty(getattr(value, field.name), indent + 4)},"
            for field in attrs.fields(cast(Any, type(value)))
        ]
        return f"{type(value).__name__}(\n" + "\n".join(lines) + f"\n{close})"
    if isinstance(value, Mapping):
        lines = [f"{inner}{_flat(key)}: {pretty(item, indent + 4)}," for key, item in value.items()]
        head = "KeywordArgs({" if isinstance(value, KeywordArgs) else "{"
        tail = "})" if isinstance(value, KeywordArgs) else "}"
        return head + "\n" + "\n".join(lines) + f"\n{close}{tail}"
    if isinstance(value, list | tuple):
        lines = [f"{inner}{pretty(item, indent + 4)}," for item in value]
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        return opening + "\n" + "\n".join(lines) + f"\n{close}{closing}"
    return flat


def _flat(value: object) -> str:
    if attrs.has(type(value)) and not isinstance(value, Symbol):
        fields = ", ".join(
            f"{field.name}={_flat(getattr(value, field.name))}"
            for field in attrs.fields(cast(Any, type(value)))
        )
        return f"{type(value).__name__}({fields})"
    if isinstance(value, Mapping):
        body = ", ".join(f"{_flat(key)}: {_flat(item)}" for key, item in value.items())
        return f"KeywordArgs({{{body}}})" if isinstance(value, KeywordArgs) else f"{{{body}}}"
    if isinstance(value, list):
        return "[" + ", ".join(_flat(item) for item in value) + "]"
    if isinstance(value, tuple):
        body = ", ".join(_flat(item) for item in value)
        return f"({body},)" if len(value) == 1 else f"({body})"
    return repr(value)
