"""The Ruby-YAML loader: Psych's scalar rules, every Ruby tag, aliases, C and Python bases."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from djmw.errors import PayloadDecodeError
from djmw.ruby import _yaml
from djmw.ruby.payload import DecodeLimits
from djmw.ruby.values import RecordRef, RubyModule, RubyObject, RubyRange, RubyRegexp, Symbol

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PURE_PYTHON_LOADER = _yaml.build_loader(yaml.SafeLoader)
LOADERS = [
    pytest.param(_yaml.RubyLoader, id="default"),
    pytest.param(PURE_PYTHON_LOADER, id="pure-python"),
]


@pytest.fixture(params=LOADERS)
def loader(request: pytest.FixtureRequest) -> type[_yaml.Loader]:
    """Each loader class in turn: the default (libyaml when present) and pure Python."""
    loader_class: type[_yaml.Loader] = request.param
    return loader_class


def load(text: str, loader_class: type[_yaml.Loader] = _yaml.RubyLoader) -> object:
    """Load one YAML document with default limits."""
    return _yaml.load(text.encode(), DecodeLimits(), loader_class)


def value(fragment: str, loader_class: type[_yaml.Loader] = _yaml.RubyLoader) -> object:
    """Load ``fragment`` as the value of a mapping key, the way it sits inside a handler."""
    result = load(f"v: {fragment}\n", loader_class)
    assert isinstance(result, dict)
    return result["v"]


def test_default_loader_uses_libyaml_when_pyyaml_has_it() -> None:
    """RubyLoader is built on CSafeLoader when PyYAML was compiled with libyaml."""
    expected = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    assert _yaml.RubyLoader.__mro__[1] is expected
    assert issubclass(_yaml.RubyLoader, yaml.constructor.SafeConstructor)


def test_loader_tables_are_private() -> None:
    """Registering on the loader leaves PyYAML's own SafeLoader tables untouched."""
    assert _yaml.RubyLoader.yaml_constructors is not yaml.SafeLoader.yaml_constructors
    assert "!" not in yaml.SafeLoader.yaml_multi_constructors
    assert yaml.safe_load("a: yes") == {"a": True}


