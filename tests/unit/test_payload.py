"""decode_handler: every handler shape Rails apps write, its name, and its typed payload."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ruby_values import ruby_value, same

from djmw.errors import PayloadDecodeError
from djmw.ruby.payload import (
    ActiveJobCall,
    Decoded,
    DecodeLimits,
    MethodCall,
    ObjectJob,
    StructJob,
    decode_handler,
    display_name,
)
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

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HANDLERS = FIXTURES / "handlers"
RUBY = FIXTURES / "ruby"


def decode_file(path: Path) -> Decoded:
    """Decode a fixture file's bytes."""
    return decode_handler(path.read_bytes())


# -- hand-typed fixtures: the samples of delayed_job_semantics.md section 6 --------------------


def test_struct_job() -> None:
    """``!ruby/struct:NewsletterJob`` is a StructJob named after its class, members in order."""
    decoded = decode_file(HANDLERS / "struct_newsletter.yml")
    assert decoded.name == "NewsletterJob"
    assert decoded.payload == StructJob(
        class_name="NewsletterJob", fields={"text": "lorem ipsum", "emails": ["a@b.c", "d@e.f"]}
    )
    assert list(decoded.payload.fields) == ["text", "emails"]


def test_namespaced_struct_job() -> None:
    """A namespaced Struct keeps its full constant path as the name."""
    decoded = decode_file(HANDLERS / "struct_namespaced.yml")
    assert decoded.name == "Reports::Nightly"
    assert decoded.payload == StructJob(
        class_name="Reports::Nightly", fields={"date": date(2024, 1, 2), "format": Symbol("pdf")}
    )


def test_plain_object_job() -> None:
    """``!ruby/object:PlainJob`` is an ObjectJob whose fields are its ivars, Symbols kept."""
    decoded = decode_file(HANDLERS / "object_plain.yml")
    assert decoded.name == "PlainJob"
    assert decoded.payload == ObjectJob(
        class_name="PlainJob",
        fields={
            "a": 1,
            "b": "two",
            "sym": Symbol("hello"),
            "h": {"k": 1, Symbol("sym"): Symbol("v")},
        },
    )


def test_performable_method_on_a_class() -> None:
    """``User.delay.cleanup(30)``: a MethodCall on RubyModule('User'), named User.cleanup."""
    decoded = decode_file(HANDLERS / "pm_class_receiver.yml")
    assert decoded.name == "User.cleanup"
    assert decoded.payload == MethodCall(
        receiver=RubyModule("User"), method_name="cleanup", args=(30,), kwargs={}, mailer=False
    )


