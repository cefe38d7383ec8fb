"""Constructors for the YAML tags Psych writes: each turns one node into a djmw value.

The loader in ``djmw.ruby._yaml`` registers these on a ``yaml.SafeLoader`` subclass. They
build only plain data and the types of ``djmw.ruby.values``; a tag they do not know fails the
decode with a ``PayloadDecodeError`` naming the tag, it is never looked up as a class.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import NoReturn, TypeAlias

from yaml import CSafeLoader, SafeLoader
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from djmw.errors import PayloadDecodeError
from djmw.ruby._yaml_scalars import parse_time, tokenize
from djmw.ruby.values import RecordRef, RubyModule, RubyObject, RubyRange, RubyRegexp, Symbol

#: The loaders the constructors are registered on (see ``djmw.ruby._yaml.build_loader``).
Loader: TypeAlias = SafeLoader | CSafeLoader

#: The tag the loader's resolver gives every plain (unquoted, untagged) scalar.
PLAIN_TAG = "tag:djmw.invalid,2024:plain"
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
SYCK_TAG_PREFIX = "tag:ruby.yaml.org,2002:"
_STR_TAG = YAML_TAG_PREFIX + "str"

_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")
_REGEXP = re.compile(r"/(.*)/([a-z]*)", re.DOTALL)
_RANGE_SPLIT = re.compile(r"(\.{2,3})")
_CONVERSION_ERRORS = (ValueError, TypeError, ArithmeticError)


def decode_error(reason: str, node: Node | None = None, hint: str = "") -> PayloadDecodeError:
    """Build the error for an undecodable handler: ``Job failed to load: <reason>``.

    The position of ``node`` follows the reason, then the ``hint`` after a semicolon.
    """
    if node is not None and node.start_mark is not None:
        mark = node.start_mark
        reason = f"{reason} at line {mark.line + 1}, column {mark.column + 1}"
    if hint:
        reason = f"{reason}; {hint}"
    return PayloadDecodeError(f"Job failed to load: {reason}")


def show_tag(tag: str) -> str:
    """Write a tag the short way it appears in YAML text (``!!python/...``, ``!ruby/...``)."""
    if tag.startswith(YAML_TAG_PREFIX):
        return "!!" + tag[len(YAML_TAG_PREFIX) :]
    if tag.startswith(SYCK_TAG_PREFIX):
        return "!ruby/" + tag[len(SYCK_TAG_PREFIX) :]
    return tag


def _unknown(node: Node) -> NoReturn:
    kind = {ScalarNode: "scalar", SequenceNode: "sequence", MappingNode: "mapping"}.get(
        type(node), "node"
    )
    reason = f"unknown tag {show_tag(node.tag)} on a {kind}"
    raise decode_error(
        reason, node, "djmw decodes only Ruby's YAML tags, it builds no other objects"
    )


# Child construction is always deep: values must be complete when a constructor returns
# (a Set is built from its finished hash), and recursive aliases were rejected before.
# Plain and quoted scalars, most of any handler, skip PyYAML's per-node bookkeeping: they
# build immutable values, so sharing them between aliases changes nothing.
def _child(loader: Loader, node: Node) -> object:
    if type(node) is ScalarNode:
        if node.tag == PLAIN_TAG:
            return _plain(node)
        if node.tag == _STR_TAG:
            return node.value
    return loader.construct_object(node, deep=True)


def _pairs(loader: Loader, node: MappingNode) -> list[tuple[Node, object, object]]:
    loader.flatten_mapping(node)
    return [(key, _child(loader, key), _child(loader, value)) for key, value in node.value]


def construct_dict(loader: Loader, node: MappingNode) -> dict[object, object]:
    """A Ruby Hash: a dict whose keys keep their types (str, Symbol, int, ...)."""
    result: dict[object, object] = {}
    for key_node, key, value in _pairs(loader, node):
        try:
            result[key] = value
        except TypeError:
            reason = f"a {type(key).__name__} mapping key cannot be used as a Python dict key"
            raise decode_error(reason, key_node) from None
    return result


def construct_list(loader: Loader, node: SequenceNode) -> list[object]:
    """A Ruby Array."""
    return [_child(loader, child) for child in node.value]


def construct_plain(loader: Loader, node: Node) -> object:
    """An untagged, unquoted scalar, read with Psych's rules (see ``_yaml_scalars``)."""
    if not isinstance(node, ScalarNode):
        _unknown(node)
    return _plain(node)


