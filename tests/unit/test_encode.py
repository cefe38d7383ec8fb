"""djmw.ruby.encode: handler YAML in Psych's layout that decodes back and that Ruby loads."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import rubyenv

from djmw.ruby.encode import active_job, dump_value, method_call, struct_job
from djmw.ruby.payload import ActiveJobCall, MethodCall, StructJob, decode_handler
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

TOKYO = timezone(timedelta(hours=9))


def roundtrip(value: object) -> object:
    """Encode ``value`` as a Struct member and decode it again."""
    payload = decode_handler(struct_job("ValuesJob", {"v": value})).payload
    assert isinstance(payload, StructJob)
    return payload.fields["v"]


def test_struct_job_layout() -> None:
    """A Struct job is written exactly as Psych writes one."""
    text = struct_job("NewsletterJob", {"text": "lorem ipsum", "emails": ["a@b.c", "d@e.f"]})
    assert text == (
        "--- !ruby/struct:NewsletterJob\ntext: lorem ipsum\nemails:\n- a@b.c\n- d@e.f\n"
    )


def test_method_call_layout() -> None:
    """``User.delay.cleanup(30)`` is written as delayed_job 4.1 writes it."""
    assert method_call(RubyModule("User"), "cleanup", [30]) == (
        "--- !ruby/object:Delayed::PerformableMethod\n"
        "object: !ruby/class 'User'\n"
        "method_name: :cleanup\n"
        "args:\n"
        "- 30\n"
    )


def test_method_call_on_a_record_with_keywords() -> None:
    """A RecordRef receiver becomes Rails 6.1 concise attributes; kwargs a trailing Symbol Hash."""
    text = method_call(RecordRef("User", 1), "activate!", ["iPhone"], {"force": True})
    assert "object: !ruby/object:User\n  concise_attributes:\n" in text
    assert "    name: id\n    value_before_type_cast: 1\n" in text
    assert text.endswith("args:\n- iPhone\n- :force: true\n")
    decoded = decode_handler(text)
    assert decoded.name == "User#activate!"
    assert decoded.payload == MethodCall(
        receiver=RecordRef("User", 1),
        method_name="activate!",
        args=("iPhone",),
        kwargs={"force": True},
    )


def test_mailer_call() -> None:
    """``mailer=True`` writes a PerformableMailer."""
    text = method_call(RubyModule("UserMailer"), "welcome", [RecordRef("User", 1)], mailer=True)
    assert text.startswith("--- !ruby/object:Delayed::PerformableMailer\n")
    decoded = decode_handler(text)
    assert decoded.name == "UserMailer.welcome"
    assert isinstance(decoded.payload, MethodCall)
    assert decoded.payload.mailer


def test_active_job_layout_and_roundtrip() -> None:
    """ActiveJob data is written as Rails 6.1 does, markers included, and decodes back."""
    arguments = [
        GlobalId("gid://djlab/User/1", "djlab", "User", "1"),
        Symbol("sym"),
        "str",
        1,
        2.5,
        None,
        True,
        Decimal("1.5"),
        datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        date(2024, 1, 2),
        timedelta(hours=1),
        {"a": 1, Symbol("b"): 2},
        [1, [2]],
        b"\xff\x00",
        RubyModule("Maintenance"),
        RubyRange(1, 3, exclusive=True),
        KeywordArgs(kw1="v", kw2=Symbol("s")),
    ]
    enqueued = datetime(2026, 11, 27, 23, 58, 3, tzinfo=UTC)
    text = active_job(
        "ReportJob", arguments, queue_name="reports", job_id="b557", enqueued_at=enqueued
    )
    assert text.startswith(
        "--- !ruby/object:ActiveJob::QueueAdapters::DelayedJobAdapter::JobWrapper\n"
        "job_data:\n  job_class: ReportJob\n  job_id: b557\n  provider_job_id:\n"
        "  queue_name: reports\n  priority:\n  arguments:\n"
    )
    assert '  - _aj_globalid: "gid://djlab/User/1"\n' in text or (
        "  - _aj_globalid: gid://djlab/User/1\n" in text
    )
    assert "    _aj_symbol_keys:\n    - b\n" in text
    assert "    _aj_ruby2_keywords:\n    - kw1\n    - kw2\n" in text
    assert "  - !ruby/object:BigDecimal 18:0.15e1\n" in text
    assert 'value: "2024-01-02T03:04:05.123456000Z"' in text
    assert text.endswith(
        "  executions: 0\n  exception_executions: {}\n  locale: en\n  timezone: UTC\n"
        '  enqueued_at: "2026-11-27T23:58:03Z"\n'
    )
    decoded = decode_handler(text)
    assert decoded.name == "ReportJob"
    assert decoded.payload == ActiveJobCall(
        job_class="ReportJob",
        job_id="b557",
        arguments=(*arguments[:12], [1, [2]], *arguments[13:]),
        queue_name="reports",
        locale="en",
        timezone="UTC",
        enqueued_at=enqueued,
        job_data=decoded.payload.job_data,  # type: ignore[union-attr]
    )
    assert type(decoded.payload.arguments[-1]) is KeywordArgs  # type: ignore[union-attr]


def test_active_job_defaults() -> None:
    """Without job_id and enqueued_at, a UUID4 and the current time are written."""
    before = datetime.now(UTC).replace(microsecond=0)
    payload = decode_handler(active_job("CleanupJob", [])).payload
    assert isinstance(payload, ActiveJobCall)
    assert payload.job_id is not None
    assert len(payload.job_id) == 36
    assert payload.queue_name == "default"
    assert payload.enqueued_at is not None
    assert before <= payload.enqueued_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("true", True),
        ("yes", True),
        (":x", True),
        ("1", True),
        ("1.5", True),
        ("", True),
        ("~", True),
        ("null", True),
        ("2024-01-02", True),
        ("1,000", True),
        ("1_000", True),
        ("y", True),
        ("<<", True),
        (" padded ", True),
        ("# comment", True),
        ("a: b", True),
        ("-x", True),
        ("line1\nline2", True),
        ("lorem ipsum", False),
        ("a@b.c", False),
        ("gid://app/User/1", False),
        ("ActiveJob::Serializers::SymbolSerializer", False),
        ("don't", False),
    ],
)
def test_strings_are_quoted_when_psych_would_misread_them(text: str, quoted: bool) -> None:
    """Strings that would load as another type (or not parse) are quoted; others stay plain."""
    written = dump_value(text)
    assert written.startswith('--- "') == quoted
    assert roundtrip(text) == text


def test_escapes_in_double_quoted_strings() -> None:
    """Control characters, quotes, backslashes and YAML line breaks are escaped."""
    text = 'a"b\\c\td\x01e\x85f\u2028g\ufeffh\U0001f600'
    assert dump_value(text) == '--- "a\\"b\\\\c\\td\\x01e\\x85f\\u2028g\\ufeffh\U0001f600"\n'
    assert roundtrip(text) == text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (None, "---\n"),
        (True, "--- true\n"),
        (42, "--- 42\n"),
        (1e20, "--- 1.0e+20\n"),
        (float("-inf"), "--- -.inf\n"),
        (Symbol("activate!"), "--- :activate!\n"),
        (Symbol("with space"), "--- :with space\n"),
        (Symbol(""), '--- !ruby/symbol ""\n'),
        (Symbol('"q"'), '--- !ruby/symbol "\\"q\\""\n'),
        (b"\xff\x00", '--- !binary "/wA="\n'),
        (Decimal("3.14"), "--- !ruby/object:BigDecimal 18:0.314e1\n"),
        (Decimal("-100"), "--- !ruby/object:BigDecimal 18:-0.1e3\n"),
        (Decimal("0"), "--- !ruby/object:BigDecimal 9:0.0\n"),
        (Decimal("NaN"), "--- !ruby/object:BigDecimal 9:NaN\n"),
        (datetime(2024, 1, 2, 12, 4, 5, 6, tzinfo=TOKYO), "--- 2024-01-02 03:04:05.000006000 Z\n"),
        (date(2024, 1, 2), "--- 2024-01-02\n"),
        (RubyModule("Reports::Nightly"), "--- !ruby/class 'Reports::Nightly'\n"),
        (RubyRegexp("ab+c", "i"), '--- !ruby/regexp "/ab+c/i"\n'),
        ([], "--- []\n"),
        ({}, "--- {}\n"),
        (RubyObject("Empty", {}), "--- !ruby/object:Empty {}\n"),
    ],
)  # fmt: skip
def test_scalar_forms(value: object, written: str) -> None:
    """Each scalar type has Psych's written form (strings aside)."""
    assert dump_value(value) == written


