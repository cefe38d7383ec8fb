"""Write ``handler`` YAML that a Ruby delayed_job 4.1 worker loads: the reverse of ``payload``.

Use it to enqueue jobs for Ruby workers from Python (store the text in ``handler``; the
row's ``queue``, ``priority`` and ``run_at`` columns are the caller's business), and in
tests. The output follows Psych's layout (``--- !ruby/struct:Name`` then one
``key: value`` per line) and reads back through ``djmw.ruby.payload.decode_handler`` to the
same values.

Values that can be written, and how (see ``djmw.ruby.values`` for the whole mapping):
None, bool, int, float, str (quoted whenever Psych would read it as something else:
``'true'``, ``':x'``, ``'1'``, ``''``), bytes (``!binary``), ``Symbol``, ``Decimal``
(``!ruby/object:BigDecimal``), aware datetime (a Ruby Time in UTC; naive ones are
refused), date, timedelta (an ActiveSupport::Duration), Fraction, complex, list, tuple,
dict, frozenset (a Set), ``RubyModule``, ``RecordRef`` (Rails 6.1+ record YAML),
``RubyRange``, ``RubyRegexp`` and ``RubyObject``. Anything else raises TypeError.

Limits: strings are written on one line (double-quoted with escapes when they are not
plain-safe), not folded as Psych does; ``KeywordArgs`` outside ``active_job`` is a Hash
with Symbol keys; ``GlobalId`` is only meaningful as an ActiveJob argument.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import attrs

from djmw.ruby._activejob import serialize_argument
from djmw.ruby._yaml_scalars import check_constant, duration_seconds, iso8601, to_utc, tokenize
from djmw.ruby.values import (
    KeywordArgs,
    RecordRef,
    RubyModule,
    RubyObject,
    RubyRange,
    RubyRegexp,
    Symbol,
)

__all__ = ["active_job", "dump_value", "method_call", "struct_job"]

_MEMBER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"\w[\w ./()+=$^~;<>!?@&*%,:#'-]*")
_NEEDS_ESCAPE = re.compile(
    '[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]|["\\\\]'
)
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\x00": "\\0"}
_MAX_SIMPLE_KEY = 1000  # YAML limits implicit keys to 1024 characters
_KIND_TAGS = {
    "object": "!ruby/object:",
    "struct": "!ruby/struct:",
    "exception": "!ruby/exception:",
    "data": "!ruby/data:",
    "marshalable": "!ruby/marshalable:",
}
_JOB_WRAPPER = "ActiveJob::QueueAdapters::DelayedJobAdapter::JobWrapper"


@attrs.frozen
class _Block:
    """A multi-line node: optional tag, then lines relative to its own indentation."""

    tag: str
    sequence: bool
    lines: list[str]


_Node = str | _Block


def struct_job(class_name: str, fields: Mapping[str, object]) -> str:
    """Handler for a custom job that is a Ruby Struct: ``--- !ruby/struct:Name``.

    Args:
        class_name: the Struct class (a constant path such as ``"Reports::Nightly"``).
        fields: the member values, in the Struct's declaration order.

    Raises:
        ValueError: a class or member name that Ruby would not accept.
        TypeError: a value of a type this module cannot write.
    """
    check_constant(class_name)
    for name in fields:
        if not isinstance(name, str) or not _MEMBER.fullmatch(name):
            msg = f"{name!r} is not a Ruby Struct member name"
            raise ValueError(msg)
    return _document(RubyObject(class_name, dict(fields), kind="struct"))


def method_call(
    receiver: RubyModule | RecordRef | RubyObject,
    method_name: str,
    args: Sequence[object] = (),
    kwargs: Mapping[str, object] | None = None,
    *,
    mailer: bool = False,
) -> str:
    """Handler for ``receiver.delay.method_name(*args, **kwargs)`` (Delayed::PerformableMethod).

    Args:
        receiver: a class or module, an Active Record object (written as Rails 6.1+
            ``concise_attributes`` holding only the id; Ruby reloads the row by primary
            key, and older Rails cannot read that format), or a plain object.
        method_name: the method to call.
        args: positional arguments.
        kwargs: keyword arguments, written as delayed_job 4.1 does: a trailing Hash with
            Symbol keys, which Ruby passes positionally (methods with required keywords
            fail under Ruby 3, delayed_job issue #1134).
        mailer: write a ``Delayed::PerformableMailer`` (the receiver is a mailer class).

    Raises:
        ValueError / TypeError: as ``struct_job``.
    """
    if not isinstance(receiver, RubyModule | RecordRef | RubyObject):
        kind = type(receiver).__name__
        msg = f"a method call receiver must be a RubyModule, RecordRef or RubyObject, not {kind}"
        raise TypeError(msg)
    if not isinstance(method_name, str) or not method_name:
        msg = f"{method_name!r} is not a method name"
        raise ValueError(msg)
    arguments = list(args)
    if kwargs:
        arguments.append({Symbol(name): value for name, value in kwargs.items()})
    name = "Delayed::PerformableMailer" if mailer else "Delayed::PerformableMethod"
    fields = {"object": receiver, "method_name": Symbol(method_name), "args": arguments}
    return _document(RubyObject(name, fields))


def active_job(
    job_class: str,
    arguments: Sequence[object],
    *,
    queue_name: str = "default",
    priority: int | None = None,
    job_id: str | None = None,
    locale: str = "en",
    timezone: str = "UTC",
    enqueued_at: datetime | None = None,
) -> str:
    """Handler for an ActiveJob job, as the Rails 6.1 delayed_job adapter writes it.

    Arguments are serialized as ``ActiveJob::Arguments`` does: Symbol, aware datetime
    (TimeSerializer, in UTC), date, timedelta (DurationSerializer, in seconds),
    ``RubyModule`` (ModuleSerializer) and ``RubyRange`` (RangeSerializer, Rails 7.1+)
    get ``_aj_serialized``; ``GlobalId`` gets ``_aj_globalid``; a dict gets
    ``_aj_symbol_keys`` (its keys must be str or Symbol); ``KeywordArgs`` gets
    ``_aj_ruby2_keywords``; Decimal is embedded as a raw BigDecimal (Rails 6.1 has no
    BigDecimalSerializer); None, bool, int, float, str and bytes stay as they are.

    Args:
        job_class: the ActiveJob class name.
        arguments: the ``perform`` arguments.
        queue_name / priority: recorded in ``job_data``; also set the row's columns.
        job_id: ActiveJob's id; a new UUID4 when None.
        locale / timezone: ``I18n.locale`` and ``Time.zone`` to run under.
        enqueued_at: aware datetime; now when None.

    Raises:
        TypeError: an argument type ActiveJob cannot serialize.
        ValueError: a reserved ``_aj_*`` hash key, a naive datetime, a bad class name.
    """
    check_constant(job_class)
    when = to_utc(enqueued_at) if enqueued_at is not None else datetime.now(UTC)
    job_data: dict[str, object] = {
        "job_class": job_class,
        "job_id": job_id if job_id is not None else str(uuid.uuid4()),
        "provider_job_id": None,
        "queue_name": queue_name,
        "priority": priority,
        "arguments": [serialize_argument(argument) for argument in arguments],
        "executions": 0,
        "exception_executions": {},
        "locale": locale,
        "timezone": timezone,
        "enqueued_at": iso8601(when, whole_seconds=when.microsecond == 0),
    }
    return _document(RubyObject(_JOB_WRAPPER, {"job_data": job_data}))


def dump_value(value: object) -> str:
    """One YAML document (``--- ...``) holding ``value``, as Psych would load it.

    Raises:
        TypeError: a value of a type this module cannot write.
        ValueError: a value of a supported type that Ruby cannot represent (naive
            datetime, lone surrogate, bad class name).
    """
    return _document(value)


def _document(value: object) -> str:
    node = _node(value)
    if isinstance(node, str):
        return f"--- {node}\n" if node else "---\n"
    head = f"--- {node.tag}" if node.tag else "---"
    return "\n".join([head, *node.lines]) + "\n"


def _node(value: object) -> _Node:
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if isinstance(value, KeywordArgs):
        return _mapping("", [(Symbol(key), item) for key, item in value.items()])
    if isinstance(value, list | tuple):
        return _sequence(value) if value else "[]"
    if isinstance(value, dict):
        return _mapping("", value.items())
    if isinstance(value, RubyObject):
        return _ruby_object(value)
    if isinstance(value, RecordRef):
        return _record(value)
    if isinstance(value, RubyRange):
        fields = [("begin", value.begin), ("end", value.end), ("excl", value.exclusive)]
        return _mapping("!ruby/range", fields)
    if isinstance(value, frozenset):
        return _mapping("!ruby/object:Set", [("hash", dict.fromkeys(value, True))])
    if isinstance(value, Fraction):
        fields = [("denominator", value.denominator), ("numerator", value.numerator)]
        return _mapping("!ruby/object:Rational", fields)
    if isinstance(value, complex):
        fields = [("real", _whole(value.real)), ("image", _whole(value.imag))]
        return _mapping("!ruby/object:Complex", fields)
    if isinstance(value, timedelta):
        seconds = duration_seconds(value)
        fields = [("value", seconds), ("parts", {Symbol("seconds"): seconds})]
        return _mapping("!ruby/object:ActiveSupport::Duration", fields)
    msg = (
        f"cannot write a {type(value).__name__} ({_short(value)}) as Ruby YAML; see"
        " djmw.ruby.encode for the supported types"
    )
    raise TypeError(msg)


def _scalar(value: object) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Symbol):
        return _symbol(value.name)
    if isinstance(value, bytes):
        return f'!binary "{base64.b64encode(value).decode("ascii")}"'
    if isinstance(value, Decimal):
        return f"!ruby/object:BigDecimal {_big_decimal(value)}"
    if isinstance(value, datetime):
        return _psych_time(value)
    if isinstance(value, date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, RubyModule):
        return f"!ruby/class '{check_constant(value.name)}'"
    if isinstance(value, RubyRegexp):
        return f"!ruby/regexp {_quote(f'/{value.source}/{value.options}')}"
    return None


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    # Psych only reads a float with a "." in its mantissa and a signed exponent.
    mantissa, marker, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}{marker}{exponent}"


def _plain_safe(text: str) -> bool:
    # Conservative: a plain scalar that cannot be misread in block context.
    return bool(
        _PLAIN.fullmatch(text)
        and not text.endswith((" ", ":"))
        and ": " not in text
        and " #" not in text
    )


def _string(text: str) -> str:
    # Psych also quotes y/n, which other YAML 1.1 readers take for booleans.
    if _plain_safe(text) and text not in ("y", "Y", "n", "N") and type(tokenize(text)) is str:
        return text
    return _quote(text)


def _quote(text: str) -> str:
    return f'"{_NEEDS_ESCAPE.sub(_escape, text)}"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        msg = f"lone surrogate U+{code:04X} cannot be written as UTF-8"
        raise ValueError(msg)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _symbol(name: str) -> str:
    text = ":" + name
    if _plain_safe(name) and tokenize(text) == Symbol(name):
        return text
    return f"!ruby/symbol {_quote(name)}"


def _big_decimal(value: Decimal) -> str:
    # BigDecimal#_dump: "<precision>:<0.DIGITSeEXP>"; the precision only sizes Ruby's buffer.
    if value.is_nan():
        return "9:NaN"
    if value.is_infinite():
        return "9:-Infinity" if value.is_signed() else "9:Infinity"
    sign, digits, raw_exponent = value.as_tuple()
    exponent = int(raw_exponent)  # an int for every finite Decimal
    trimmed = list(digits)
    while len(trimmed) > 1 and trimmed[-1] == 0:
        trimmed.pop()
        exponent += 1
    minus = "-" if sign else ""
    if trimmed == [0]:
        return f"9:{minus}0.0"
    precision = 9 * (-(-len(trimmed) // 9) + 1)
    return f"{precision}:{minus}0.{''.join(map(str, trimmed))}e{len(trimmed) + exponent}"


def _psych_time(value: datetime) -> str:
    utc = to_utc(value)
    return f"{utc.year:04d}-{utc:%m-%d %H:%M:%S}.{utc.microsecond:06d}000 Z"


def _sequence(items: Iterable[object]) -> _Block:
    lines: list[str] = []
    for item in items:
        node = _node(item)
        if isinstance(node, str):
            lines.append(f"- {node}" if node else "-")
        elif node.tag:
            lines.append(f"- {node.tag}")
            lines.extend("  " + line for line in node.lines)
        else:
            lines.append("- " + node.lines[0])
            lines.extend("  " + line for line in node.lines[1:])
    return _Block("", sequence=True, lines=lines)


def _mapping(tag: str, items: Iterable[tuple[object, object]]) -> _Node:
    lines: list[str] = []
    for key, value in items:
        key_text = _scalar(key)
        if key_text is None:
            msg = f"a {type(key).__name__} cannot be a mapping key here; use a scalar"
            raise TypeError(msg)
        key_text = key_text or "~"
        node = _node(value)
        if len(key_text) > _MAX_SIMPLE_KEY:
            lines.append(f"? {key_text}")
            key_text = ""
        if isinstance(node, str):
            lines.append(f"{key_text}: {node}" if node else f"{key_text}:")
        elif node.sequence and not node.tag and key_text:
            lines.append(f"{key_text}:")
            lines.extend(node.lines)
        else:
            lines.append(f"{key_text}: {node.tag}" if node.tag else f"{key_text}:")
            lines.extend("  " + line for line in node.lines)
    if not lines:
        return f"{tag} {{}}" if tag else "{}"
    return _Block(tag, sequence=False, lines=lines)


def _ruby_object(value: RubyObject) -> _Node:
    prefix = _KIND_TAGS.get(value.kind)
    if value.kind == "scalar":
        inner = _scalar(value.fields.get("value"))
        if inner is not None and not inner.startswith("!"):
            return f"!ruby/object:{check_constant(value.class_name)} {inner}"
    if prefix is None:
        msg = f"cannot write a RubyObject of kind {value.kind!r} as YAML"
        raise TypeError(msg)
    return _mapping(prefix + check_constant(value.class_name), value.fields.items())


def _record(value: RecordRef) -> _Node:
    if _scalar(value.primary_key) is None:
        msg = f"a record's primary key must be a scalar, not {type(value.primary_key).__name__}"
        raise TypeError(msg)
    attribute = RubyObject(
        "ActiveModel::Attribute::FromDatabase",
        {"name": "id", "value_before_type_cast": value.primary_key},
    )
    fields = {
        "concise_attributes": [attribute],
        "new_record": False,
        "active_record_yaml_version": 2,
    }
    return _mapping("!ruby/object:" + check_constant(value.class_name), fields.items())


def _whole(number: float) -> float | int:
    return int(number) if number.is_integer() else number


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