# Keys and short values repeat from job to job; the results are immutable, so caching is safe.
_tokenize_short = functools.lru_cache(maxsize=4096)(tokenize)


def _plain(node: ScalarNode) -> object:
    text: str = node.value
    try:
        return _tokenize_short(text) if len(text) <= 64 else tokenize(text)
    except ValueError as exc:
        msg = f"cannot read the scalar {text[:40]!r} ({exc})"
        raise decode_error(msg, node) from exc


def construct_str(loader: Loader, node: Node) -> object:
    """A quoted or ``!!str`` scalar: always a string (``!!str`` on a mapping: see ``!str``)."""
    if not isinstance(node, ScalarNode):
        return construct_tagged(loader, "str", node)
    return str(node.value)


def _fields(loader: Loader, node: MappingNode) -> dict[str, object]:
    # Psych sets "@#{key}" for each key, so Symbol keys name instance variables too.
    fields: dict[str, object] = {}
    for key_node, raw_key, value in _pairs(loader, node):
        key = raw_key.name if isinstance(raw_key, Symbol) else raw_key
        if not isinstance(key, str):
            reason = f"a {type(key).__name__} key cannot name an instance variable or member"
            raise decode_error(reason, key_node)
        fields[key] = value
    return fields


def _scalar_object(name: str, text: str) -> object:
    if name == "BigDecimal":
        # BigDecimal#_dump is "<precision>:<digits>"; the precision only sizes Ruby's buffer.
        return Decimal(text.partition(":")[2] if ":" in text else text)
    if name == "DateTime":
        return parse_time(text)
    if name == "Complex":
        return complex(text.strip("()").replace("i", "j"))
    if name == "Rational":
        return Fraction(text)
    if not text.strip():
        # An object with no instance variables, as Syck sometimes wrote it (a bare tag).
        return RubyObject(name or "Object", {})
    return RubyObject(name or "Object", {"value": tokenize(text)}, kind="scalar")


def _unpack_base64(text: str) -> bytes:
    # Ruby's unpack("m"): skips foreign characters, stops at padding, never fails.
    cleaned = _NOT_BASE64.sub("", text).partition("=")[0]
    cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))


def _regexp(text: str) -> RubyRegexp:
    match = _REGEXP.fullmatch(text)
    if match is None:
        msg = f"not a /source/options regexp: {text!r}"
        raise ValueError(msg)
    return RubyRegexp(match[1], match[2])


def _range(text: str) -> RubyRange:
    pieces = _RANGE_SPLIT.split(text, maxsplit=1)
    if len(pieces) != 3:
        msg = f"not a begin..end range: {text!r}"
        raise ValueError(msg)
    return RubyRange(tokenize(pieces[0]), tokenize(pieces[2]), pieces[1] == "...")


def _module(text: str) -> RubyModule | None:
    # Psych resolves an empty class name to nil; Syck wrote the name unquoted, maybe padded.
    name = text.strip()
    return RubyModule(name) if name else None


def _float(text: str) -> float:
    value = tokenize(text)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        msg = f"not a float: {text!r}"
        raise TypeError(msg)
    return float(value)


_SCALARS: dict[str, Callable[[str, str], object]] = {
    "binary": lambda _, text: _unpack_base64(text),
    "str": lambda _, text: text,
    "ruby/string": lambda _, text: text,
    "ruby/sym": lambda _, text: Symbol(text),
    "ruby/symbol": lambda _, text: Symbol(text),
    "ruby/class": lambda _, text: _module(text),
    "ruby/module": lambda _, text: _module(text),
    "ruby/regexp": lambda _, text: _regexp(text),
    "ruby/range": lambda _, text: _range(text),
    "ruby/encoding": lambda _, text: RubyObject("Encoding", {"value": text}, kind="scalar"),
    "float": lambda _, text: _float(text),
    "int": lambda _, text: tokenize(text),
    "bool": lambda _, text: tokenize(text),
    "null": lambda _, text: tokenize(text),
    "timestamp": lambda _, text: tokenize(text),
    "merge": lambda _, text: text,
    "ruby/object": _scalar_object,
    "ruby/struct": lambda name, text: _bare(name or "Struct", text, "struct"),
    "ruby/exception": lambda name, text: _bare(name or "Exception", text, "exception"),
}


