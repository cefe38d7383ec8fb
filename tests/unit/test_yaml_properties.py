"""Properties: any input gives a Decoded or a PayloadDecodeError; encode/decode round-trips."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djmw.errors import PayloadDecodeError
from djmw.ruby import _yaml
from djmw.ruby._yaml_scalars import tokenize
from djmw.ruby.encode import active_job, dump_value, struct_job
from djmw.ruby.payload import ActiveJobCall, Decoded, DecodeLimits, StructJob, decode_handler
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

PURE_PYTHON_LOADER = _yaml.build_loader(yaml.SafeLoader)
RUBY_YAML_PIECES = [
    "--- ", "!ruby/struct:", "!ruby/object:", "Delayed::PerformableMethod", "JobWrapper",
    "!ruby/class ", "!ruby/sym ", "!binary ", "!ruby/range ", "!ruby/regexp ", "!!python/",
    "!ruby/object:BigDecimal ", "!ruby/hash:X", "!set", "!omap", "&a ", "*a", "<<: ", "? ",
    "object: ", "method_name: ", "args:", "job_data:", "arguments:", "_aj_globalid: ",
    "_aj_serialized: ", "_aj_symbol_keys:", "_aj_ruby2_keywords:", "concise_attributes:",
    ":sym", "'q'", '"d"', "1..3", "18:0.15e1", "2024-01-02", " 03:04:05 Z", "1_000", ".inf",
    "yes", "~", "[", "]", "{", "}", ",", ": ", "- ", "\n", "  ", "#", "|", ">", "%", "@", "\t",
]  # fmt: skip


def outcome(handler: str | bytes) -> Decoded | PayloadDecodeError:
    """decode_handler's result, or the PayloadDecodeError it raised (anything else fails)."""
    try:
        decoded = decode_handler(handler)
    except PayloadDecodeError as exc:
        assert str(exc).startswith("Job failed to load: ")  # noqa: PT017
        return exc
    assert isinstance(decoded, Decoded)
    assert decoded.name
    return decoded


@given(st.text(max_size=300))
def test_any_text_decodes_or_fails_cleanly(text: str) -> None:
    """Arbitrary text never raises anything but PayloadDecodeError."""
    outcome(text)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    """Arbitrary bytes never raise anything but PayloadDecodeError."""
    outcome(data)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(RUBY_YAML_PIECES), max_size=40).map("".join))
def test_yamlish_text_decodes_or_fails_cleanly(text: str) -> None:
    """Text built from Ruby-YAML pieces (tags, anchors, indicators) fails only cleanly."""
    outcome(text)
    outcome("--- !ruby/struct:J\nv: " + text)


@given(st.text(max_size=60))
def test_tokenize_never_raises(text: str) -> None:
    """Psych's scalar rules give a value of one of the plain-scalar types for any short text."""
    assert isinstance(tokenize(text), type(None) | bool | int | float | str | Symbol | date)


# -- round trips -------------------------------------------------------------------------------

CONSTANTS = st.from_regex(r"\A[A-Z][A-Za-z0-9_]{0,8}(::[A-Z][A-Za-z0-9_]{0,8}){0,2}\Z")
# Class names the decoder gives Python types of their own, and ivars that mark AR records.
SPECIAL_CLASSES = {"Set", "SortedSet", "Complex", "Rational", "BigDecimal", "DateTime"} | {
    "ActiveSupport::TimeWithZone",
    "ActiveSupport::Duration",
}
RECORD_KEYS = {"attributes", "raw_attributes", "concise_attributes", "active_record_yaml_version"}
MEMBERS = st.from_regex(r"\A[a-z_][a-z0-9_]{0,10}\Z").filter(lambda name: name not in RECORD_KEYS)
SYMBOLS = st.builds(Symbol, st.text(max_size=20))
OFFSETS = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
DATETIMES = st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.just(UTC) | OFFSETS,
)
HASHABLE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=30),
    SYMBOLS,
    st.dates(),
)
SCALARS = st.one_of(
    HASHABLE,
    st.floats(allow_nan=False),
    st.binary(max_size=30),
    st.decimals(allow_nan=False),
    DATETIMES,
    st.timedeltas(min_value=timedelta(days=-9999), max_value=timedelta(days=9999)),
    st.fractions(),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.builds(RubyModule, CONSTANTS),
    st.builds(RecordRef, CONSTANTS, st.integers(min_value=1) | st.text(max_size=10)),
    st.builds(RubyRange, HASHABLE, HASHABLE, st.booleans()),
    st.builds(RubyRegexp, st.text(max_size=20), st.sampled_from(["", "i", "mx", "imxn"])),
    st.frozensets(st.integers() | st.text(max_size=10) | SYMBOLS, max_size=4),
)