def test_performable_method_on_a_record_with_keywords() -> None:
    """A record receiver is a RecordRef; a trailing Symbol-keyed Hash becomes kwargs."""
    decoded = decode_file(HANDLERS / "pm_record_concise.yml")
    assert decoded.name == "User#activate!"
    assert decoded.payload == MethodCall(
        receiver=RecordRef("User", 1),
        method_name="activate!",
        args=("iPhone",),
        kwargs={"force": True, "at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)},
    )


@pytest.mark.parametrize(
    ("fixture", "record"),
    [
        ("pm_record_activerecord_tag.yml", RecordRef("User", 42)),
        ("pm_record_raw_attributes.yml", RecordRef("User", 42)),
        ("pm_record_rails41.yml", RecordRef("User", 7)),
        ("pm_record_concise.yml", RecordRef("User", 1)),
        ("pm_record_mongoid.yml", RecordRef("Account", "5f1d7e5a9c1e4b0001a1b2c3")),
    ],
)
def test_record_receivers_of_every_generation(fixture: str, record: RecordRef) -> None:
    """All Active Record YAML formats (and Mongoid's) give the class and primary key."""
    payload = decode_file(HANDLERS / fixture).payload
    assert isinstance(payload, MethodCall)
    assert payload.receiver == record


def test_performable_mailer() -> None:
    """``UserMailer.delay.welcome(user)`` is a mailer MethodCall named UserMailer.welcome."""
    decoded = decode_file(HANDLERS / "pm_mailer.yml")
    assert decoded.name == "UserMailer.welcome"
    assert decoded.payload == MethodCall(
        receiver=RubyModule("UserMailer"),
        method_name="welcome",
        args=(RecordRef("User", 1),),
        mailer=True,
    )


def test_syck_era_unquoted_class_and_trailing_spaces() -> None:
    """``!ruby/class User`` unquoted and spaces after tags and keys still decode."""
    decoded = decode_file(HANDLERS / "pm_syck_unquoted_class.yml")
    assert decoded.name == "User.cleanup"
    assert isinstance(decoded.payload, MethodCall)
    assert decoded.payload.args == (30,)


@pytest.mark.parametrize("fixture", ["legacy_dj20_struct.yml", "legacy_dj21_struct.yml"])
def test_legacy_delayed_job_2_handlers_fail(fixture: str) -> None:
    """DJ 2.x ``!ruby/struct:Delayed::PerformableMethod`` handlers fail, as in delayed_job 3+."""
    with pytest.raises(PayloadDecodeError, match=r"^Job failed to load: legacy delayed_job 2\.x"):
        decode_file(HANDLERS / fixture)


def test_active_job_rails_6_1() -> None:
    """The JobWrapper sample decodes every marker of ActiveJob::Arguments."""
    decoded = decode_file(HANDLERS / "aj_rails61.yml")
    assert decoded.name == "ReportJob"
    payload = decoded.payload
    assert isinstance(payload, ActiveJobCall)
    assert payload.job_class == "ReportJob"
    assert payload.job_id == "b5578777-c3f4-4428-ae10-26cc3926d308"
    assert payload.queue_name == "reports"
    assert payload.priority is None
    assert payload.executions == 0
    assert payload.locale == "en"
    assert payload.timezone == "UTC"
    assert payload.enqueued_at == datetime(2026, 11, 27, 23, 58, 3, tzinfo=UTC)
    assert payload.arguments == (
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
        datetime(2026, 11, 27, 23, 58, 3, tzinfo=UTC),
        {"a": 1, Symbol("b"): 2},
        {"x": 1},
        [1, [2]],
        KeywordArgs(kw1="v", kw2=Symbol("s")),
    )
    assert type(payload.arguments[-1]) is KeywordArgs
    assert type(payload.arguments[12]) is dict
    assert payload.job_data["provider_job_id"] is None


def test_active_job_rails_4_2_has_no_markers() -> None:
    """Rails 4.2 data (four keys, no hash markers) decodes with defaults for the rest."""
    decoded = decode_file(HANDLERS / "aj_rails42.yml")
    assert decoded.name == "Reports::Nightly"
    assert decoded.payload == ActiveJobCall(
        job_class="Reports::Nightly",
        job_id="0b7a2a1e-4f2c-4a8e-9d36-0c3e2b1f5a6d",
        queue_name="default",
        arguments=(
            GlobalId("gid://shop/Admin::User/7", "shop", "Admin::User", "7"),
            {"opts": {"full": True}},
        ),
        job_data=decoded.payload.job_data,  # type: ignore[union-attr]
    )


def test_active_job_rails_7_1_and_dj_4_2_wrapper() -> None:
    """Serializers of later Rails and DJ 4.2's Delayed::ActiveJobAdapter::JobWrapper decode."""
    decoded = decode_file(HANDLERS / "aj_rails71.yml")
    payload = decoded.payload
    assert isinstance(payload, ActiveJobCall)
    assert decoded.name == "CleanupJob"
    assert payload.priority == 10
    assert payload.executions == 2
    assert payload.enqueued_at == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert payload.arguments == (
        timedelta(seconds=90),
        Decimal("12.50"),
        RubyModule("Maintenance"),
        RubyRange(1, 10, exclusive=True),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        RubyObject("MoneySerializer", {"cents": 1999, "currency": "EUR"}, kind="serialized"),
    )


def test_values_of_section_6_7() -> None:
    """The 'other Ruby YAML' sample maps to the documented Python types."""
    payload = decode_file(HANDLERS / "ruby_values.yml").payload
    assert isinstance(payload, StructJob)
    values = payload.fields["values"]
    assert values == {
        Symbol("sym"): Symbol("foo"),
        Symbol("str_sym"): ":colon",
        Symbol("big"): Decimal("3.14"),
        Symbol("range"): RubyRange(1, 3, exclusive=False),
        Symbol("re"): RubyRegexp("ab+c", "i"),
        Symbol("bin"): b"\xff\x00",
        Symbol("t"): datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        Symbol("twz"): datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        Symbol("d"): date(2024, 1, 2),
        Symbol("dt"): datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        Symbol("hwia"): {"a": 1},
        Symbol("set"): frozenset({1}),
    }


# -- names and method calls --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("receiver", "name"),
    [
        (RubyModule("Maintenance"), "Maintenance.vacuum"),
        (RecordRef("User", 1), "User#vacuum"),
        (RubyObject("Greeter", {}), "Greeter#vacuum"),
        ("text", "String#vacuum"),
        (None, "NilClass#vacuum"),
        (
            RubyObject("ActionMailer::Parameterized::Mailer", {"mailer": RubyModule("M")}),
            "M.vacuum",
        ),
    ],
)
def test_display_name_of_method_calls(receiver: object, name: str) -> None:
    """Class/module receivers use ``.``, instances ``#`` with their Ruby class."""
    assert display_name(MethodCall(receiver=receiver, method_name="vacuum")) == name


