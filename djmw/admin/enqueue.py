"""Handler YAML from a job name, a kind and JSON arguments, for ``djmw enqueue``.

The text is written by ``djmw.ruby.encode``, so a Ruby delayed_job worker runs it, and
read back through the worker's decoder to check that the row will carry ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from djmw.errors import ConfigurationError, PayloadDecodeError
from djmw.ruby import encode
from djmw.ruby.payload import decode_handler
from djmw.ruby.values import RecordRef, RubyModule

Kind = Literal["struct", "activejob", "method"]
KINDS: tuple[Kind, ...] = ("struct", "activejob", "method")


def build_handler(
    name: str,
    args: object = None,
    *,
    kind: Kind = "struct",
    queue: str | None = None,
    priority: int | None = None,
    record_id: object = None,
) -> str:
    """Return the handler YAML of job ``name``.

    Args:
        name: ``struct``: the Struct class (``NewsletterJob``); ``activejob``: the job
            class; ``method``: ``Receiver.method`` (a class or module method, as in
            ``User.delay.cleanup``) or ``Class#method`` with ``record_id`` (a record's
            method, as in ``user.delay.activate!``).
        args: ``struct``: an object of member values; ``activejob``: a list of
            ``perform`` arguments; ``method``: a list of arguments, or an object of
            keyword arguments. JSON values (str, numbers, booleans, null, lists,
            objects) map to their Ruby counterparts.
        kind: ``struct`` (default), ``activejob`` or ``method``.
        queue / priority: recorded inside an ActiveJob payload too.
        record_id: the record's primary key for ``Class#method``.

    Raises:
        ConfigurationError: a name or arguments Ruby could not take, naming the problem.
    """
    try:
        handler = _build(name, args, kind, queue=queue, priority=priority, record_id=record_id)
    except (TypeError, ValueError) as exc:
        msg = f"cannot enqueue {name!r} as a {kind} job: {exc}."
        raise ConfigurationError(msg) from exc
    try:
        decoded = decode_handler(handler)
    except PayloadDecodeError as exc:  # pragma: no cover - encode writes what decode reads
        msg = f"cannot enqueue {name!r}: the handler written does not decode ({exc})."
        raise ConfigurationError(msg) from exc
    if decoded.name != name:
        msg = (
            f"cannot enqueue {name!r} as a {kind} job: a worker would name it "
            f"{decoded.name!r}; check the kind and the name."
        )
        raise ConfigurationError(msg)
    return handler


def _build(
    name: str,
    args: object,
    kind: Kind,
    *,
    queue: str | None,
    priority: int | None,
    record_id: object,
) -> str:
    if kind == "struct":
        fields = {} if args is None else args
        if not isinstance(fields, Mapping):
            msg = "a struct job's --args must be a JSON object of member values"
            raise TypeError(msg)
        return encode.struct_job(name, fields)
    if kind == "activejob":
        arguments = [] if args is None else args
        if not isinstance(arguments, Sequence) or isinstance(arguments, str):
            msg = "an ActiveJob job's --args must be a JSON array of perform arguments"
            raise TypeError(msg)
        return encode.active_job(
            name, list(arguments), queue_name=queue or "default", priority=priority
        )
    if kind == "method":
        return _method(name, args, record_id)
    msg = f"kind must be one of {', '.join(KINDS)}, got {kind!r}"
    raise ValueError(msg)


def _method(name: str, args: object, record_id: object) -> str:
    receiver: RubyModule | RecordRef
    if "#" in name:
        class_name, method = name.rsplit("#", 1)
        if record_id is None:
            msg = f"{name} calls a record's method: give the record's id (--record-id)"
            raise ValueError(msg)
        receiver = RecordRef(class_name, record_id)
    elif "." in name:
        class_name, method = name.rsplit(".", 1)
        receiver = RubyModule(class_name)
    else:
        msg = "a method job is named Receiver.method (class method) or Class#method (record)"
        raise ValueError(msg)
    encode.struct_job(class_name, {})  # checks the constant name, as Ruby would
    positional: list[object] = []
    keywords: dict[str, object] | None = None
    if isinstance(args, Mapping):
        keywords = dict(args)
    elif isinstance(args, Sequence) and not isinstance(args, str):
        positional = list(args)
    elif args is not None:
        msg = "a method job's --args must be a JSON array (arguments) or object (keywords)"
        raise TypeError(msg)
    return encode.method_call(receiver, method, positional, keywords)