def test_nested_layout() -> None:
    """Nested collections follow Psych's indentation: sequences flush under their key."""
    value = {"l": [1, [2, [3]], {"a": 1, "b": [4]}], "m": {Symbol("k"): {"x": None}}, None: 1}
    assert dump_value(value) == (
        "---\nl:\n- 1\n- - 2\n  - - 3\n- a: 1\n  b:\n  - 4\nm:\n  :k:\n    x:\n~: 1\n"
    )
    assert roundtrip(value) == value


def test_every_supported_type_roundtrips() -> None:
    """Each supported type decodes back to an equal value of the same type."""
    values: list[object] = [
        None,
        False,
        -(2**70),
        -0.0,
        "héllo ✓",
        b"",
        Symbol("sym"),
        Decimal("-1.50"),
        Decimal("1E+30"),
        datetime(1, 1, 2, tzinfo=UTC),
        date(9999, 12, 31),
        timedelta(days=-2, microseconds=5),
        Fraction(-1, 3),
        complex(1.5, -2),
        frozenset({1, "a", Symbol("b")}),
        RubyModule("User"),
        RecordRef("User", "uuid-1"),
        RubyRange(None, "z", exclusive=False),
        RubyRegexp("a/b", "mx"),
        RubyObject("Money", {"cents": 1, "currency": "EUR"}, kind="struct"),
        RubyObject("Boom", {"message": "x"}, kind="exception"),
        RubyObject("Config", {"nested": {"a": [1]}}),
        {"k" * 1100: 1},
    ]
    for value in values:
        back = roundtrip(value)
        assert back == value
        assert type(back) is type(value)


