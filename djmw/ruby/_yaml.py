"""The safe Ruby-YAML loader: handler bytes -> plain Python values and ``djmw.ruby.values``.

``RubyLoader`` subclasses PyYAML's ``CSafeLoader`` (libyaml) when PyYAML was built with
it, else the pure-Python ``SafeLoader``; both get the same resolver and constructors.
Its constructor table is built from scratch, so only the tags of ``_yaml_ruby`` and
YAML's own types load; everything else (``!!python/...`` included) fails.

``load`` composes the node graph first and checks it against the limits (depth, nodes
after alias expansion, alias count, recursive aliases) before building any value, so
hostile input fails fast and in bounded memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Protocol

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from djmw.ruby._yaml_ruby import (
    PLAIN_TAG,
    SYCK_TAG_PREFIX,
    YAML_TAG_PREFIX,
    Loader,
    construct_dict,
    construct_list,
    construct_local,
    construct_plain,
    construct_standard,
    construct_str,
    construct_syck,
    construct_unknown,
    decode_error,
)

_STR_TAG = YAML_TAG_PREFIX + "str"
_SEQ_TAG = YAML_TAG_PREFIX + "seq"
_MAP_TAG = YAML_TAG_PREFIX + "map"
_MERGE_TAG = YAML_TAG_PREFIX + "merge"
_NESTING_PROBE = "[" * 1100 + "]" * 1100


class Limits(Protocol):
    """The limits ``load`` enforces; ``djmw.ruby.payload.DecodeLimits`` provides them."""

    @property
    def max_depth(self) -> int:
        """Deepest allowed nesting of sequences and mappings."""
        ...

    @property
    def max_nodes(self) -> int:
        """Most nodes allowed after alias expansion."""
        ...

    @property
    def max_aliases(self) -> int:
        """Most alias references (``*name``) allowed."""
        ...


def _resolve(self: object, kind: type[Node], value: str | None, implicit: tuple[bool, bool]) -> str:
    # Psych reads every plain scalar (also one tagged "!") with its ScalarScanner and
    # every quoted one as a String, so the resolver only tells the two apart.
    if kind is ScalarNode:
        if implicit[0]:
            return _MERGE_TAG if value == "<<" else PLAIN_TAG
        return _STR_TAG
    return _SEQ_TAG if kind is SequenceNode else _MAP_TAG


def build_loader(base: type[Loader]) -> type[Loader]:
    """Make a Ruby-YAML loader class on ``base`` (``yaml.CSafeLoader`` or ``yaml.SafeLoader``).

    The tables are fresh dicts on the new class, so nothing registered on PyYAML's own
    loaders (by djmw or anyone else) leaks in.
    """
    namespace = {
        "resolve": _resolve,
        "yaml_constructors": {},
        "yaml_multi_constructors": {},
        "yaml_implicit_resolvers": {},
    }
    cls: type[Loader] = type(f"Ruby{base.__name__}", (base,), namespace)
    cls.add_constructor(PLAIN_TAG, construct_plain)
    cls.add_constructor(_STR_TAG, construct_str)
    cls.add_constructor(_SEQ_TAG, construct_list)
    cls.add_constructor(_MAP_TAG, construct_dict)
    cls.add_multi_constructor("!", construct_local)
    cls.add_multi_constructor(YAML_TAG_PREFIX, construct_standard)
    cls.add_multi_constructor(SYCK_TAG_PREFIX, construct_syck)
    cls.add_constructor(None, construct_unknown)
    return cls


#: True when PyYAML has libyaml; decoding is then several times faster.
WITH_LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))
_BASE: type[Loader] = yaml.CSafeLoader if WITH_LIBYAML else yaml.SafeLoader
RubyLoader: type[Loader] = build_loader(_BASE)


_NESTING_LIMITED: dict[type[Loader], bool] = {}


def parser_limits_nesting(loader_class: type[Loader]) -> bool:
    """Whether the parser under ``loader_class`` refuses deep nesting by itself.

    Recent libyaml builds do, at 1000 levels; older ones and PyYAML's pure-Python parser
    do not.

    PyYAML's composer recurses once per level, in C for libyaml; without a parser limit
    ``load`` first counts the depth on the event stream, which does not recurse.
    """
    known = _NESTING_LIMITED.get(loader_class)
    if known is not None:
        return known
    limited = False
    # PyYAML's own parser has no limit, and probing it would take most of a second.
    if not issubclass(loader_class, yaml.SafeLoader):
        try:
            for _ in yaml.parse(_NESTING_PROBE, Loader=loader_class):
                pass
        except yaml.YAMLError as exc:
            limited = "nesting" in str(exc)
    _NESTING_LIMITED[loader_class] = limited
    return limited


def _check_event_depth(data: bytes, max_depth: int, loader_class: type[Loader]) -> None:
    depth = 0
    for event in yaml.parse(data, Loader=loader_class):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _too_deep(max_depth: int) -> Exception:
    return decode_error(f"the YAML nests deeper than {max_depth} levels (max_depth)")


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, MappingNode):
        return itertools.chain.from_iterable(node.value)
    return iter(node.value)


class _Frame:
    """One open collection of the depth-first walk, with what its children add up to."""

    __slots__ = ("children", "height", "node", "size")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.children = _children(node)
        self.size = 1
        self.height = 0

    def add(self, size: int, height: int, max_nodes: int) -> None:
        self.size += size
        if self.size > max_nodes:
            reason = f"the YAML has more than {max_nodes} nodes once aliases are expanded"
            msg = f"{reason} (max_nodes)"
            raise decode_error(msg)
        self.height = max(self.height, height)


def check_limits(root: Node, limits: Limits) -> None:
    """Refuse node graphs that are too deep, too big once aliases expand, or recursive.

    One depth-first pass over the composed graph; each distinct node is visited once and
    its expanded size and height are memoised, so a billion-laughs document costs only
    as many steps as it has nodes in the text.

    Raises:
        PayloadDecodeError: a limit is exceeded or an alias refers to its own ancestor.
    """
    if isinstance(root, ScalarNode):
        return
    max_depth, max_nodes, max_aliases = limits.max_depth, limits.max_nodes, limits.max_aliases
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    open_nodes = {id(root)}
    frames = [_Frame(root)]
    aliases = 0
    while frames:
        frame = frames[-1]
        child = next(frame.children, None)
        if child is None:
            frames.pop()
            height = frame.height + 1
            if height > max_depth:
                raise _too_deep(max_depth)
            done[id(frame.node)] = (frame.size, height)
            open_nodes.discard(id(frame.node))
            if frames:
                frames[-1].add(frame.size, height, max_nodes)
            continue
        key = id(child)
        seen = done.get(key)
        if seen is not None:
            aliases += 1
            if aliases > max_aliases:
                msg = f"the YAML uses more than {max_aliases} aliases (max_aliases)"
                raise decode_error(msg)
            frame.add(*seen, max_nodes)
        elif key in open_nodes:
            msg = "a recursive alias (a collection that contains itself)"
            raise decode_error(msg, child)
        elif isinstance(child, ScalarNode):
            done[key] = (1, 0)
            frame.add(1, 0, max_nodes)
        else:
            if len(frames) >= max_depth:
                raise _too_deep(max_depth)
            open_nodes.add(key)
            frames.append(_Frame(child))


def _may_exceed_limits(data: bytes, limits: Limits) -> bool:
    """False when the text alone proves the node graph is within every limit.

    Without a ``*`` there are no aliases, so the graph is a tree: no recursion, and no
    more nodes than 4 per byte (one character yields at most 3 nodes, as ``:`` does in
    ``[:]``). Every sequence or mapping starts at its own ``-``, ``?``, ``:``, ``[`` or
    ``{``, so counting those bounds the depth. Most real handlers pass these checks and
    skip ``check_limits``, which would cost more than parsing them.
    """
    if b"*" in data or 4 * len(data) + 4 > limits.max_nodes:
        return True
    starts = sum(data.count(indicator) for indicator in (b"-", b":", b"?", b"[", b"{"))
    return starts > limits.max_depth


def load(data: bytes, limits: Limits, loader_class: type[Loader] = RubyLoader) -> object:
    """Parse one YAML document written by Psych and build its value.

    Args:
        data: the handler as UTF-8 bytes (size, encoding and NUL checks come first, in
            ``djmw.ruby.payload``).
        limits: depth, node and alias limits.
        loader_class: the loader to use; tests pass one built on the other PyYAML base.

    Raises:
        PayloadDecodeError: syntax errors, unknown tags, limits, and values the tags do
            not allow; the message starts ``Job failed to load:``.
    """
    loader = loader_class(data)
    try:
        if not parser_limits_nesting(loader_class):
            _check_event_depth(data, limits.max_depth, loader_class)
        node = loader.get_single_node()
        if node is None:
            msg = "the handler holds no YAML document"
            raise decode_error(msg)
        if _may_exceed_limits(data, limits):
            check_limits(node, limits)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, limits.max_depth) from exc
    finally:
        loader.dispose()


def _syntax_error(exc: yaml.YAMLError, max_depth: int) -> Exception:
    if isinstance(exc, yaml.reader.ReaderError):
        character = (
            exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "?")
        )
        reason = (
            f"the handler has a character YAML does not allow (#x{character:04X}: {exc.reason})"
        )
        return decode_error(f"{reason} at character {exc.position}")
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or "malformed YAML"
        if "nesting depth" in problem:
            return decode_error(
                f"the YAML nests deeper than the YAML parser allows (max_depth is {max_depth})"
            )
        where = ""
        if exc.problem_mark is not None:
            mark = exc.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        context = f" ({exc.context})" if exc.context else ""
        label = "YAML syntax error"
        if isinstance(exc, yaml.constructor.ConstructorError):
            label = "cannot build a value"
        return decode_error(f"{label}{where}: {problem}{context}")
    return decode_error(f"YAML error: {exc}")
