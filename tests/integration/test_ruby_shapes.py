"""Every job shape Ruby's delayed_job writes, run by a djmw Worker on MariaDB and SQLite.

Ruby creates ``delayed_jobs`` with delayed_job_active_record's own migration and enqueues
the ``all_shapes`` scenario (tests/ruby/enqueue.rb) the way Rails apps do. A djmw Worker
with a perform function under every job name then runs them with ``work_off``; each
perform function compares the decoded payload with what Ruby itself loads back from the
same row (the ``expected`` of each enqueue line), value by value and type by type.

The shapes scheduled an hour ahead are checked where they wait, then run by a worker
whose clock is an hour ahead; the shapes meant to fail are checked in their rows.
Skipped without Ruby, except under CI, where the suite must not go weaker.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import rubyenv
from ruby_values import ruby_value, same, utc

from djmw import Handlers, Job, Worker
from djmw.backends import open_backend
from djmw.cli import main
from djmw.ruby.payload import ActiveJobCall, MethodCall, ObjectJob, StructJob, decode_handler
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

pytestmark = [pytest.mark.ruby, pytest.mark.usefixtures("ruby_activejob")]

#: shape -> the job name its perform function is registered under.
SHAPE_NAMES = {
    "struct_newsletter": "NewsletterJob",
    "struct_namespaced": "Reports::Nightly",
    "struct_keyword_init": "KeywordJob",
    "object_plain": "PlainJob",
    "values": "ValuesJob",
    "pm_class_receiver": "User.cleanup",
    "pm_module_receiver": "Maintenance.vacuum",
    "pm_object_receiver": "Greeter#greet",
    "pm_record_receiver": "User#activate!",
    "pm_handle_asynchronously": "User#send_digest_without_delay",
    "pm_delay_options": "Maintenance.vacuum",
    "pm_mailer": "UserMailer.welcome",
    "pm_mailer_parameterized": "UserMailer.welcome",
    "aj_all_markers": "ReportJob",
    "aj_kwargs": "ReportJob",
    "aj_scheduled": "ReportJob",
    "aj_custom_serializer": "ReportJob",
    "aj_mailer_deliver_later": "ActionMailer::MailDeliveryJob",
    "aj_mailer_deliver_later_legacy": "ActionMailer::DeliveryJob",
    "aj_mailer_parameterized": "ActionMailer::MailDeliveryJob",
    "hook_job": "HookJob",
    "hook_job_failing": "HookJob",
    "fail_job": "FailJob",
    "pm_required_keywords": "Maintenance.reindex",
    "aj_fail": "FailingReportJob",
    # Only on a Rails whose ActiveJob serializes Range, Set and Regexp (7.1+).
    "aj_range": "ReportJob",
    "aj_set": "ReportJob",
    "aj_regexp": "ReportJob",
}
OPTIONAL = {"aj_range", "aj_set", "aj_regexp"}
#: Enqueued to run an hour from now: shape -> (queue, priority).
SCHEDULED = {"pm_delay_options": ("maintenance", 5), "aj_scheduled": ("late", 7)}
#: Meant to fail: shape -> the first line of last_error after the one attempt.
FAILING = {
    "fail_job": "boom",
    "hook_job_failing": "hook boom",
    "aj_fail": "aj boom",
    "pm_required_keywords": "reindex() takes 0 positional arguments but 1 was given",
}


def utc_now() -> datetime:
    """Naive UTC now, as delayed_job stores times."""
    return datetime.now(UTC).replace(tzinfo=None)


# -- what each perform function checks ----------------------------------------------------------


def check_payload(shape: str, job: Job, expected: dict[str, Any]) -> None:
    """Assert that djmw's payload equals Ruby's own view of the row (``expected``)."""
    payload, ruby = job.payload, expected["payload"]
    assert job.name == SHAPE_NAMES[shape]
    if "struct" in ruby:
        assert isinstance(payload, StructJob)
        assert payload.class_name == ruby["struct"]
        members = {key: ruby_value(value) for key, value in ruby["members"].items()}
        assert list(payload.fields) == list(members)  # declaration order
        assert same(dict(payload.fields), members), (dict(payload.fields), members)
        return
    ivars = ruby["ivars"]
    if ruby["object"].startswith("Delayed::Performable"):
        assert isinstance(payload, MethodCall)
        assert payload.mailer == (ruby["object"] == "Delayed::PerformableMailer")
        assert payload.receiver == ruby_value(ivars["object"])
        assert payload.method_name == ivars["method_name"]["symbol"]
        keywords = [{Symbol(k): v for k, v in payload.kwargs.items()}] if payload.kwargs else []
        assert same([*payload.args, *keywords], ruby_value(ivars["args"]))
        return
    if "job_class" in expected:
        assert isinstance(payload, ActiveJobCall)
        job_data = ruby_value(ivars["job_data"])
        assert isinstance(job_data, dict)
        assert same(dict(payload.job_data), job_data)
        assert payload.job_class == expected["job_class"]
        assert payload.job_id == job_data["job_id"]
        assert payload.queue_name == expected["queue_name"] == job.queue
        assert payload.priority == expected["priority"]
        assert payload.executions == 0
        assert payload.locale == "en"
        if shape == "aj_custom_serializer":  # Ruby ran the app's MoneySerializer; djmw cannot
            assert payload.arguments == (
                RubyObject("MoneySerializer", {"cents": 1999, "currency": "EUR"}, "serialized"),
            )
        else:
            arguments = ruby_value(expected["arguments"], activejob=True)
            assert same(list(payload.arguments), arguments), (payload.arguments, arguments)
        return
    assert isinstance(payload, ObjectJob)
    assert payload.class_name == ruby["object"]
    assert same(dict(payload.fields), {k: ruby_value(v) for k, v in ivars.items()})


def spot_check(shape: str, job: Job) -> None:
    """Typed values spelled out for the shapes that carry them (beside the generic check)."""
    payload = job.payload
    if shape == "values":
        assert isinstance(payload, StructJob)
        v = payload.fields["values"]
        assert isinstance(v, dict)
        for key in ("true_string", "colon_string", "int_string", "null_string", "date_string"):
            assert type(v[key]) is str, key
        assert v[Symbol("sym")] == Symbol("plain")
        assert v[Symbol("sym_with_space")] == Symbol("with space")
        assert v["binary"] == b"\xff\x00bin"
        assert v["bignum"] == 2**70
        assert v["infinity"] == math.inf
        assert math.isnan(v["nan"])
        assert (type(v["bigdecimal"]), v["bigdecimal"]) == (Decimal, Decimal("3.14"))
        assert v["rational"] == Fraction(1, 3)
        assert v["complex"] == complex(1, 2)
        assert v["range"] == RubyRange(1, 3, exclusive=False)
        assert v["range_exclusive"] == RubyRange(1, 3, exclusive=True)
        assert v["regexp"] == RubyRegexp("ab+c", "i")
        assert v["set"] == frozenset({1, 2})
        assert v["time"] == datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
        assert v["time"].tzinfo is UTC
        assert v["time_offset"] == datetime(2024, 1, 1, 18, 4, 5, tzinfo=UTC)
        assert v["time_with_zone"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert (type(v["date"]), v["date"]) == (date, date(2024, 1, 2))
        assert v["datetime"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert v["duration"] == timedelta(hours=1)
        assert v["class"] == RubyModule("User")
        assert v["module"] == RubyModule("Maintenance")
        assert v["struct"] == RubyObject("Money", {"cents": 100, "currency": "EUR"}, "struct")
        assert v["mixed_keys"] == {1: "one", Symbol("k"): "v", "k": "s", None: "nil"}
        assert v["aliased_a"] == v["aliased_b"] == [1, 2]
    elif shape == "pm_record_receiver":
        assert isinstance(payload, MethodCall)
        assert payload.receiver == RecordRef("User", 1)
        assert payload.args == ("iPhone",)
        assert payload.kwargs == {"force": True, "at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)}
    elif shape == "pm_class_receiver":
        assert isinstance(payload, MethodCall)
        assert (payload.receiver, payload.method_name, payload.args) == (
            RubyModule("User"),
            "cleanup",
            (30,),
        )
    elif shape == "aj_all_markers":
        assert isinstance(payload, ActiveJobCall)
        args = payload.arguments
        assert args[0] == GlobalId("gid://djlab/User/1", "djlab", "User", "1")
        assert args[1] == Symbol("sym")
        assert args[2:8] == ("str", 1, 2.5, None, True, False)
        assert (type(args[8]), args[8]) == (Decimal, Decimal("1.5"))
        assert args[9] == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
        assert args[10] == datetime(2024, 1, 1, 18, 4, 5, tzinfo=UTC)
        assert args[11] == date(2024, 1, 2)
        assert args[13] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)  # TimeWithZone
        assert args[14] == timedelta(hours=1)
        assert args[15] == {"a": 1, Symbol("b"): 2}
        assert args[16] == {"x": 1}  # HashWithIndifferentAccess
        assert args[-4:] == (b"\xff\x00", 2**70, RubyModule("Maintenance"), RubyModule("User"))
    elif shape == "aj_kwargs":
        assert isinstance(payload, ActiveJobCall)
        assert payload.arguments == (1, KeywordArgs(kw1="v", kw2=Symbol("s")))
        assert isinstance(payload.arguments[-1], KeywordArgs)
    elif shape == "aj_mailer_parameterized":
        assert isinstance(payload, ActiveJobCall)
        assert payload.arguments[:3] == ("UserMailer", "welcome", "deliver_now")
        assert payload.arguments[3] == KeywordArgs(
            params={Symbol("note"): "params"},
            args=[GlobalId("gid://djlab/User/1", "djlab", "User", "1")],
        )


def reindex(*, name: str) -> None:
    """Maintenance.reindex(name:), which delayed_job 4.1 calls with a positional Hash."""


class ArgumentError(Exception):
    """Named like Ruby's, so that last_error and the log read the same."""