def test_tuples_become_lists() -> None:
    """A tuple is written as a sequence and comes back as a list."""
    assert roundtrip((1, (2,))) == [1, [2]]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: dump_value(object()), TypeError),
        (lambda: dump_value({(1, 2): 1}), TypeError),
        (lambda: dump_value(GlobalId("gid://a/B/1", "a", "B", "1")), TypeError),
        (lambda: dump_value(datetime(2024, 1, 2)), ValueError),
        (lambda: dump_value("\ud800"), ValueError),
        (lambda: dump_value(RubyModule("lower")), ValueError),
        (lambda: struct_job("Job", {"not a member": 1}), ValueError),
        (lambda: struct_job("job", {}), ValueError),
        (lambda: method_call("User", "x"), TypeError),  # type: ignore[arg-type]
        (lambda: method_call(RubyModule("User"), ""), ValueError),
        (lambda: active_job("Job", [RecordRef("User", 1)]), TypeError),
        (lambda: active_job("Job", [{1: "x"}]), TypeError),
        (lambda: active_job("Job", [{"_aj_globalid": "x"}]), ValueError),
        (lambda: active_job("Job", [{"a": 1, Symbol("a"): 2}]), ValueError),
        (lambda: active_job("Job", [frozenset()]), TypeError),
    ],
)
def test_unsupported_values_are_refused(call: object, error: type[Exception]) -> None:
    """Values Ruby (or ActiveJob) cannot take raise TypeError/ValueError naming the problem."""
    with pytest.raises(error):
        call()  # type: ignore[operator]


def test_type_error_names_the_type() -> None:
    """The TypeError says which type was refused."""
    with pytest.raises(TypeError, match="cannot write a set"):
        dump_value({1, 2})


# -- Ruby loads what djmw writes ---------------------------------------------------------------

RUBY_REDUMP = """
require ENV.fetch('DJ_ENV_RB')
EncodedValuesJob = Struct.new(:values) unless defined?(EncodedValuesJob)
class EncodedThing; end
User.find_or_create_by!(id: 1) { |user| user.name = 'Ann' }
out = ARGV.map do |path|
  payload = Psych.load_dj(File.read(path))
  if payload.respond_to?(:job_data)
    arguments = ActiveJob::Arguments.deserialize(payload.job_data['arguments'])
    payload.job_data['arguments'] = ActiveJob::Arguments.serialize(arguments)
  end
  payload.to_yaml
end
$stdout.write(JSON.generate(out))
"""