def _bare(name: str, text: str, kind: str) -> RubyObject:
    # A struct with no members, as Syck sometimes wrote it (a bare tag).
    if text.strip():
        msg = f"a {kind} written as the scalar {text[:40]!r}"
        raise ValueError(msg)
    return RubyObject(name, {}, kind=kind)


def _record_key(fields: dict[str, object]) -> tuple[bool, object]:
    """Whether ``fields`` are an Active Record object's YAML, and its ``id`` if so.

    Covers Rails 6.1+ (``concise_attributes``), Rails 4.2-6.0 (``raw_attributes`` /
    ``active_record_yaml_version: 1``) and Rails <= 4.1 (a lone ``attributes`` map with
    an ``id``). A plain object whose only instance variable is an ``@attributes`` Hash
    with an "id" key is indistinguishable from the last and is read as a record.
    """
    concise = fields.get("concise_attributes")
    if isinstance(concise, list):
        for attribute in concise:
            if isinstance(attribute, RubyObject) and attribute.fields.get("name") == "id":
                return True, attribute.fields.get("value_before_type_cast")
        return True, None
    raw = fields.get("raw_attributes")
    if isinstance(raw, dict):
        return True, raw.get("id")
    attributes = fields.get("attributes")
    if "active_record_yaml_version" in fields:
        return True, attributes.get("id") if isinstance(attributes, dict) else None
    if fields.keys() == {"attributes"} and isinstance(attributes, dict) and "id" in attributes:
        return True, attributes["id"]
    return False, None