def _no_bool_int_clash(mapping: dict[object, object]) -> bool:
    # {True: ..} and {1: ..} are one Python key but two Ruby keys, so keep tests unambiguous.
    return not any(isinstance(key, bool) for key in mapping)


VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(HASHABLE, children, max_size=4).filter(_no_bool_int_clash),
        st.builds(
            RubyObject,
            CONSTANTS.filter(lambda name: name not in SPECIAL_CLASSES),
            st.dictionaries(MEMBERS, children, max_size=3),
            st.sampled_from(["object", "struct", "exception", "data"]),
        ),
    ),
    max_leaves=12,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_struct_member_roundtrip(value: object) -> None:
    """decode(encode(x)) == x for every supported value, inside a Struct job."""
    payload = decode_handler(struct_job("ValuesJob", {"v": value})).payload
    assert isinstance(payload, StructJob)
    assert payload.fields["v"] == value


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_loaders_agree_on_encoder_output(value: object) -> None:
    """libyaml and the pure-Python loader read djmw's output identically."""
    data = dump_value(value).encode()
    limits = DecodeLimits()
    assert _yaml.load(data, limits) == _yaml.load(data, limits, PURE_PYTHON_LOADER) == value


@given(st.text())
def test_any_string_roundtrips(text: str) -> None:
    """Every string, however much it looks like another type, comes back as the same str."""
    result = _yaml.load(dump_value(text).encode(), DecodeLimits())
    assert result == text
    assert type(result) is str


@given(st.text())
def test_any_symbol_roundtrips(name: str) -> None:
    """Every Symbol name comes back as the same Symbol."""
    assert _yaml.load(dump_value(Symbol(name)).encode(), DecodeLimits()) == Symbol(name)


@given(st.decimals(allow_nan=False))
def test_any_decimal_roundtrips(number: Decimal) -> None:
    """BigDecimal's dump format keeps every finite or infinite Decimal's value."""
    assert _yaml.load(dump_value(number).encode(), DecodeLimits()) == number


AJ_KEYS = st.text(max_size=10).filter(lambda key: not key.startswith("_aj_"))
AJ_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=10),
    st.decimals(allow_nan=False),
    SYMBOLS,
    DATETIMES,
    st.dates(),
    st.timedeltas(min_value=timedelta(days=-9999), max_value=timedelta(days=9999)),
    st.builds(RubyModule, CONSTANTS),
    st.builds(
        lambda model, key: GlobalId(f"gid://app/{model}/{key}", "app", model, str(key)),
        CONSTANTS,
        st.integers(min_value=1),
    ),
)


def _one_spelling(keys: dict[object, object]) -> bool:
    # "a" and :a serialize to the same ActiveJob key, which encode refuses.
    names = [key.name if isinstance(key, Symbol) else key for key in keys]
    return len(names) == len(set(names))


AJ_VALUES = st.recursive(
    AJ_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(AJ_KEYS | st.builds(Symbol, AJ_KEYS), children, max_size=3).filter(
            _one_spelling
        ),
        st.builds(KeywordArgs, st.dictionaries(AJ_KEYS, children, max_size=3)),
    ),
    max_leaves=10,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(AJ_VALUES, max_size=4), st.sampled_from(["default", "mailers", "true"]))
def test_active_job_arguments_roundtrip(arguments: list[object], queue: str) -> None:
    """ActiveJob arguments survive serialization with the _aj_* markers and back."""
    payload = decode_handler(active_job("ReportJob", arguments, queue_name=queue)).payload
    assert isinstance(payload, ActiveJobCall)
    assert payload.queue_name == queue
    assert list(payload.arguments) == arguments
    assert [type(item) for item in payload.arguments] == [type(item) for item in arguments]


@given(st.text(alphabet=string.printable, max_size=40))
def test_decoding_twice_gives_equal_results(text: str) -> None:
    """Decoding is deterministic: the same handler gives equal results or equal errors."""
    first, second = outcome(text), outcome(text)
    if isinstance(first, PayloadDecodeError):
        assert isinstance(second, PayloadDecodeError)
        assert str(first) == str(second)
    else:
        assert repr(first) == repr(second)
