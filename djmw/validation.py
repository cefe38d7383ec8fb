"""attrs validators that raise ConfigurationError naming the class, the option and the value.

Every configurable djmw class (the Worker, each middleware) validates its options with
these at construction, so a bad entry in Python or in a config file fails at start with
``<Class>: <option> must be <rule>, got <value>.``. Used as
``attrs.field(validator=positive_number)``; ``one_of`` and ``optional`` build validators.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from djmw.chain import Middleware
from djmw.errors import ConfigurationError

Validator = Callable[[Any, Any, Any], None]


def _fail(instance: object, attribute: Any, rule: str, value: object) -> None:
    msg = f"{type(instance).__name__}: {attribute.name} must be {rule}, got {value!r}."
    raise ConfigurationError(msg)


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def positive_number(instance: object, attribute: Any, value: object) -> None:
    """A finite int or float above 0 (seconds, sizes)."""
    if not _is_number(value) or value <= 0:  # type: ignore[operator]
        _fail(instance, attribute, "a positive number", value)


def seconds(instance: object, attribute: Any, value: object) -> None:
    """A finite int or float of seconds, 0 allowed."""
    if not _is_number(value) or value < 0:  # type: ignore[operator]
        _fail(instance, attribute, "seconds >= 0", value)


def positive_int(instance: object, attribute: Any, value: object) -> None:
    """An int of at least 1 (counts, attempts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(instance, attribute, "an integer >= 1", value)


def integer(instance: object, attribute: Any, value: object) -> None:
    """Any int (priorities may be negative)."""
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(instance, attribute, "an integer", value)


def boolean(instance: object, attribute: Any, value: object) -> None:
    """True or False, not a truthy stand-in."""
    if not isinstance(value, bool):
        _fail(instance, attribute, "true or false", value)


def string(instance: object, attribute: Any, value: object) -> None:
    """A str."""
    if not isinstance(value, str):
        _fail(instance, attribute, "a string", value)


def one_of(choices: Collection[object]) -> Validator:
    """A validator accepting exactly the values in ``choices``."""
    rule = " or ".join(repr(choice) for choice in choices)

    def check(instance: object, attribute: Any, value: object) -> None:
        if value not in choices:
            _fail(instance, attribute, rule, value)

    return check


def optional(validator: Validator) -> Validator:
    """``validator``, or None."""

    def check(instance: object, attribute: Any, value: object) -> None:
        if value is not None:
            try:
                validator(instance, attribute, value)
            except ConfigurationError as exc:
                msg = str(exc).replace(" must be ", " must be None or ", 1)
                raise ConfigurationError(msg) from None

    return check


def queue_list(value: object) -> tuple[str | None, ...] | None:
    """Converter: queue names from a list or a comma-separated string (None = all)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [q.strip() for q in value.split(",") if q.strip()]
    if not isinstance(value, list | tuple | set | frozenset) or not all(
        q is None or isinstance(q, str) for q in value
    ):
        msg = (
            f"Worker: queues must be a list of queue names (None = the NULL queue), got {value!r}."
        )
        raise ConfigurationError(msg)
    return tuple(value) or None


def middleware_list(value: object) -> tuple[Middleware, ...] | None:
    """Converter: a chain as a tuple, each entry checked to be callable."""
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        msg = f"Worker: middlewares must be a list, got {type(value).__name__}."
        raise ConfigurationError(msg)
    for index, middleware in enumerate(value):
        if not callable(middleware):
            msg = (
                f"Worker: middlewares[{index}] = {middleware!r} is not callable; a middleware "
                "is a function or object called as (job, call_next) -> Outcome."
            )
            raise ConfigurationError(msg)
    return tuple(value)