@pytest.mark.ruby
def test_ruby_delayed_job_loads_encoded_handlers(tmp_path: Path) -> None:
    """Ruby's delayed_job (Psych.load_dj) loads djmw's handlers to the same values.

    Ruby re-dumps what it loaded (ActiveJob arguments after its own deserialize and
    serialize); decoding Ruby's YAML must give what decoding djmw's gives. Skipped without
    Ruby, except under CI, where the suite must not go weaker.
    """
    rubyenv.require_ruby(activejob=True)
    database = rubyenv.sqlite_url(tmp_path / "dj.db")
    rubyenv.create_schema(database)
    values = {
        "str": "lorem ipsum",
        "look_alikes": ["true", ":x", "1", "", "~", "2024-01-02", "1,000", "a: b", "y"],
        "escapes": 'quote " backslash \\ tab \t newline \n bell \x07 nel \x85',
        # Not Symbol('"q"'): Ruby loads djmw's form fine but re-dumps it as :"q", which it
        # then reads back as :q (a Psych round-trip bug), so the comparison would fail.
        "symbols": [Symbol("sym"), Symbol("with space"), Symbol(""), Symbol("a:b")],
        "numbers": [42, -(2**70), 2.5, 1e20, float("inf"), Decimal("3.14"), Decimal("-0.001")],
        "fraction": Fraction(1, 3),
        "complex": complex(1, 2),
        "binary": b"\xff\x00bin",
        "time": datetime(2024, 1, 2, 12, 4, 5, 123456, tzinfo=timezone(timedelta(hours=9))),
        "date": date(2024, 1, 2),
        "duration": timedelta(hours=1),
        "range": RubyRange(1, 3, exclusive=True),
        "regexp": RubyRegexp("ab+c", "i"),
        "set": frozenset({1, 2}),
        "module": RubyModule("Maintenance"),
        "record": RecordRef("User", 1),
        "object": RubyObject("EncodedThing", {"cents": 100}),
        "hash": {Symbol("k"): "v", "k": "s", 1: "one", None: "nil"},
        "nested": [1, [2, [3]], {"a": [4]}],
    }
    handlers = [
        struct_job("EncodedValuesJob", {"values": values}),
        method_call(RecordRef("User", 1), "activate!", ["iPhone"], {"force": True}),
        method_call(RubyModule("UserMailer"), "welcome", [RecordRef("User", 1)], mailer=True),
        active_job(
            "ReportJob",
            [
                GlobalId("gid://djlab/User/1", "djlab", "User", "1"),
                Symbol("sym"),
                Decimal("1.5"),
                datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
                date(2024, 1, 2),
                timedelta(minutes=90),
                {"a": 1, Symbol("b"): 2},
                KeywordArgs(kw1="v", kw2=Symbol("s")),
                RubyModule("Maintenance"),
                "true",
                b"\xff\x00",
            ],
            job_id="00000000-0000-4000-8000-000000000001",
            enqueued_at=datetime(2024, 1, 1, 12, tzinfo=UTC),
        ),
    ]
    paths = []
    for index, handler in enumerate(handlers):
        path = tmp_path / f"handler{index}.yml"
        path.write_text(handler)
        paths.append(str(path))
    env = {
        **os.environ,
        "DJ_DATABASE": database,
        "DJ_ENV_RB": str(rubyenv.RUBY_DIR / "env.rb"),
        "TZ": "UTC",
    }
    proc = subprocess.run(
        [os.environ.get("RUBY") or "ruby", "-e", RUBY_REDUMP, *paths],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    redumped = json.loads(proc.stdout)
    for ours, theirs in zip(handlers, redumped, strict=True):
        mine = decode_handler(ours)
        ruby = decode_handler(theirs)
        assert ruby.name == mine.name
        if isinstance(mine.payload, ActiveJobCall):
            assert isinstance(ruby.payload, ActiveJobCall)
            assert ruby.payload.arguments == mine.payload.arguments
        else:
            assert repr(ruby.payload) == repr(mine.payload)
