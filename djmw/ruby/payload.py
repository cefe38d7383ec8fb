"""Decode a delayed_job ``handler`` into its job name and a typed payload.

``decode_handler`` is what the DecodeYAML middleware calls for every job. It accepts the
shapes Rails apps write (delayed_job_semantics.md, section 6):

=====================================================  =================  =================
handler (top-level tag)                                payload            name
=====================================================  =================  =================
``!ruby/struct:NewsletterJob``                         StructJob          ``NewsletterJob``
``!ruby/object:PlainJob``                              ObjectJob          ``PlainJob``
``!ruby/object:Delayed::PerformableMethod``            MethodCall         ``User#activate!``
                                                                          ``User.cleanup``
``!ruby/object:Delayed::PerformableMailer``            MethodCall         ``UserMailer.welcome``
``!ruby/object:ActiveJob::...::JobWrapper``            ActiveJobCall      the ``job_class``
=====================================================  =================  =================

Anything else fails with ``PayloadDecodeError("Job failed to load: <why>")``, which is
what delayed_job's DeserializationError says too; nothing else ever escapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

import attrs

from djmw.errors import PayloadDecodeError
from djmw.ruby import _yaml
from djmw.ruby._activejob import deserialize_argument, parse_iso_time
from djmw.ruby._yaml_ruby import decode_error
from djmw.ruby.values import (
    RecordRef,
    RubyModule,
    RubyObject,
    RubyRange,
    Symbol,
)

__all__ = [
    "DecodeLimits",
    "Decoded",
    "Payload",
    "StructJob",
    "ObjectJob",
    "MethodCall",
    "ActiveJobCall",
    "decode_handler",
    "display_name",
]


@attrs.frozen(kw_only=True)
class DecodeLimits:
    """Bounds that make a hostile or broken handler fail fast instead of hurting the worker.

    Pass one to ``decode_handler`` or to the DecodeYAML middleware. A handler over any
    limit fails like any undecodable handler (``Job failed to load: ...``).

    Attributes:
        max_bytes: largest handler accepted, in UTF-8 bytes (default 1 MiB; real handlers
            are a few hundred bytes, Active Record ones a few KiB).
        max_depth: deepest nesting of sequences and mappings (default 100). libyaml also
            refuses more than 1000 levels on its own, whatever this says.
        max_nodes: most YAML nodes once aliases are expanded (default 100,000); this is
            what stops "billion laughs" documents.
        max_aliases: most alias references (``*1``) in one handler (default 1,000).
    """

    max_bytes: int = 1_048_576
    max_depth: int = 100
    max_nodes: int = 100_000
    max_aliases: int = 1_000


@attrs.frozen(kw_only=True)
class StructJob:
    """A custom job written as a Ruby Struct (``--- !ruby/struct:NewsletterJob``).

    Attributes:
        class_name: the Struct class, e.g. ``"NewsletterJob"`` or ``"Reports::Nightly"``.
        fields: the members in declaration order (``keyword_init`` structs look the same).
    """

    class_name: str
    fields: Mapping[str, object]


@attrs.frozen(kw_only=True)
class ObjectJob:
    """A custom job written as a plain Ruby object (``--- !ruby/object:PlainJob``).

    Attributes:
        class_name: the job's class.
        fields: its instance variables, named without the ``@``.
    """

    class_name: str
    fields: Mapping[str, object]


@attrs.frozen(kw_only=True)
class MethodCall:
    """A delayed method call: ``Delayed::PerformableMethod`` or ``Delayed::PerformableMailer``.

    Written by ``obj.delay.method(args)``, ``handle_asynchronously`` and
    ``UserMailer.delay.welcome(user)``.

    Attributes:
        receiver: what the method is called on: a ``RubyModule`` (class or module), a
            ``RecordRef`` (an Active Record object, in any of its three YAML formats), a
            ``RubyObject``, or any other decoded value (``None`` when Ruby would load nil,
            in which case delayed_job silently succeeds).
        method_name: the method, without the Symbol colon.
        args: the positional arguments.
        kwargs: a trailing Hash whose keys are all Symbols, taken out of ``args`` with its
            keys as str. delayed_job 4.1 passes that Hash positionally (which breaks Ruby 3
            methods with required keywords); to reproduce it exactly, call
            ``f(*args, dict(kwargs))`` instead of ``f(*args, **kwargs)``.
        mailer: True for ``PerformableMailer``: the result is a mail to deliver.
    """

    receiver: object
    method_name: str
    args: tuple[object, ...] = ()
    kwargs: Mapping[str, object] = attrs.field(factory=dict)
    mailer: bool = False


@attrs.frozen(kw_only=True)
class ActiveJobCall:
    """An ActiveJob job enqueued through the delayed_job adapter (its ``JobWrapper``).

    ``arguments`` are fully deserialized as ``ActiveJob::Arguments`` would: GlobalIDs
    become ``GlobalId``; ``_aj_symbol_keys`` keys become ``Symbol``; a
    ``_aj_ruby2_keywords`` Hash (keyword arguments, Rails 6.1+) becomes ``KeywordArgs``;
    ``_aj_hash_with_indifferent_access`` gives a plain dict; serialized Symbol, Time,
    Date, DateTime, TimeWithZone, Duration, BigDecimal, Module and Range values become
    ``Symbol``, datetimes in UTC, ``date``, ``timedelta``, ``Decimal``, ``RubyModule`` and
    ``RubyRange``; an unknown serializer gives ``RubyObject(class_name=<serializer>,
    fields=<its other keys, as stored>, kind="serialized")``.

    Attributes:
        job_class: the ActiveJob class name, also the job's name.
        job_id: ActiveJob's UUID (not the delayed_jobs row id).
        arguments: the deserialized ``perform`` arguments.
        queue_name / priority: as ActiveJob recorded them (the row's columns rule).
        executions: how many times ActiveJob has run the job (0 if absent, Rails 4.2).
        locale / timezone: ``I18n.locale`` and ``Time.zone`` name at enqueue time.
        enqueued_at: when it was enqueued, in UTC (None on Rails 4.2).
        job_data: the whole ``job.serialize`` Hash as stored, for anything else.
    """

    job_class: str
    job_id: str | None = None
    arguments: tuple[object, ...] = ()
    queue_name: str | None = None
    priority: int | None = None
    executions: int = 0
    locale: str | None = None
    timezone: str | None = None
    enqueued_at: datetime | None = None
    job_data: Mapping[str, object] = attrs.field(factory=dict)


#: Every decoded handler is one of these.
Payload = StructJob | ObjectJob | MethodCall | ActiveJobCall


@attrs.frozen(kw_only=True)
class Decoded:
    """The result of ``decode_handler``.

    Attributes:
        name: delayed_job's display name, the key perform functions are registered under.
        payload: the typed job.
    """

    name: str
    payload: Payload


_PERFORMABLE_METHOD = "Delayed::PerformableMethod"
_PERFORMABLE_MAILER = "Delayed::PerformableMailer"
_JOB_WRAPPERS = frozenset(
    {
        "ActiveJob::QueueAdapters::DelayedJobAdapter::JobWrapper",
        "Delayed::ActiveJobAdapter::JobWrapper",
    }
)
_PARAMETERIZED_MAILER = "ActionMailer::Parameterized::Mailer"


#: The name of a job whose handler names no class at all.
UNKNOWN_JOB = "<unknown job>"
_TAG_NAME = re.compile(rb"!ruby/\w+:([A-Za-z_][\w:]*)")


def tag_name(handler: str | bytes | None) -> str | None:
    """Return the class of the handler's first ``!ruby/<word>:<Name>`` tag, or None.

    The name delayed_job gives an undecodable job (it crashes when there is none).
    """
    if handler is None:
        return None
    raw = handler.encode("utf-8", "replace") if isinstance(handler, str) else handler
    match = _TAG_NAME.search(raw[:65536])
    return match.group(1).decode("ascii") if match else None


def handler_name(handler: str | bytes | None) -> str:
    """Return the job's display name from its handler, as the chain would name it.

    The decoded name; for a handler that cannot be decoded, its first class tag or
    ``<unknown job>``. For log lines written outside the chain (an interrupted job, a lost
    lock): it decodes the handler, so it is not for the hot path.
    """
    try:
        return decode_handler(handler).name
    except PayloadDecodeError:
        return tag_name(handler) or UNKNOWN_JOB


def decode_handler(
    handler: str | bytes | None, *, limits: DecodeLimits = DecodeLimits()
) -> Decoded:
    """Decode one ``handler`` column value into its name and payload.

    Args:
        handler: the column as text, or as raw bytes (then it must be valid UTF-8).
        limits: size, depth, node and alias bounds.

    Returns:
        The job's display name and typed payload.

    Raises:
        PayloadDecodeError: for a NULL or empty handler, invalid UTF-8, NUL bytes, YAML
            syntax errors, unknown or unsafe tags (``!!python/...``), input over a limit,
            a top-level value that is not a job, and legacy delayed_job 2.x handlers. The
            message starts ``Job failed to load: `` and says why. No other exception
            escapes.
    """
    try:
        data = _prepare(handler, limits.max_bytes)
        payload = _payload(_yaml.load(data, limits))
        return Decoded(name=display_name(payload), payload=payload)
    except PayloadDecodeError:
        raise
    except RecursionError as exc:
        msg = "Job failed to load: the YAML nests too deeply for Python's recursion limit"
        raise PayloadDecodeError(msg) from exc
    except Exception as exc:
        msg = f"Job failed to load: unexpected {type(exc).__name__} while decoding: {exc}"
        raise PayloadDecodeError(msg) from exc


def _prepare(handler: object, max_bytes: int) -> bytes:
    if handler is None:
        msg = "the handler is NULL"
        raise decode_error(msg)
    if isinstance(handler, str):
        if len(handler) > max_bytes:  # a character is at least one UTF-8 byte
            raise _too_big(len(handler), max_bytes, "characters")
        try:
            data = handler.encode("utf-8")
        except UnicodeEncodeError as exc:
            msg = f"the handler is not valid Unicode text ({exc.reason})"
            raise decode_error(msg) from exc
    elif isinstance(handler, (bytes, bytearray, memoryview)):
        data = bytes(handler)
        if len(data) > max_bytes:
            raise _too_big(len(data), max_bytes, "bytes")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"the handler is not valid UTF-8 ({exc.reason} at byte {exc.start})"
            raise decode_error(reason) from exc
    else:
        msg = f"the handler is a {type(handler).__name__}, not text"
        raise decode_error(msg)
    if len(data) > max_bytes:
        raise _too_big(len(data), max_bytes, "bytes")
    if not data.strip():
        msg = "the handler is empty"
        raise decode_error(msg)
    nul = data.find(b"\x00")
    if nul >= 0:
        msg = f"the handler contains a NUL byte (at byte {nul})"
        raise decode_error(msg)
    return data


def _too_big(size: int, max_bytes: int, unit: str) -> PayloadDecodeError:
    return decode_error(
        f"the handler is {size} {unit}, over the {max_bytes}-byte limit (max_bytes)"
    )


def display_name(payload: Payload) -> str:
    """delayed_job's display name of a payload; perform functions are registered under it.

    ``StructJob``/``ObjectJob``: the class name. ``ActiveJobCall``: the ``job_class``.
    ``MethodCall``: ``"Class.method"`` for a class or module receiver (delayed_job logs
    ``Module#method`` for modules; djmw uses the dot for both), ``"Class#method"`` for an
    instance (a record or any object, with Ruby's class name for plain values), and
    ``"Mailer.method"`` for a parameterized mailer (``UserMailer.with(...).delay``).
    """
    if isinstance(payload, StructJob | ObjectJob):
        return payload.class_name
    if isinstance(payload, ActiveJobCall):
        return payload.job_class
    receiver = payload.receiver
    if isinstance(receiver, RubyModule):
        return f"{receiver.name}.{payload.method_name}"
    if isinstance(receiver, RubyObject) and receiver.class_name == _PARAMETERIZED_MAILER:
        mailer = receiver.fields.get("mailer")
        if isinstance(mailer, RubyModule):
            return f"{mailer.name}.{payload.method_name}"
    return f"{_ruby_class_name(receiver)}#{payload.method_name}"


def _ruby_class_name(value: object) -> str:
    if isinstance(value, RecordRef):
        return value.class_name
    if isinstance(value, RubyObject):
        return value.class_name
    if value is None:
        return "NilClass"
    if isinstance(value, bool):
        return "TrueClass" if value else "FalseClass"
    names: list[tuple[type, str]] = [
        (int, "Integer"), (float, "Float"), (str, "String"), (bytes, "String"),
        (Symbol, "Symbol"), (list, "Array"), (dict, "Hash"), (frozenset, "Set"),
        (Decimal, "BigDecimal"), (datetime, "Time"), (date, "Date"), (RubyRange, "Range"),
    ]  # fmt: skip
    for python_type, ruby_name in names:
        if isinstance(value, python_type):
            return ruby_name
    return "Object"


def _payload(value: object) -> Payload:
    if isinstance(value, RubyObject):
        name = value.class_name
        if value.kind == "struct" and name in (_PERFORMABLE_METHOD, _PERFORMABLE_MAILER):
            reason = (
                f"legacy delayed_job 2.x handler (!ruby/struct:{name}); delayed_job 3+ cannot"
                " load it either, re-enqueue the job"
            )
            raise decode_error(reason)
        if value.kind in ("struct", "data"):
            return StructJob(class_name=name, fields=value.fields)
        if value.kind in ("object", "marshalable"):
            if name in (_PERFORMABLE_METHOD, _PERFORMABLE_MAILER):
                return _method_call(value)
            if name in _JOB_WRAPPERS:
                return _active_job(value)
            return ObjectJob(class_name=name, fields=value.fields)
    if isinstance(value, RecordRef):
        reason = (
            f"the handler is an Active Record object ({value.class_name} id"
            f" {value.primary_key!r}), not a job"
        )
        raise decode_error(reason)
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    reason = (
        f"the handler's top-level value is a {type(value).__name__} ({shown}), not a job; "
        "delayed_job handlers are !ruby/struct: or !ruby/object: mappings"
    )
    raise decode_error(reason)


def _method_call(value: RubyObject) -> MethodCall:
    fields = value.fields
    method = fields.get("method_name")
    if isinstance(method, Symbol):
        method = method.name
    if not isinstance(method, str) or not method:
        msg = f"{value.class_name} without a method_name"
        raise decode_error(msg)
    args = fields.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, list):
        msg = f"{value.class_name} args is a {type(args).__name__}, not a list"
        raise decode_error(msg)
    kwargs: dict[str, object] = {}
    last = args[-1] if args else None
    if isinstance(last, dict) and last and all(isinstance(key, Symbol) for key in last):
        kwargs = {key.name: item for key, item in last.items()}
        args = args[:-1]
    return MethodCall(
        receiver=fields.get("object"),
        method_name=method,
        args=tuple(args),
        kwargs=kwargs,
        mailer=value.class_name == _PERFORMABLE_MAILER,
    )


def _active_job(value: RubyObject) -> ActiveJobCall:
    job_data = value.fields.get("job_data")
    if not isinstance(job_data, dict):
        msg = f"{value.class_name} without a job_data Hash"
        raise decode_error(msg)
    job_class = job_data.get("job_class")
    if not isinstance(job_class, str) or not job_class:
        msg = f"{value.class_name} job_data without a job_class"
        raise decode_error(msg)
    arguments = job_data.get("arguments", [])
    if not isinstance(arguments, list):
        msg = "ActiveJob arguments are not a list"
        raise decode_error(msg)
    executions = job_data.get("executions")
    return ActiveJobCall(
        job_class=job_class,
        job_id=_optional_str(job_data.get("job_id")),
        arguments=tuple(deserialize_argument(argument) for argument in arguments),
        queue_name=_optional_str(job_data.get("queue_name")),
        priority=_optional_int(job_data.get("priority")),
        executions=executions if type(executions) is int else 0,
        locale=_optional_str(job_data.get("locale")),
        timezone=_optional_str(job_data.get("timezone")),
        enqueued_at=_optional_time(job_data.get("enqueued_at")),
        job_data=job_data,
    )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: object) -> int | None:
    return value if type(value) is int else None


def _optional_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, str) and value:
        return parse_iso_time(value)
    return None