PLAIN_SCALARS = [
    ("yes", True),
    ("Yes", True),
    ("ON", True),
    ("true", True),
    ("no", False),
    ("Off", False),
    ("FALSE", False),
    ("~", None),
    ("null", None),
    ("NULL", None),
    ("", None),
    ("y", "y"),
    ("n", "n"),
    ("yes please", "yes please"),
    ("42", 42),
    ("-7", -7),
    ("+3", 3),
    ("0", 0),
    ("1_000", 1000),
    ("1,000", 1000),
    ("017", 15),
    ("08", "08"),
    ("0x1f", 31),
    ("-0b101", -5),
    ("1180591620717411303424", 1180591620717411303424),
    ("1.5", 1.5),
    ("-.5", -0.5),
    ("1.", 1.0),
    ("1.0e+20", 1e20),
    ("1e5", "1e5"),
    ("1_000.5", 1000.5),
    (".inf", math.inf),
    ("-.Inf", -math.inf),
    ("1:30", 5400),
    ("1.2.3", "1.2.3"),
    ("2024-01-02", date(2024, 1, 2)),
    ("2024-1-2", date(2024, 1, 2)),
    ("2024-02-30", "2024-02-30"),
    ("2024-01-02 03:04:05.000006000 Z", datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
    ("2024-01-02 03:04:05.000000000 +09:00", datetime(2024, 1, 1, 18, 4, 5, tzinfo=UTC)),
    ("2024-01-02T03:04:05-05:30", datetime(2024, 1, 2, 8, 34, 5, tzinfo=UTC)),
    ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2024-01-02 25:04:05", "2024-01-02 25:04:05"),
    (":foo", Symbol("foo")),
    (":activate!", Symbol("activate!")),
    (":with space", Symbol("with space")),
    (":1", Symbol("1")),
    ("::x", Symbol(":x")),
    (':"quoted"', Symbol("quoted")),
    ("lorem ipsum", "lorem ipsum"),
    ("a@b.c", "a@b.c"),
    ("héllo", "héllo"),
]


@pytest.mark.parametrize(("text", "expected"), PLAIN_SCALARS)
def test_plain_scalars_follow_psych(
    loader: type[_yaml.Loader], text: str, expected: object
) -> None:
    """Unquoted scalars resolve as Psych's ScalarScanner does (YAML 1.1 plus Ruby's quirks)."""
    result = value(text, loader)
    assert result == expected
    assert type(result) is type(expected)


def test_nan_is_a_float(loader: type[_yaml.Loader]) -> None:
    """``.nan`` is a float NaN."""
    result = value(".NaN", loader)
    assert isinstance(result, float)
    assert math.isnan(result)


@pytest.mark.parametrize("text", ["'true'", '":x"', "'1'", "''", "'~'", "'2024-01-02'", '"yes"'])
def test_quoted_scalars_stay_strings(loader: type[_yaml.Loader], text: str) -> None:
    """Psych quotes strings that would change type, so quoted scalars are always str."""
    assert value(text, loader) == text[1:-1]


def test_non_specific_tag_reads_like_plain(loader: type[_yaml.Loader]) -> None:
    """``! ''`` is nil (how Psych writes a nil Hash key) and ``! 12`` an Integer."""
    assert load("? ! ''\n: nil\n", loader) == {None: "nil"}
    assert value("! 12", loader) == 12


TAGGED = [
    ("!binary |-\n  /wBiaW4=", b"\xff\x00bin"),
    ("!!binary /wA=", b"\xff\x00"),
    ("!binary 'YW Jj'", b"abc"),
    ("!binary YQ==YQ==", b"a"),
    ("!binary '!!!'", b""),
    ("!ruby/sym foo", Symbol("foo")),
    ("!ruby/symbol 'with: colon'", Symbol("with: colon")),
    ("!ruby/string:MyString abc", "abc"),
    ("!str 123", "123"),
    ("!!str true", "true"),
    ("!ruby/class 'User'", RubyModule("User")),
    ("!ruby/class Reports::Nightly", RubyModule("Reports::Nightly")),
    ("!ruby/module 'Maintenance'", RubyModule("Maintenance")),
    ("!ruby/class ''", None),
    ("!ruby/regexp /ab+c/i", RubyRegexp("ab+c", "i")),
    ("!ruby/regexp '/x y # comment/mx'", RubyRegexp("x y # comment", "mx")),
    ("!ruby/range 1..3", RubyRange(1, 3, exclusive=False)),
    ("!ruby/range a...c", RubyRange("a", "c", exclusive=True)),
    ("!ruby/object:BigDecimal 18:0.15e1", Decimal("1.5")),
    ("!ruby/object:BigDecimal 27:-0.123456789012345678901e3", Decimal("-123.456789012345678901")),
    ("!ruby/object:BigDecimal 9:Infinity", Decimal("Infinity")),
    ("!ruby/object:DateTime 2024-01-02 03:04:05 +01:00", datetime(2024, 1, 2, 2, 4, 5, tzinfo=UTC)),
    ("!ruby/object:Complex 1+2i", complex(1, 2)),
    ("!ruby/object:Rational 1/3", Fraction(1, 3)),
    ("!ruby/encoding UTF-8", RubyObject("Encoding", {"value": "UTF-8"}, kind="scalar")),
    ("!float 1", 1.0),
    ("!!float '2.5'", 2.5),
    ("!!int '12'", 12),
    ("!!bool 'yes'", True),
    ("!!null ''", None),
    ("!!timestamp 2024-01-02", date(2024, 1, 2)),
    ("!ruby/object:Money 10 EUR", RubyObject("Money", {"value": "10 EUR"}, kind="scalar")),
]  # fmt: skip


@pytest.mark.parametrize(("fragment", "expected"), TAGGED)
def test_tagged_scalars(loader: type[_yaml.Loader], fragment: str, expected: object) -> None:
    """Each scalar tag of Psych's vocabulary builds the documented Python value."""
    result = value(fragment, loader)
    assert result == expected
    assert type(result) is type(expected)


def test_tagged_collections(loader: type[_yaml.Loader]) -> None:
    """Mapping and sequence tags build dicts, lists, sets, ranges and RubyObjects."""
    text = (FIXTURES / "handlers" / "tagged_collections.yml").read_text()
    result = load(text, loader)
    assert isinstance(result, dict)
    assert result["hwia"] == {"a": 1}
    assert type(result["hwia"]) is dict
    assert result["map"] == {"b": 2}
    assert result["with_ivars"] == {"x": 1}
    assert result["array"] == [1, 2]
    assert result["array_with_ivars"] == ["a"]
    assert result["string_with_ivars"] == "text"
    assert result["set"] == frozenset({1, 2})
    assert result["yaml_set"] == frozenset({"a", "b"})
    assert result["omap"] == {"one": 1, "two": 2}
    assert result["range"] == RubyRange(1, None, exclusive=False)
    assert result["struct"] == RubyObject("Money", {"cents": 100, "currency": "EUR"}, "struct")
    assert result["exception"] == RubyObject("ArgumentError", {"message": "boom"}, "exception")
    assert result["data"] == RubyObject("Point", {"x": 1, "y": 2}, "data")
    assert result["data_with_ivars"] == RubyObject("Point", {"x": 3}, "data")
    assert result["marshalable"] == RubyObject("Thing", {"state": 1}, "marshalable")
    assert result["object"] == RubyObject("Greeter", {"greeting": "Hello", "count": 0})
    assert result["bare_object"] == RubyObject("Empty", {})
    assert result["symbol_ivars"] == RubyObject("Obj", {"a": 1})
    assert result["complex"] == complex(1, 2)
    assert result["rational"] == Fraction(1, 3)
    assert result["duration"] == timedelta(hours=1)
    assert result["syck_object"] == RubyObject("Old", {"a": 1})


def test_time_with_zone_uses_its_utc_field(loader: type[_yaml.Loader]) -> None:
    """A TimeWithZone is its ``utc`` instant; the mislabelled ``time`` field is ignored."""
    fragment = (
        "!ruby/object:ActiveSupport::TimeWithZone\n"
        "  utc: 2024-01-02 03:04:05.000000000 Z\n"
        "  zone: !ruby/object:ActiveSupport::TimeZone\n"
        "    name: Asia/Tokyo\n"
        "  time: 2024-01-02 12:04:05.000000000 Z\n"
    )
    assert value(fragment, loader) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_times_are_aware_and_in_utc(loader: type[_yaml.Loader]) -> None:
    """Every time comes back timezone-aware with a UTC offset of zero."""
    result = value("2024-01-02 03:04:05.5 -02:00", loader)
    assert isinstance(result, datetime)
    assert result.tzinfo is not None
    assert result.utcoffset() == timedelta(0)
    assert result == datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=timezone(timedelta(hours=-2)))