def test_display_name_of_jobs() -> None:
    """Struct and object jobs are named by class, ActiveJob calls by job_class."""
    assert display_name(StructJob(class_name="A", fields={})) == "A"
    assert display_name(ObjectJob(class_name="B", fields={})) == "B"
    assert display_name(ActiveJobCall(job_class="C")) == "C"


def method_call_handler(args: str) -> str:
    """A PerformableMethod handler with the given YAML ``args`` block."""
    return (
        "--- !ruby/object:Delayed::PerformableMethod\n"
        "object: !ruby/module 'Maintenance'\n"
        f"method_name: vacuum\nargs:{args}"
    )


@pytest.mark.parametrize(
    ("args", "positional", "keywords"),
    [
        ("\n- 1\n- :a: 1\n  :b: 2\n", (1,), {"a": 1, "b": 2}),
        ("\n- :a: 1\n  b: 2\n", ({Symbol("a"): 1, "b": 2},), {}),
        ("\n- {}\n", ({},), {}),
        ("\n- :a: 1\n- 2\n", ({Symbol("a"): 1}, 2), {}),
        (" []\n", (), {}),
        ("\n", (), {}),
    ],
)
def test_trailing_symbol_hash_becomes_kwargs(
    args: str, positional: tuple[object, ...], keywords: dict[str, object]
) -> None:
    """Only a last, non-empty Hash whose keys are all Symbols is taken as keyword arguments."""
    payload = decode_handler(method_call_handler(args)).payload
    assert isinstance(payload, MethodCall)
    assert payload.method_name == "vacuum"
    assert payload.args == positional
    assert payload.kwargs == keywords


PM = "--- !ruby/object:Delayed::PerformableMethod\n"
AJ = "--- !ruby/object:Delayed::ActiveJobAdapter::JobWrapper\njob_data: "
DATE = "ActiveJob::Serializers::DateSerializer"


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (PM + "object: 1\nargs: []\n", "method_name"),
        (PM + "method_name: :x\nargs: 1\n", "args"),
        ("--- !ruby/object:Delayed::ActiveJobAdapter::JobWrapper {}\n", "job_data"),
        (AJ + "{a: 1}\n", "job_class"),
        (AJ + "{job_class: A, arguments: 1}\n", "arguments"),
        (AJ + "{job_class: A, enqueued_at: soon}\n", "ISO 8601"),
        (AJ + "{job_class: A, arguments: [{_aj_globalid: x}]}\n", "GlobalID"),
        (AJ + f"{{job_class: A, arguments: [{{_aj_serialized: {DATE}, value: x}}]}}\n", DATE),
        ("--- !ruby/object:User\nconcise_attributes: []\n", "Active Record object"),
        ("--- {a: 1}\n", "dict"),
        ("--- !ruby/exception:Boom {}\n", "RubyObject"),
    ],
)
def test_malformed_jobs_fail_with_a_reason(handler: str, reason: str) -> None:
    """A known wrapper with broken content fails saying which part is wrong."""
    with pytest.raises(PayloadDecodeError, match=r"^Job failed to load: ") as info:
        decode_handler(handler)
    assert reason in str(info.value)


