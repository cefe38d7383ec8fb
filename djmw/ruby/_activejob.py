"""ActiveJob::Arguments in Python: the ``_aj_*`` markers Rails puts on job arguments.

``deserialize_argument`` reads what ``job.serialize`` stored (``ActiveJobCall.arguments``);
``serialize_argument`` writes arguments the way Rails 6.1 does (``encode.active_job``).
Markers: ``_aj_globalid`` (records), ``_aj_symbol_keys`` (Hash keys that are Symbols),
``_aj_ruby2_keywords`` (keyword arguments), ``_aj_hash_with_indifferent_access``, and
``_aj_serialized`` with a serializer class name plus its own keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import unquote

from djmw.ruby._yaml_ruby import decode_error
from djmw.ruby._yaml_scalars import check_constant, duration_seconds, iso8601
from djmw.ruby.values import GlobalId, KeywordArgs, RubyModule, RubyObject, RubyRange, Symbol

_GLOBALID_KEY = "_aj_globalid"
_SERIALIZED_KEY = "_aj_serialized"
_SYMBOL_KEYS_KEY = "_aj_symbol_keys"
_RUBY2_KEYWORDS_KEY = "_aj_ruby2_keywords"
_INDIFFERENT_KEY = "_aj_hash_with_indifferent_access"
_RESERVED = frozenset(
    {_GLOBALID_KEY, _SERIALIZED_KEY, _SYMBOL_KEYS_KEY, _RUBY2_KEYWORDS_KEY, _INDIFFERENT_KEY}
)
_SERIALIZERS = "ActiveJob::Serializers::"


def parse_iso_time(text: str) -> datetime:
    """An ISO 8601 time from ActiveJob data (any number of fraction digits) in UTC.

    Raises:
        PayloadDecodeError: the text is not an ISO 8601 time.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = f"bad ISO 8601 time {text!r} in ActiveJob data"
        raise decode_error(msg) from exc
    # A time without an offset would be in the Ruby process's zone; Rails always writes one.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def deserialize_argument(argument: object) -> object:
    """``ActiveJob::Arguments.deserialize_argument`` on one decoded argument.

    Raises:
        PayloadDecodeError: a malformed GlobalID or a known serializer with a bad value.
    """
    # Anything that is not an Array or a Hash is kept as it is.
    if isinstance(argument, list):
        return [deserialize_argument(item) for item in argument]
    if not isinstance(argument, dict):
        return argument
    if len(argument) == 1 and _GLOBALID_KEY in argument:
        return _global_id(argument[_GLOBALID_KEY])
    if _SERIALIZED_KEY in argument:
        return _deserialize_object(argument)
    result = {key: deserialize_argument(item) for key, item in argument.items()}
    # Ruby deletes each marker in turn and acts on the first truthy one (nil/false are not).
    if _truthy(result.pop(_INDIFFERENT_KEY, None)):
        return result
    symbol_keys = result.pop(_SYMBOL_KEYS_KEY, None)
    if _truthy(symbol_keys):
        return _symbolize(result, symbol_keys)
    if _truthy(result.pop(_RUBY2_KEYWORDS_KEY, None)):
        return KeywordArgs({_keyword(key): item for key, item in result.items()})
    return result


def _truthy(value: object) -> bool:
    return value is not None and value is not False


def _keyword(key: object) -> str:
    if isinstance(key, Symbol):
        return key.name
    return str(key)


def _symbolize(result: dict[object, object], symbol_keys: object) -> dict[object, object]:
    names = set(symbol_keys) if isinstance(symbol_keys, list) else set()
    return {
        Symbol(key) if isinstance(key, str) and key in names else key: item
        for key, item in result.items()
    }


def _global_id(uri: object) -> GlobalId:
    text = str(uri)
    path = text.removeprefix("gid://").partition("?")[0]
    app, _, rest = path.partition("/")
    model, _, model_id = rest.partition("/")
    if not text.startswith("gid://") or not app or not model or not model_id:
        msg = f"bad GlobalID {text!r} in ActiveJob arguments"
        raise decode_error(msg)
    return GlobalId(text, app, unquote(model), unquote(model_id))