CONCISE = """!ruby/object:User
  concise_attributes:
  - !ruby/object:ActiveModel::Attribute::FromDatabase
    name: id
    value_before_type_cast: 3
  new_record: false
  active_record_yaml_version: 2"""


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        (CONCISE, RecordRef("User", 3)),
        ("!ruby/object:User\n  raw_attributes:\n    id: 4\n  new_record: no", RecordRef("User", 4)),
        ("!ruby/object:User\n  attributes:\n    id: 5\n    name: x", RecordRef("User", 5)),
        ("!ruby/ActiveRecord:User\n  attributes:\n    id: 6", RecordRef("User", 6)),
        ("!ruby/Mongoid:Account\n  attributes:\n    _id: abc", RecordRef("Account", "abc")),
        ("!ruby/object:Item\n  concise_attributes: []", RecordRef("Item", None)),
    ],
)  # fmt: skip
def test_active_record_objects_become_record_refs(
    loader: type[_yaml.Loader], fragment: str, expected: RecordRef
) -> None:
    """All three Active Record YAML generations (and Mongoid) reduce to class + primary key."""
    assert value(fragment, loader) == expected


def test_plain_object_with_more_ivars_is_not_a_record(loader: type[_yaml.Loader]) -> None:
    """An ``@attributes`` ivar next to other ivars keeps the object a RubyObject."""
    result = value("!ruby/object:Form\n  attributes:\n    id: 1\n  errors: []", loader)
    assert result == RubyObject("Form", {"attributes": {"id": 1}, "errors": []})


