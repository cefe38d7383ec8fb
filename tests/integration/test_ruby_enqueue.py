"""Jobs enqueued from Python with ``djmw.enqueue`` and ``djmw.ruby.encode``, run by Ruby's worker.

djmw writes the rows (struct jobs, a delayed method call on a class, on a record and on a
mailer, and an ActiveJob job), each with its own queue, priority and run_at; the real Ruby
delayed_job worker (tests/ruby/work.rb) then runs them. Its job code records, in
``DJ_RECORD``, the values it received; they must equal what Python sent. Ruby must also
honour the columns: priority order, a past run_at runs, a future run_at waits.

Skipped without Ruby, except under CI, where the suite must not go weaker.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import rubyenv
from ruby_values import ruby_value, same

import djmw
from djmw import encode
from djmw.backends import open_backend
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

USER = RecordRef("User", 1)
USER_GID = GlobalId("gid://djlab/User/1", "djlab", "User", "1")

#: Every kind of value a struct job can carry to Ruby.
VALUES: dict[object, object] = {
    "look_alikes": ["true", ":x", "1", "", "~", "null", "2024-01-02", "1,000", "y", "# no"],
    "text": 'multi\nline h\u00e9llo \u2713 "quoted" back\\slash',
    Symbol("sym"): Symbol("with space"),
    "numbers": [42, -(2**70), 2.5, 1e20, math.inf, Decimal("3.14"), Decimal("-0.001")],
    "nan": math.nan,
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
    "record": USER,
    "struct": RubyObject("Money", {"cents": 100, "currency": "EUR"}, kind="struct"),
    "mixed_keys": {Symbol("k"): "v", "k": "s", 1: "one", None: "nil"},
    "nested": [1, [2, [3]], {"a": [4]}, None, True, False],
}

#: ActiveJob arguments (the last one the keyword arguments).
AJ_ARGUMENTS: list[object] = [
    USER_GID,
    Symbol("sym"),
    Decimal("1.5"),
    datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    date(2024, 1, 2),
    timedelta(minutes=90),
    {"a": 1, Symbol("b"): 2},
    RubyModule("Maintenance"),
    "true",
    b"\xff\x00",
    2**70,
    2.5,
    None,
    [1, [2, [3]]],
    KeywordArgs(kw1="v", kw2=Symbol("s")),
]


def utc_now() -> datetime:
    """Naive UTC now, as delayed_job stores times."""
    return datetime.now(UTC).replace(tzinfo=None)


def test_ruby_worker_runs_what_djmw_enqueued(db_url: str, tmp_path: Path) -> None:
    """Ruby's worker runs djmw's rows in priority order and receives exactly the sent values."""
    database = rubyenv.ruby_database(db_url)
    rubyenv.create_schema(database)
    backend = open_backend(db_url)
    try:
        backend._execute("INSERT INTO users (id, name) VALUES (1, 'Ann')")
        now = utc_now()
        ids = {
            "values": djmw.enqueue(
                backend, encode.struct_job("ValuesJob", {"values": VALUES}), priority=0
            ),
            "keyword_struct": djmw.enqueue(
                backend,
                encode.struct_job("KeywordJob", {"account_id": 42, "mode": "full"}),
                priority=1,
                queue="accounts",
            ),
            "active_job": djmw.enqueue(
                backend,
                encode.active_job(
                    "ReportJob",
                    AJ_ARGUMENTS,
                    queue_name="reports",
                    priority=2,
                    job_id="00000000-0000-4000-8000-0000000000aa",
                ),
                priority=2,
                queue="reports",
            ),
            "struct": djmw.enqueue(
                backend,
                encode.struct_job("NewsletterJob", {"text": "from python", "emails": ["a@b.c"]}),
                priority=3,
                queue="py",
            ),
            "mailer": djmw.enqueue(
                backend,
                encode.method_call(
                    RubyModule("UserMailer"), "welcome", [USER, "from python"], mailer=True
                ),
                priority=4,
                queue="mailers",
            ),
            "class_method": djmw.enqueue(
                backend,
                encode.method_call(RubyModule("User"), "cleanup", [30]),
                priority=5,
                queue="maintenance",
                run_at=now - timedelta(minutes=1),
            ),
            "record_method": djmw.enqueue(
                backend,
                encode.method_call(
                    USER,
                    "activate!",
                    ["iPhone"],
                    {"force": True, "at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)},
                ),
                priority=6,
            ),
        }
        future_run_at = now + timedelta(hours=1)
        future = djmw.enqueue(
            backend,
            encode.method_call(RubyModule("Maintenance"), "vacuum", ["jobs"]),
            priority=-10,
            queue="maintenance",
            run_at=future_run_at,
        )

        record = tmp_path / "record.jsonl"
        proc = rubyenv.run_ruby(
            "work.rb",
            "--max-attempts",
            "1",
            "--no-destroy-failed-jobs",
            "--quiet",
            database=database,
            env={"DJ_RECORD": str(record)},
        )
        rows = backend.jobs()
    finally:
        backend.close()

    failed = [(row.id, row.last_error) for row in rows if row.failed_at or row.attempts]
    assert not failed, f"Ruby failed djmw's jobs: {failed}\n{proc.stdout}"
    assert [row.id for row in rows] == [future]
    (waiting,) = rows
    assert (waiting.attempts, waiting.locked_by, waiting.queue) == (0, None, "maintenance")
    assert waiting.run_at is not None
    assert abs(waiting.run_at - future_run_at) < timedelta(seconds=1)
    assert proc.stdout.count(" COMPLETED after ") == len(ids)

    calls = rubyenv.read_records(record)
    by_job = {call["job_id"]: call for call in calls}
    assert len(by_job) == len(calls) == len(ids)
    # Ruby reserves by priority: the order djmw gave the rows.
    assert [call["job_id"] for call in calls] == list(ids.values())
    assert {name: by_job[job_id]["call"] for name, job_id in ids.items()} == {
        "values": "ValuesJob#perform",
        "keyword_struct": "KeywordJob#perform",
        "active_job": "ReportJob#perform",
        "struct": "NewsletterJob#perform",
        "mailer": "mail",
        "class_method": "User.cleanup",
        "record_method": "User#activate!",
    }
    assert {name: by_job[job_id]["queue"] for name, job_id in ids.items()} == {
        "values": None,
        "keyword_struct": "accounts",
        "active_job": "reports",
        "struct": "py",
        "mailer": "mailers",
        "class_method": "maintenance",
        "record_method": None,
    }

    received = ruby_value(by_job[ids["values"]]["received"])
    assert isinstance(received, RubyObject)
    assert (received.class_name, received.kind, list(received.fields)) == (
        "ValuesJob",
        "struct",
        ["values"],
    )
    values = received.fields["values"]
    assert same(values, VALUES), values
    assert ruby_value(by_job[ids["keyword_struct"]]["received"]) == RubyObject(
        "KeywordJob", {"account_id": 42, "mode": "full"}, "struct"
    )
    assert ruby_value(by_job[ids["struct"]]["received"]) == RubyObject(
        "NewsletterJob", {"text": "from python", "emails": ["a@b.c"]}, "struct"
    )

    report = by_job[ids["active_job"]]
    assert report["job_class"] == "ReportJob"
    assert report["aj_job_id"] == "00000000-0000-4000-8000-0000000000aa"
    positional = ruby_value(report["args"], activejob=True)
    assert same(positional, AJ_ARGUMENTS[:-1]), positional
    keywords = ruby_value(report["kwargs"])
    assert isinstance(keywords, dict)
    assert {key.name: value for key, value in keywords.items()} == AJ_ARGUMENTS[-1]

    mail = by_job[ids["mailer"]]
    assert (mail["to"], mail["subject"], mail["body"]) == (
        ["ann@example.com"],
        "Welcome Ann",
        "Hello Ann (from python)",
    )
    assert by_job[ids["class_method"]]["args"] == [30]
    activate = by_job[ids["record_method"]]
    assert ruby_value(activate["receiver"]) == USER
    assert same(
        ruby_value(activate["args"]),
        [
            "iPhone",
            {Symbol("force"): True, Symbol("at"): datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)},
        ],
    )
