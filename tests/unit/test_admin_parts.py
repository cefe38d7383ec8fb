"""The operations API's pure parts: durations, terminal escaping, payloads as data and
text, the name prefilter, and the errors of bad arguments."""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from djmw.admin import JobFilter, Jobs, human, parse_duration, parse_time
from djmw.admin.enqueue import build_handler
from djmw.admin.plain import pretty, to_plain
from djmw.admin.rows import decode
from djmw.admin.scope import name_prefilter
from djmw.cli._term import block, clean, display_width, table
from djmw.errors import ConfigurationError
from djmw.ruby import encode
from djmw.ruby.payload import decode_handler
from djmw.ruby.values import KeywordArgs, RecordRef, RubyModule, RubyObject, Symbol
from djmw.testing import InMemoryBackend

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("5m", 300), ("5min", 300), ("2h", 7200), ("30d", 2592000),
     ("1w", 604800), ("1h30m", 5400), ("1.5h", 5400), (45, 45), (2.5, 2.5)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    """Durations read as seconds, with units s, m/min, h, d, w, combined or not."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5m", "5x", "", True, None, float("inf"), "1h-2m"])
def test_bad_durations_name_the_value(text: object) -> None:
    """A bad duration raises ConfigurationError quoting it."""
    with pytest.raises(ConfigurationError, match="duration"):
        parse_duration(text, "--older-than")


def test_times_and_human_readings() -> None:
    """--run-at takes now, +delay, a delay, or ISO (offsets become naive UTC); human()
    reads seconds back in the unit that fits."""
    now = datetime(2026, 1, 1, 12, 0, 0)
    assert parse_time("now", now) == now
    assert parse_time("+5m", now) == now + timedelta(minutes=5)
    assert parse_time("2h", now) == now + timedelta(hours=2)
    assert parse_time("2026-02-01T10:00:00+02:00", now) == datetime(2026, 2, 1, 8, 0, 0)
    assert parse_time("2026-02-01 10:00", now) == datetime(2026, 2, 1, 10, 0, 0)
    with pytest.raises(ConfigurationError, match="ISO 8601"):
        parse_time("tomorrow", now)
    assert [human(s) for s in (12, 240, 3 * 3600, 86400, 3 * 86400)] == [
        "12 s",
        "4 min",
        "3 h",
        "24 h",
        "3 days",
    ]


HOSTILE = [
    ("\x1b[31mred", "\\e[31mred"),
    ("nul\x00byte", "nul\\0byte"),
    ("bell\x07", "bell\\x07"),
    ("csi\x9b1m", "csi\\x9b1m"),
    ("rtl\u202eevil\u202c", "rtl\\u202eevil\\u202c"),
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("line\nbreak\r\tand\u2028sep", "line\\nbreak\\r\\tand\\u2028sep"),
    ("private\ue000 and lone \udc80", "private\\ue000 and lone \\udc80"),
    ("plain text, accents é and 中文", "plain text, accents é and 中文"),
]


@pytest.mark.parametrize(("raw", "shown"), HOSTILE)
def test_row_text_is_escaped(raw: str, shown: str) -> None:
    """Control, format (bidi, zero-width), separator, private-use and surrogate
    characters are escaped; printable text, accents and CJK are kept."""
    assert clean(raw) == shown
    assert "\x1b" not in block(raw)


def test_long_text_is_cut_to_its_width() -> None:
    """A cell is cut to its width with an ellipsis, counting wide characters twice; a
    10 MB value is not walked whole; a block keeps its start and says how long it was."""
    assert clean("x" * 100, 10) == "x" * 9 + "…"
    assert clean("x" * 10, 10) == "x" * 10
    assert display_width(clean("中" * 50, 10)) <= 10
    assert clean("\x1b" * 100, 10) == "\\e\\e\\e\\e…"
    assert len(clean("y" * 10_000_000, 80)) == 80
    shown = block("z" * 50_000, max_chars=100)
    assert shown.endswith("(50000 characters in all; --json has the whole text)")
    assert clean(None) == "-"


def test_table_aligns_by_display_width() -> None:
    """Columns line up by display width, right-aligned where asked."""
    text = table(["id", "name"], [["1", "中文"], ["22", "ab"]], right=[0])
    assert text.splitlines() == ["id  name", " 1  中文", "22  ab"]


def test_payload_as_data_and_text() -> None:
    """Payloads become JSON-ready data with a type key for non-JSON values, and
    Python-like text broken over lines when long."""
    handler = encode.method_call(
        RecordRef("User", 1),
        "activate!",
        ["iPhone", Decimal("1.5"), date(2024, 1, 2), Symbol("s"), b"\xff"],
        {"at": datetime(2024, 1, 2, tzinfo=UTC)},
    )
    payload = decode_handler(handler).payload
    data = to_plain(payload)
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "type": "MethodCall",
        "receiver": {"type": "RecordRef", "class_name": "User", "primary_key": 1},
        "method_name": "activate!",
        "args": [
            "iPhone",
            {"type": "Decimal", "value": "1.5"},
            {"type": "date", "iso": "2024-01-02"},
            {"type": "Symbol", "name": "s"},
            {"type": "bytes", "base64": "/w=="},
        ],
        "kwargs": {"at": {"type": "datetime", "iso": "2024-01-02T00:00:00+00:00"}},
        "mailer": False,
    }
    text = pretty(payload)
    assert text.splitlines()[0] == "MethodCall("
    assert "    receiver=RecordRef(class_name='User', primary_key=1)," in text
    assert to_plain({Symbol("k"): 1}) == {
        "type": "dict",
        "items": [[{"type": "Symbol", "name": "k"}, 1]],
    }
    assert to_plain(KeywordArgs(a=1))["type"] == "KeywordArgs"  # type: ignore[index]
    assert to_plain(timedelta(minutes=1)) == {"type": "timedelta", "seconds": 60.0}
    assert pretty((1,)) == "(1,)"
    zone = timezone(timedelta(hours=2))
    assert to_plain(datetime(2024, 1, 1, tzinfo=zone))["iso"].endswith("+02:00")  # type: ignore[index]


def _handlers() -> list[bytes]:
    """Real handlers: the Ruby-written fixtures and every shape djmw writes."""
    found = [p.read_bytes() for p in sorted((FIXTURES / "handlers").glob("*.yml"))]
    found += [p.read_bytes() for p in sorted((FIXTURES / "ruby").glob("*.yml"))]
    written = [
        encode.struct_job("Reports::Nightly", {"date": "x"}),
        encode.active_job("ReportJob", [1]),
        encode.method_call(RubyModule("User"), "cleanup", [30]),
        encode.method_call(RecordRef("User", 1), "activate!", []),
        encode.method_call(RubyModule("UserMailer"), "welcome", [], mailer=True),
        encode.method_call(RubyObject("String", {"value": "x"}, kind="scalar"), "upcase"),
        "--- !ruby/struct:Broken\n  : : bad\n",
        "just text",
    ]
    return found + [h.encode() for h in written]


def test_name_prefilter_never_drops_a_match() -> None:
    """For every real handler and glob, a row whose decoded name matches the glob holds
    the text the SQL prefilter looks for (so the filter loses no row)."""
    handlers = _handlers()
    names = {decode(handler).name for handler in handlers}
    patterns = {
        "*",
        "*Job",
        "User*",
        "User.*",
        "User#*",
        "*#*",
        "*.*",
        "Re*",
        "*ing*",
        "<unknown job>",
    }
    for name in names:
        patterns |= {name, name[:3] + "*", "*" + name[-3:], name.replace(name[1:2], "?", 1)}
    checked = 0
    for handler in handlers:
        name = decode(handler).name
        text = handler.decode("utf-8", "replace")
        for pattern in patterns:
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            like = name_prefilter(pattern)
            if like is not None:
                literal = like[1:-1].replace("!_", "_").replace("!%", "%").replace("!!", "!")
                assert literal in text, (pattern, name)
                checked += 1
    assert checked > 50


def test_enqueue_refuses_what_ruby_cannot_run() -> None:
    """build_handler checks names and argument shapes and names the problem."""
    assert decode_handler(build_handler("NewsletterJob", {"text": "hi"})).name == "NewsletterJob"
    with pytest.raises(ConfigurationError, match="record's id"):
        build_handler("User#activate!", [], kind="method")
    with pytest.raises(ConfigurationError, match=r"Receiver\.method"):
        build_handler("cleanup", [], kind="method")
    with pytest.raises(ConfigurationError, match="JSON array"):
        build_handler("ReportJob", {"a": 1}, kind="activejob")
    with pytest.raises(ConfigurationError, match="not a Ruby"):
        build_handler("lower_case", {})


def test_bad_api_arguments() -> None:
    """The API refuses a non-SQL backend, a bad state, ids or limit, naming the problem."""
    with pytest.raises(ConfigurationError, match="needs a SQL database backend"):
        Jobs.over(InMemoryBackend())
    with pytest.raises(ConfigurationError, match="state must be one of"):
        JobFilter(state="done")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ids must be job ids"):
        JobFilter(ids=["x"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="older_than"):
        JobFilter(older_than="later")
    with pytest.raises(ConfigurationError, match="max_run_time must be a positive number"):
        Jobs("sqlite:///:memory:", max_run_time=0)