def _mapping_object(loader: Loader, name: str, node: MappingNode) -> object:
    fields = _fields(loader, node)
    members = fields.get("hash")
    if name in ("Set", "SortedSet") and isinstance(members, dict):
        return frozenset(members)
    if name == "Complex":
        return complex(_number(fields["real"]), _number(fields["image"]))
    if name == "Rational":
        return Fraction(_integer(fields["numerator"]), _integer(fields["denominator"]))
    if name == "ActiveSupport::TimeWithZone":
        # "time" is local wall-clock time mislabelled Z; "utc" is the instant.
        utc = fields.get("utc")
        if not isinstance(utc, datetime):
            msg = "an ActiveSupport::TimeWithZone without a utc time"
            raise decode_error(msg, node)
        return utc
    if name == "ActiveSupport::Duration":
        return timedelta(seconds=_number(fields["value"]))
    is_record, key = _record_key(fields)
    if is_record:
        return RecordRef(name or "Object", key)
    return RubyObject(name or "Object", fields)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction, Decimal)):
        msg = f"{value!r} is not a number"
        raise TypeError(msg)
    return float(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{value!r} is not an integer"
        raise TypeError(msg)
    return value


def _orm_record(loader: Loader, name: str, node: MappingNode) -> RecordRef:
    # delayed_job <= 4.0.3 wrote records as !ruby/ActiveRecord:Class (Mongoid: _id).
    attributes = _fields(loader, node).get("attributes")
    key: object = None
    if isinstance(attributes, dict):
        key = attributes.get("id", attributes.get("_id"))
    if isinstance(key, RubyObject) and "value" in key.fields:
        key = key.fields["value"]
    return RecordRef(name, key)


def _hash_with_ivars(loader: Loader, name: str, node: MappingNode) -> object:
    elements = _fields(loader, node).get("elements")
    return elements if isinstance(elements, dict) else {}


def _data_with_ivars(loader: Loader, name: str, node: MappingNode) -> RubyObject:
    # Ruby 3.2 Data with instance variables: the members sit under "members".
    members = _fields(loader, node).get("members")
    return RubyObject(name or "Data", members if isinstance(members, dict) else {}, "data")


def _range_mapping(loader: Loader, name: str, node: MappingNode) -> RubyRange:
    fields = _fields(loader, node)
    return RubyRange(fields.get("begin"), fields.get("end"), bool(fields.get("excl")))


def _string_mapping(loader: Loader, name: str, node: MappingNode) -> str:
    return str(_fields(loader, node)["str"])


def _array_mapping(loader: Loader, name: str, node: MappingNode) -> list[object]:
    internal = _fields(loader, node).get("internal")
    return list(internal) if isinstance(internal, list) else []


def _set_mapping(loader: Loader, name: str, node: MappingNode) -> frozenset[object]:
    return frozenset(construct_dict(loader, node))


def _kind(kind: str, default: str) -> Callable[[Loader, str, MappingNode], RubyObject]:
    def construct(loader: Loader, name: str, node: MappingNode) -> RubyObject:
        return RubyObject(name or default, _fields(loader, node), kind)

    return construct


_MAPPINGS: dict[str, Callable[[Loader, str, MappingNode], object]] = {
    "map": lambda loader, _, node: construct_dict(loader, node),
    "omap": lambda loader, _, node: construct_dict(loader, node),
    "ruby/hash": lambda loader, _, node: construct_dict(loader, node),
    "ruby/hash-with-ivars": _hash_with_ivars,
    "set": _set_mapping,
    "ruby/object": _mapping_object,
    "ruby/struct": _kind("struct", "Struct"),
    "ruby/exception": _kind("exception", "Exception"),
    "ruby/marshalable": _kind("marshalable", "Object"),
    "ruby/data": _kind("data", "Data"),
    "ruby/data-with-ivars": _data_with_ivars,
    "ruby/range": _range_mapping,
    "ruby/string": _string_mapping,
    "str": _string_mapping,
    "ruby/array": _array_mapping,
    "ruby/ActiveRecord": _orm_record,
    "ruby/Mongoid": _orm_record,
    "ruby/DataMapper": _orm_record,
}


def _omap_sequence(loader: Loader, name: str, node: SequenceNode) -> dict[object, object]:
    result: dict[object, object] = {}
    for item in construct_list(loader, node):
        if not isinstance(item, dict):
            msg = "an !omap entry that is not a one-pair mapping"
            raise decode_error(msg, node)
        result.update(item)
    return result


_SEQUENCES: dict[str, Callable[[Loader, str, SequenceNode], object]] = {
    "seq": lambda loader, _, node: construct_list(loader, node),
    "ruby/array": lambda loader, _, node: construct_list(loader, node),
    "omap": _omap_sequence,
}


def construct_tagged(loader: Loader, family_and_name: str, node: Node) -> object:
    """Build a node tagged ``!family[:Name]`` (after the prefix), or fail on unknown tags."""
    family, _, name = family_and_name.partition(":")
    try:
        if isinstance(node, ScalarNode):
            scalar = _SCALARS.get(family)
            if scalar is not None:
                return scalar(name, node.value)
        elif isinstance(node, MappingNode):
            mapping = _MAPPINGS.get(family)
            if mapping is not None:
                return mapping(loader, name, node)
        elif isinstance(node, SequenceNode):
            sequence = _SEQUENCES.get(family)
            if sequence is not None:
                return sequence(loader, name, node)
    except (*_CONVERSION_ERRORS, KeyError) as exc:
        reason = f"bad {show_tag(node.tag)} value ({type(exc).__name__}: {exc})"
        raise decode_error(reason, node) from exc
    _unknown(node)


def construct_local(loader: Loader, suffix: str, node: Node) -> object:
    """Multi-constructor for local tags (``!ruby/...``, ``!binary``, ``!str``, ...)."""
    return construct_tagged(loader, suffix, node)


def construct_syck(loader: Loader, suffix: str, node: Node) -> object:
    """Multi-constructor for Syck's long form ``tag:ruby.yaml.org,2002:object:Name``."""
    return construct_tagged(loader, "ruby/" + suffix, node)


_STANDARD = frozenset(
    {"str", "int", "bool", "null", "timestamp", "float", "binary", "merge"}
    | {"seq", "map", "set", "omap"}
)


def construct_standard(loader: Loader, suffix: str, node: Node) -> object:
    """Multi-constructor for ``!!`` tags; only YAML's own types, never ``!!python/...``."""
    if suffix not in _STANDARD:
        _unknown(node)
    return construct_tagged(loader, suffix, node)


def construct_unknown(loader: Loader, node: Node) -> NoReturn:
    """Fallback for any other tag (global URIs, ``!<verbatim>`` tags): always fails."""
    _unknown(node)