def test_nil_receiver_is_kept() -> None:
    """A receiver that loads as nil stays None (delayed_job then silently succeeds)."""
    handler = "--- !ruby/object:Delayed::PerformableMethod\nobject:\nmethod_name: :x\nargs: []\n"
    payload = decode_handler(handler).payload
    assert isinstance(payload, MethodCall)
    assert payload.receiver is None


def test_accepts_str_bytes_and_bytearray() -> None:
    """The handler may come as text or as raw bytes from the driver."""
    text = (HANDLERS / "struct_newsletter.yml").read_text()
    assert (
        decode_handler(text)
        == decode_handler(text.encode())
        == decode_handler(
            bytearray(text.encode())  # type: ignore[arg-type]
        )
    )


def test_default_limits() -> None:
    """The documented defaults: 1 MiB, depth 100, 100k nodes, 1000 aliases."""
    limits = DecodeLimits()
    assert (limits.max_bytes, limits.max_depth, limits.max_nodes, limits.max_aliases) == (
        1_048_576,
        100,
        100_000,
        1_000,
    )


# -- real handlers written by Ruby (tests/fixtures/ruby, with Ruby's own view in expected.json) --


def ruby_shapes() -> list[str]:
    """Shapes with a Ruby-written handler and an entry in expected.json."""
    if not (RUBY / "expected.json").exists():
        return []
    expected = json.loads((RUBY / "expected.json").read_text())
    return sorted(path.stem for path in RUBY.glob("*.yml") if path.stem in expected)


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    """tests/fixtures/ruby/expected.json: each payload as Ruby loads it back."""
    data: dict[str, Any] = json.loads((RUBY / "expected.json").read_text())
    return data


def test_every_ruby_handler_decodes() -> None:
    """Every handler Ruby's delayed_job wrote decodes without error."""
    paths = sorted(RUBY.glob("*.yml"))
    if not paths:
        pytest.skip("no Ruby-generated fixtures (run tests/ruby/dump_fixtures.rb)")
    for path in paths:
        assert isinstance(decode_file(path), Decoded), path.name


@pytest.mark.parametrize("shape", ruby_shapes())
def test_ruby_handlers_match_what_ruby_loads(shape: str, expected: dict[str, Any]) -> None:
    """The payload equals Ruby's own view of the same handler (Psych.load_dj + ActiveJob)."""
    decoded = decode_file(RUBY / f"{shape}.yml")
    ruby = expected[shape]
    payload = ruby["payload"]
    if "struct" in payload:
        assert isinstance(decoded.payload, StructJob)
        assert decoded.name == decoded.payload.class_name == payload["struct"]
        members = {k: ruby_value(v) for k, v in payload["members"].items()}
        assert same(dict(decoded.payload.fields), members)
        return
    ivars = payload["ivars"]
    if payload["object"].startswith("Delayed::Performable"):
        call = decoded.payload
        assert isinstance(call, MethodCall)
        assert call.receiver == ruby_value(ivars["object"])
        assert call.method_name == ivars["method_name"]["symbol"]
        assert call.mailer == (payload["object"] == "Delayed::PerformableMailer")
        keywords = [{Symbol(k): v for k, v in call.kwargs.items()}] if call.kwargs else []
        assert same([*call.args, *keywords], ruby_value(ivars["args"]))
        return
    if "job_class" in ruby:
        job = decoded.payload
        assert isinstance(job, ActiveJobCall)
        assert decoded.name == job.job_class == ruby["job_class"]
        assert job.queue_name == ruby["queue_name"]
        assert job.priority == ruby["priority"]
        assert same(job.job_data, ruby_value(ivars["job_data"]))
        if shape != "aj_custom_serializer":  # Ruby ran MoneySerializer; djmw cannot
            assert same(list(job.arguments), ruby_value(ruby["arguments"], activejob=True))
        return
    assert decoded.payload == ObjectJob(
        class_name=payload["object"], fields={k: ruby_value(v) for k, v in ivars.items()}
    )


