"""Hostile and broken handlers: each fails with PayloadDecodeError saying why, and fast."""

from __future__ import annotations

import time

import pytest
import yaml

from djmw.errors import PayloadDecodeError
from djmw.ruby import _yaml
from djmw.ruby.payload import DecodeLimits, decode_handler

PREFIX = "Job failed to load: "
PYTHON_TAGS = [
    '!!python/object/apply:os.system ["echo hi"]',
    "!!python/object/new:os.system [echo hi]",
    "!!python/object:__main__.Thing {a: 1}",
    "!!python/name:os.system ''",
    "!!python/module:os ''",
    "!!python/tuple [1, 2]",
    "!!python/list [1]",
    "!!python/dict {a: 1}",
    "!!python/str abc",
    "!!python/unicode abc",
    "!!python/bytes YQ==",
    "!!python/int 1",
    "!!python/long 1",
    "!!python/float 1.5",
    "!!python/complex 1+2j",
    "!!python/bool true",
    "!!python/none ''",
]


def fails(handler: str | bytes | None, *, limits: DecodeLimits | None = None) -> str:
    """Decode ``handler``, expect a PayloadDecodeError, and return its message."""
    with pytest.raises(PayloadDecodeError) as info:
        decode_handler(handler, limits=limits or DecodeLimits())
    message = str(info.value)
    assert message.startswith(PREFIX)
    return message


@pytest.mark.parametrize("tagged", PYTHON_TAGS)
def test_python_tags_are_refused_at_top_level(tagged: str) -> None:
    """Every ``!!python/...`` tag fails as an unknown tag and builds nothing."""
    message = fails(f"--- {tagged}\n")
    assert "unknown tag !!python/" in message


@pytest.mark.parametrize("tagged", PYTHON_TAGS)
def test_python_tags_are_refused_inside_a_job(tagged: str) -> None:
    """A ``!!python/...`` value nested in an otherwise valid job fails the whole job."""
    message = fails(f"--- !ruby/struct:NewsletterJob\ntext: {tagged}\n")
    assert "unknown tag !!python/" in message
    assert "line 2" in message


def test_os_system_is_never_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classic exploit fails without reaching os.system."""
    calls: list[object] = []
    monkeypatch.setattr("os.system", calls.append)
    fails('--- !!python/object/apply:os.system ["echo hi"]\n')
    assert calls == []


def billion_laughs(levels: int = 9) -> str:
    """A job whose aliases expand to 9**levels strings."""
    lines = [
        "--- !ruby/struct:NewsletterJob",
        'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, levels + 1):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"  # fmt: skip


def test_billion_laughs_fails_fast() -> None:
    """Exponential alias expansion hits max_nodes in well under a second."""
    start = time.perf_counter()
    message = fails(billion_laughs())
    assert time.perf_counter() - start < 0.5
    assert "max_nodes" in message


def test_billion_laughs_fails_fast_on_pure_python_loader() -> None:
    """The pure-Python loader stops the same document as fast."""
    start = time.perf_counter()
    loader = _yaml.build_loader(yaml.SafeLoader)
    with pytest.raises(PayloadDecodeError, match="max_nodes"):
        _yaml.load(billion_laughs().encode(), DecodeLimits(), loader)
    assert time.perf_counter() - start < 0.5


def test_too_many_aliases() -> None:
    """More alias references than max_aliases fail, even when each is small."""
    refs = ", ".join(["*s"] * 50)
    message = fails(
        f"--- !ruby/struct:J\ns: &s 1\na: [{refs}]\n", limits=DecodeLimits(max_aliases=10)
    )
    assert "max_aliases" in message


def test_recursive_alias() -> None:
    """A collection that contains itself fails instead of looping or building a cycle."""
    assert "recursive alias" in fails("--- !ruby/struct:J\na: &a [1, *a]\n")
    assert "recursive alias" in fails("--- !ruby/struct:J\na: &m {k: *m}\n")


@pytest.mark.parametrize("depth", [101, 10_000])
def test_deep_flow_nesting(depth: int) -> None:
    """Nesting past max_depth fails, also far past Python's recursion limit."""
    message = fails("--- !ruby/struct:J\na: " + "[" * depth + "]" * depth + "\n")
    assert "nests deeper" in message


def test_deep_block_nesting() -> None:
    """Indentation-nested sequences past max_depth fail too."""
    lines = "".join("  " * level + "-\n" for level in range(150))
    assert "nests deeper" in fails("--- !ruby/struct:J\na:\n" + lines)


def test_depth_through_aliases() -> None:
    """Depth counts what aliases expand to: a deep anchor reused deeper still fails."""
    anchor = "[" * 60 + "]" * 60
    handler = f"--- !ruby/struct:J\na: &d {anchor}\nb: {'[' * 50}*d{']' * 50}\n"
    assert "nests deeper" in fails(handler)


def test_depth_within_limit_decodes() -> None:
    """Nesting up to max_depth decodes."""
    nested = "[" * 99 + "]" * 99
    assert decode_handler(f"--- !ruby/struct:J\na: {nested}\n").name == "J"