# -- the test -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unknown_jobs", "name_index"),
    [("fail", False), ("skip", False), ("skip", True)],
    ids=["all-jobs", "class-aware", "class-aware-name-index"],
)
def test_every_ruby_shape_runs_in_djmw(
    db_url: str, tmp_path: Path, unknown_jobs: str, name_index: bool
) -> None:
    """Each shape Ruby enqueues runs once, in the right perform function, with Ruby's values.

    With ``unknown_jobs="skip"`` (the default, class-aware) the reserve query keeps to
    handlers mentioning a registered name, so this also shows that every shape's handler
    text matches its name's marker; ``"fail"`` takes every row, as delayed_job does. With
    the name index (MariaDB), ActiveRecord inserts and updates rows of a table that has
    djmw's virtual key column, and every shape is claimed through the key or its fallback.
    """
    if name_index and not db_url.startswith("mysql"):
        pytest.skip("the job-name index is MariaDB's")
    database = rubyenv.ruby_database(db_url)
    rubyenv.create_schema(database)
    if name_index:
        assert main(["schema", "--database", db_url, "--name-index"]) == 0
    enqueued = rubyenv.enqueue("all_shapes", database)
    by_id = {line["id"]: line for line in enqueued}
    shapes = [line["shape"] for line in enqueued]
    assert set(shapes) <= set(SHAPE_NAMES), "classify the new shape in SHAPE_NAMES"
    assert set(SHAPE_NAMES) - OPTIONAL <= set(shapes)
    assert len(shapes) == len(set(shapes))

    runs: list[tuple[str, str]] = []  # (shape, name of the perform function that ran it)
    problems: list[str] = []
    hooks: dict[str, list[str]] = {}

    def check(name: str, job: Job) -> str:
        shape: str = by_id[job.id]["shape"]
        runs.append((shape, name))
        try:
            check_payload(shape, job, by_id[job.id]["expected"])
            spot_check(shape, job)
        except AssertionError as exc:
            problems.append(f"{shape} ({name}): {exc}")
            raise
        return shape

    def perform_for(name: str) -> Callable[[Job], None]:
        def perform(job: Job) -> None:
            shape = check(name, job)
            if shape == "fail_job":
                raise ArgumentError("boom")
            if shape == "aj_fail":
                raise ArgumentError("aj boom")
            if shape == "pm_required_keywords":
                assert isinstance(job.payload, MethodCall)
                assert job.payload.kwargs == {"name": "users"}
                # delayed_job 4.1 passes the keywords as a trailing positional Hash.
                method: Callable[..., None] = reindex
                method(*job.payload.args, dict(job.payload.kwargs))

        return perform

    class HookJob:
        """delayed_job's payload hooks, recorded in the order djmw calls them."""

        def _note(self, job: Job, hook: str) -> None:
            hooks.setdefault(by_id[job.id]["shape"], []).append(hook)

        def before(self, job: Job) -> None:
            self._note(job, "before")

        def perform(self, job: Job) -> None:
            self._note(job, "perform")
            check("HookJob", job)
            assert isinstance(job.payload, StructJob)
            if job.payload.fields["fail"]:
                raise ArgumentError("hook boom")

        def success(self, job: Job) -> None:
            self._note(job, "success")

        def error(self, job: Job, exc: BaseException) -> None:
            self._note(job, "error")

        def after(self, job: Job) -> None:
            self._note(job, "after")

    handlers = Handlers()
    for name in sorted(set(SHAPE_NAMES.values()) - {"HookJob"}):
        handlers.add(name, perform_for(name))
    handlers.add("HookJob", HookJob())

    started = utc_now()
    worker = Worker(
        database=db_url, handlers=handlers, name="djmw shapes", unknown_jobs=unknown_jobs
    )
    try:
        succeeded, failed = worker.work_off(100)
    finally:
        worker.close()

    unexpected = [p for p in problems if not any(p.startswith(f"{s} ") for s in FAILING)]
    assert not unexpected, "\n".join(unexpected)
    assert not problems, "\n".join(problems)
    ready = [s for s in shapes if s not in SCHEDULED]
    assert (succeeded, failed) == (len(ready) - len(FAILING), len(FAILING))
    assert Counter(runs) == Counter((shape, SHAPE_NAMES[shape]) for shape in ready)
    assert hooks == {
        "hook_job": ["before", "perform", "success", "after"],
        "hook_job_failing": ["before", "perform", "error", "after"],
    }

    backend = open_backend(db_url)
    try:
        rows = {by_id[row.id]["shape"]: row for row in backend.jobs()}
        assert set(rows) == set(SCHEDULED) | set(FAILING)
        for shape, first_line in FAILING.items():
            row = rows[shape]
            assert row.attempts == 1, shape
            assert row.last_error is not None
            assert row.last_error.splitlines()[0] == first_line, shape
            assert row.failed_at is None
            assert (row.locked_at, row.locked_by) == (None, None)
            assert row.run_at is not None
            assert started + timedelta(seconds=4) <= row.run_at <= utc_now() + timedelta(seconds=7)
        for shape, (queue, priority) in SCHEDULED.items():
            row = rows[shape]
            assert (row.queue, row.priority, row.attempts) == (queue, priority, 0), shape
            assert row.run_at is not None
            created = utc(by_id[row.id]["row"]["created_at"]).replace(tzinfo=None)
            assert abs(row.run_at - (created + timedelta(hours=1))) < timedelta(seconds=2)
            assert abs(row.run_at - (utc_now() + timedelta(hours=1))) < timedelta(seconds=60)
            assert row.locked_by is None
        aj = decode_handler(rows["aj_scheduled"].handler).payload
        assert isinstance(aj, ActiveJobCall)
        assert (aj.queue_name, aj.priority, aj.arguments) == ("late", 7, ("scheduled", 2))

        # An hour later the scheduled jobs run too, in their own perform functions.
        later = Worker(
            database=db_url,
            handlers=handlers,
            name="djmw shapes later",
            unknown_jobs=unknown_jobs,
            queues=[queue for queue, _ in SCHEDULED.values()],
            clock=lambda: utc_now() + timedelta(hours=1, minutes=1),
        )
        try:
            assert later.work_off(10) == (len(SCHEDULED), 0)
        finally:
            later.close()
        assert not problems, "\n".join(problems)
        assert Counter(runs) == Counter((shape, SHAPE_NAMES[shape]) for shape in shapes)
        assert {by_id[row.id]["shape"] for row in backend.jobs()} == set(FAILING)
    finally:
        backend.close()