def test_ruby_values_fixture_key_values() -> None:
    """Spot checks on the Ruby-written values handler: look-alike strings, Symbols, times."""
    if not (RUBY / "values.yml").exists():
        pytest.skip("no Ruby-generated fixtures")
    payload = decode_file(RUBY / "values.yml").payload
    assert isinstance(payload, StructJob)
    values = payload.fields["values"]
    assert isinstance(values, dict)
    assert values["true_string"] == "true"
    assert values["colon_string"] == ":x"
    assert values["comma_int_string"] == "1,000"
    assert values[Symbol("sym_with_space")] == Symbol("with space")
    assert values[Symbol("sym_colon")] == Symbol(":x")
    assert values["binary"] == b"\xff\x00bin"
    assert values["time_offset"] == datetime(2024, 1, 1, 18, 4, 5, tzinfo=UTC)
    assert values["time_with_zone"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert values["mixed_keys"] == {1: "one", Symbol("k"): "v", "k": "s", None: "nil"}
    assert values["aliased_b"] == [1, 2]


def test_ruby_activejob_fixture_key_values() -> None:
    """Spot checks on Ruby-written ActiveJob handlers: kwargs, mailer jobs, custom serializer."""
    if not (RUBY / "aj_kwargs.yml").exists():
        pytest.skip("no Ruby-generated fixtures")
    kwargs = decode_file(RUBY / "aj_kwargs.yml").payload
    assert isinstance(kwargs, ActiveJobCall)
    assert kwargs.arguments == (1, KeywordArgs(kw1="v", kw2=Symbol("s")))
    mail = decode_file(RUBY / "aj_mailer_parameterized.yml").payload
    assert isinstance(mail, ActiveJobCall)
    assert mail.job_class == "ActionMailer::MailDeliveryJob"
    assert mail.arguments[-1] == KeywordArgs(
        params={Symbol("note"): "params"},
        args=[GlobalId("gid://djlab/User/1", "djlab", "User", "1")],
    )
    custom = decode_file(RUBY / "aj_custom_serializer.yml").payload
    assert isinstance(custom, ActiveJobCall)
    assert custom.arguments == (
        RubyObject("MoneySerializer", {"cents": 1999, "currency": "EUR"}, kind="serialized"),
    )
    scheduled = decode_file(RUBY / "aj_scheduled.yml").payload
    assert isinstance(scheduled, ActiveJobCall)
    assert (scheduled.queue_name, scheduled.priority) == ("late", 7)


def test_ruby_method_call_fixture_names() -> None:
    """Names of Ruby-written PerformableMethod/Mailer handlers, as perform functions see them."""
    if not (RUBY / "pm_record_receiver.yml").exists():
        pytest.skip("no Ruby-generated fixtures")
    names = {
        shape: decode_file(RUBY / f"{shape}.yml").name
        for shape in (
            "pm_class_receiver",
            "pm_module_receiver",
            "pm_object_receiver",
            "pm_record_receiver",
            "pm_handle_asynchronously",
            "pm_mailer",
            "pm_mailer_parameterized",
        )
    }
    assert names == {
        "pm_class_receiver": "User.cleanup",
        "pm_module_receiver": "Maintenance.vacuum",
        "pm_object_receiver": "Greeter#greet",
        "pm_record_receiver": "User#activate!",
        "pm_handle_asynchronously": "User#send_digest_without_delay",
        "pm_mailer": "UserMailer.welcome",
        "pm_mailer_parameterized": "UserMailer.welcome",
    }