def test_mapping_keys_keep_their_types(loader: type[_yaml.Loader]) -> None:
    """Hash keys stay Symbol, str, int or None; ``:k`` and ``k`` are different keys."""
    result = value("\n  1: one\n  :k: v\n  k: s\n  ! '': nil", loader)
    assert result == {1: "one", Symbol("k"): "v", "k": "s", None: "nil"}


def test_aliases_expand_to_equal_values(loader: type[_yaml.Loader]) -> None:
    """An alias gives the anchored value again."""
    result = load("a: &1\n- 1\n- 2\nb: *1\nc: &s :sym\nd: *s\n", loader)
    assert result == {"a": [1, 2], "b": [1, 2], "c": Symbol("sym"), "d": Symbol("sym")}


def test_merge_keys(loader: type[_yaml.Loader]) -> None:
    """``<<: *base`` merges a mapping; explicit keys win, as in Psych."""
    result = load("base: &b\n  x: 1\n  y: 2\nchild:\n  <<: *b\n  y: 3\n", loader)
    assert isinstance(result, dict)
    assert result["child"] == {"x": 1, "y": 3}


def test_quoted_merge_key_is_a_string(loader: type[_yaml.Loader]) -> None:
    """A quoted ``'<<'`` is an ordinary key."""
    assert load("'<<': 1\n", loader) == {"<<": 1}


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("v: !foo bar\n", "!foo"),
        ("v: !ruby/regexp {a: 1}\n", "!ruby/regexp"),
        ("v: !ruby/struct:X [1]\n", "!ruby/struct:X"),
        ("v: !!python/tuple [1]\n", "!!python/tuple"),
        ("v: !<tag:example.com,2024:thing> 1\n", "tag:example.com,2024:thing"),
    ],
)
def test_unknown_tags_fail_naming_the_tag(loader: type[_yaml.Loader], text: str, tag: str) -> None:
    """A tag outside the Ruby vocabulary (or on the wrong kind of node) is a load failure."""
    with pytest.raises(PayloadDecodeError, match=r"^Job failed to load: unknown tag ") as info:
        load(text, loader)
    assert tag in str(info.value)
    assert "line 1, column 4" in str(info.value)


@pytest.mark.parametrize(
    ("fragment", "named"),
    [
        ("!ruby/object:BigDecimal 18:abc", "!ruby/object:BigDecimal"),
        ("!ruby/regexp abc", "!ruby/regexp"),
        ("!ruby/range 1-3", "!ruby/range"),
        ("!ruby/object:Rational\n  numerator: a\n  denominator: 2", "!ruby/object:Rational"),
        ("!ruby/object:ActiveSupport::TimeWithZone\n  time: x", "TimeWithZone"),
    ],
)
def test_bad_values_for_known_tags_fail(
    loader: type[_yaml.Loader], fragment: str, named: str
) -> None:
    """A known tag on text it cannot hold fails with a message naming the tag."""
    with pytest.raises(PayloadDecodeError, match=r"^Job failed to load: ") as info:
        value(fragment, loader)
    assert named in str(info.value)


def _all_fixtures() -> list[Path]:
    return sorted((FIXTURES / "handlers").glob("*.yml")) + sorted((FIXTURES / "ruby").glob("*.yml"))


@pytest.mark.parametrize("path", _all_fixtures(), ids=lambda path: path.name)
def test_libyaml_and_pure_python_agree(path: Path) -> None:
    """Both loader bases give the same values for every handler fixture."""
    data = path.read_bytes()
    limits = DecodeLimits()
    assert repr(_yaml.load(data, limits)) == repr(_yaml.load(data, limits, PURE_PYTHON_LOADER))


def test_syck_long_tags(loader: type[_yaml.Loader]) -> None:
    """Syck's ``tag:ruby.yaml.org,2002:`` URIs read like the ``!ruby/`` short forms."""
    result = value("!<tag:ruby.yaml.org,2002:struct:Old> {a: 1}", loader)
    assert result == RubyObject("Old", {"a": 1}, "struct")


def test_empty_document_fails(loader: type[_yaml.Loader]) -> None:
    """A stream with no document (only a comment) is a load failure."""
    with pytest.raises(PayloadDecodeError, match="no YAML document"):
        load("# nothing\n", loader)