@pytest.mark.parametrize("loader_base", [yaml.SafeLoader, _yaml.RubyLoader.__mro__[1]])
def test_event_prescan_catches_depth(
    loader_base: type[_yaml.Loader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a parser nesting limit, the non-recursive event scan still refuses 10k levels."""
    monkeypatch.setattr(_yaml, "parser_limits_nesting", lambda loader_class: False)
    loader = _yaml.build_loader(loader_base)
    data = ("--- !ruby/struct:J\na: " + "[" * 10_000 + "]" * 10_000 + "\n").encode()
    with pytest.raises(PayloadDecodeError, match="nests deeper"):
        _yaml.load(data, DecodeLimits(), loader)


def test_pure_python_parser_has_no_nesting_limit() -> None:
    """PyYAML's own parser does not limit nesting, so djmw scans events before composing."""
    assert not _yaml.parser_limits_nesting(_yaml.build_loader(yaml.SafeLoader))


def test_ten_mebibyte_handler() -> None:
    """A handler over max_bytes fails before any parsing, as text or bytes."""
    big = "--- !ruby/struct:J\na: " + "x" * (10 * 1024 * 1024) + "\n"
    start = time.perf_counter()
    assert "max_bytes" in fails(big)
    assert "max_bytes" in fails(big.encode())
    assert time.perf_counter() - start < 0.5


def test_multibyte_text_counts_utf8_bytes() -> None:
    """The size limit is in UTF-8 bytes, not characters."""
    handler = "--- !ruby/struct:J\na: " + "é" * 600 + "\n"
    assert "max_bytes" in fails(handler, limits=DecodeLimits(max_bytes=1000))


def test_too_many_nodes_without_aliases() -> None:
    """A flat but huge document fails on max_nodes."""
    handler = "--- !ruby/struct:J\na: [" + ",".join(["1"] * 2000) + "]\n"
    assert "max_nodes" in fails(handler, limits=DecodeLimits(max_nodes=1000))


def test_invalid_utf8_bytes() -> None:
    """Bytes that are not UTF-8 fail, naming the offset."""
    message = fails(b"--- !ruby/struct:J\na: \xff\xfe\n")
    assert "not valid UTF-8" in message
    assert "byte 22" in message


def test_lone_surrogate_text() -> None:
    """Text that cannot be UTF-8 (a lone surrogate) fails."""
    assert "not valid Unicode" in fails("--- !ruby/struct:J\na: \ud800\n")


@pytest.mark.parametrize(
    "handler", ["--- !ruby/struct:J\na: b\x00c\n", b"--- !ruby/struct:J\x00\n"]
)
def test_nul_bytes(handler: str | bytes) -> None:
    """A NUL byte anywhere fails, naming it."""
    assert "NUL byte" in fails(handler)


def test_control_characters() -> None:
    """Other characters YAML forbids fail with the code point."""
    assert "#x0001" in fails("--- !ruby/struct:J\na: b\x01c\n")


@pytest.mark.parametrize("handler", ["", "   \n\t\n", b""])
def test_empty_handler(handler: str | bytes) -> None:
    """An empty or blank handler fails as empty."""
    assert "empty" in fails(handler)


def test_null_handler() -> None:
    """A NULL handler column fails."""
    assert "NULL" in fails(None)


def test_not_text() -> None:
    """A handler of a non-text type fails instead of raising TypeError."""
    assert "not text" in fails(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        ("--- hello\n", "str"),
        ("--- 42\n", "int"),
        ("---\n", "NoneType"),
        ("--- [1, 2]\n", "list"),
        ("--- :sym\n", "Symbol"),
        ("--- !ruby/object:Set\nhash: {}\n", "frozenset"),
    ],
)
def test_top_level_value_that_is_not_a_job(handler: str, kind: str) -> None:
    """A scalar, list or plain value at the top is not a job."""
    message = fails(handler)
    assert f"top-level value is a {kind}" in message
    assert "not a job" in message


@pytest.mark.parametrize(
    ("handler", "where"),
    [
        ("--- !ruby/struct:J\na: [1, 2\nb: 3\n", "line 3, column 2"),
        ("--- !ruby/struct:J\na: 'open\n", "line 3"),
        ("--- !ruby/struct:J\n  a: 1\n b: 2\n", "line 3"),
        ("--- !ruby/struct:J\na: *nowhere\n", "line 2"),
        ("--- !ruby/struct:J\na: 1\n--- !ruby/struct:K\nb: 2\n", "line 3"),
    ],
)
def test_syntax_errors_give_the_position(handler: str, where: str) -> None:
    """YAML syntax errors say so and give line and column (1-based)."""
    message = fails(handler)
    assert message.startswith(PREFIX + "YAML syntax error")
    assert where in message


def test_unexpected_errors_are_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a bug inside the loader surfaces as PayloadDecodeError, chained to the cause."""

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(_yaml, "load", broken)
    with pytest.raises(
        PayloadDecodeError, match=r"^Job failed to load: unexpected RuntimeError"
    ) as info:
        decode_handler("--- !ruby/struct:J\na: 1\n")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_recursion_error_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A RecursionError (a very high max_depth) becomes a nesting failure."""

    def too_deep(*args: object, **kwargs: object) -> object:
        raise RecursionError

    monkeypatch.setattr(_yaml, "load", too_deep)
    assert "nests too deeply" in fails("--- !ruby/struct:J\na: 1\n")


def test_huge_integer_fails_cleanly() -> None:
    """An integer past Python's digit limit fails instead of raising ValueError."""
    assert "cannot read the scalar" in fails("--- !ruby/struct:J\na: " + "9" * 5000 + "\n")