def _deserialize_object(argument: dict[object, object]) -> object:
    serializer = argument[_SERIALIZED_KEY]
    value = argument.get("value")
    name = str(serializer).removeprefix(_SERIALIZERS)
    try:
        if name == "SymbolSerializer":
            return Symbol(str(value))
        if name in ("TimeSerializer", "DateTimeSerializer", "TimeWithZoneSerializer"):
            return parse_iso_time(str(value))
        if name == "DateSerializer":
            return date.fromisoformat(str(value))
        if name == "DurationSerializer":
            return timedelta(seconds=_seconds(value))
        if name == "BigDecimalSerializer":
            return Decimal(str(value))
        if name == "ModuleSerializer":
            return RubyModule(str(value))
        if name == "RangeSerializer":
            return RubyRange(
                deserialize_argument(argument.get("begin")),
                deserialize_argument(argument.get("end")),
                bool(argument.get("exclude_end")),
            )
    except (ValueError, TypeError, ArithmeticError) as exc:
        msg = f"bad {serializer} argument {value!r} ({exc})"
        raise decode_error(msg) from exc
    fields = {str(key): item for key, item in argument.items() if key != _SERIALIZED_KEY}
    return RubyObject(str(serializer), fields, kind="serialized")


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{value!r} is not a number of seconds"
        raise TypeError(msg)
    return value


def serialize_argument(value: object) -> object:
    """``ActiveJob::Arguments.serialize_argument`` (Rails 6.1) on one djmw value.

    Raises:
        TypeError: a type ActiveJob cannot serialize, or a Hash key that is not str/Symbol.
        ValueError: a reserved ``_aj_*`` key, keys ``"a"`` and ``:a`` together, a naive
            datetime, or a module name that is not a constant path.
    """
    if value is None or isinstance(value, bool | int | float | str | bytes | Decimal):
        return value
    if isinstance(value, GlobalId):
        return {_GLOBALID_KEY: value.uri}
    if isinstance(value, list | tuple):
        return [serialize_argument(item) for item in value]
    if isinstance(value, KeywordArgs):
        result = _serialize_hash(value)
        result[_RUBY2_KEYWORDS_KEY] = list(value)
        return result
    if isinstance(value, dict):
        result = _serialize_hash(value)
        result[_SYMBOL_KEYS_KEY] = [key.name for key in value if isinstance(key, Symbol)]
        return result
    serialized = _serialize_object(value)
    if serialized is None:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        msg = (
            f"ActiveJob cannot serialize a {type(value).__name__} argument ({shown});"
            " use a GlobalId for records"
        )
        raise TypeError(msg)
    return serialized


def _serialize_hash(value: Mapping[str, object] | Mapping[object, object]) -> dict[object, object]:
    result: dict[object, object] = {}
    for key, item in value.items():
        name = key.name if isinstance(key, Symbol) else key
        if not isinstance(name, str):
            msg = f"ActiveJob hash keys must be str or Symbol, not {type(key).__name__}"
            raise TypeError(msg)
        if name in _RESERVED:
            msg = f"{key!r} is a key ActiveJob reserves for its own markers"
            raise ValueError(msg)
        if name in result:
            msg = f"the keys {name!r} and :{name} collide once ActiveJob serializes them"
            raise ValueError(msg)
        result[name] = serialize_argument(item)
    return result


def _serialize_object(value: object) -> dict[object, object] | None:
    def marker(serializer: str, **fields: object) -> dict[object, object]:
        result: dict[object, object] = {_SERIALIZED_KEY: _SERIALIZERS + serializer}
        result.update(fields)
        return result

    if isinstance(value, Symbol):
        return marker("SymbolSerializer", value=value.name)
    if isinstance(value, datetime):
        return marker("TimeSerializer", value=iso8601(value))
    if isinstance(value, date):
        return marker("DateSerializer", value=value.isoformat())
    if isinstance(value, timedelta):
        seconds = duration_seconds(value)
        parts = [[marker("SymbolSerializer", value="seconds"), seconds]]
        return marker("DurationSerializer", value=seconds, parts=parts)
    if isinstance(value, RubyModule):
        return marker("ModuleSerializer", value=check_constant(value.name))
    if isinstance(value, RubyRange):
        return marker(
            "RangeSerializer",
            begin=serialize_argument(value.begin),
            end=serialize_argument(value.end),
            exclude_end=value.exclusive,
        )
    return None
