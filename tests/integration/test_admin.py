"""The operations commands (``djmw jobs ...``, ``djmw enqueue``, ``djmw check``) on real
MariaDB and SQLite, driven through ``djmw.cli.main`` and checked on their ``--json``
output and on the rows they leave.

Rows are placed at least a minute away from "now", so the real clock the commands read
cannot move a row across a state boundary while a test runs.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

import djmw
import djmw.cli
from djmw import Handlers, Job, Worker
from djmw._clock import utc_now
from djmw.backends import ReserveRequest, open_backend
from djmw.backends.base import SqlBackend
from djmw.cli import main
from djmw.ruby import encode
from djmw.ruby.values import RecordRef, RubyModule

Cli = Callable[..., tuple[int, Any]]
HOUR = timedelta(hours=1)
MRT = 4 * 3600


def struct(name: str = "NewsletterJob", **fields: object) -> str:
    return encode.struct_job(name, fields)


def insert(db: SqlBackend, handler: str | bytes = "", **columns: object) -> int:
    """Enqueue ``handler`` then set ``columns`` (datetimes stamped as the dialect stores them)."""
    job_id = db.enqueue(handler if isinstance(handler, str) else "x", queue=None)  # type: ignore[arg-type]
    if isinstance(handler, bytes):
        # PostgreSQL's text holds only valid UTF-8 (psycopg would send bytes as bytea).
        postgresql = type(db).__name__ == "PostgresqlBackend"
        columns["handler"] = handler.decode() if postgresql else handler
    if columns:
        sets = ", ".join(f"{name} = {db.mark}" for name in columns)
        values = [db._stamp(v) if isinstance(v, datetime) else v for v in columns.values()]
        db._execute(f"UPDATE delayed_jobs SET {sets} WHERE id = {db.mark}", [*values, job_id])
    return job_id


@pytest.fixture
def cli(db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``djmw <args> --database <db_url>``; return (exit status, JSON or text output).

    The command's logging setup is left out so that a worker thread's log lines never
    mix with the output under test.
    """
    monkeypatch.setattr(djmw.cli, "configure_logging", lambda: None)

    def run(*args: str, database: bool = True, parse: bool = True) -> tuple[int, Any]:
        capsys.readouterr()
        argv = [*args, "--database", db_url] if database else list(args)
        code = main(argv)
        captured = capsys.readouterr()
        if parse and "--json" in args:
            return code, json.loads(captured.out)
        return code, captured.out + captured.err

    return run


@pytest.fixture
def mixed(db: SqlBackend) -> dict[str, int]:
    """One row of each state, in two queues, with a retrying one and an expired lock."""
    now = utc_now()
    return {
        "ready": insert(db, struct(text="a"), queue="a", run_at=now - HOUR),
        "ready_null_queue": insert(db, struct(text="b"), run_at=now - HOUR, priority=5),
        "expired_lock": insert(
            db,
            struct("Reports::Nightly"),
            queue="b",
            run_at=now - 6 * HOUR,
            locked_at=now - 5 * HOUR,
            locked_by="host:gone pid:9",
        ),
        "scheduled": insert(db, struct(), queue="a", run_at=now + HOUR),
        "retrying": insert(
            db, struct(), queue="a", run_at=now + HOUR, attempts=3, last_error="boom\nx.py:1"
        ),
        "running": insert(
            db,
            struct("LongJob"),
            queue="b",
            run_at=now - HOUR,
            locked_at=now - timedelta(minutes=2),
            locked_by="host:x pid:1",
        ),
        "failed": insert(
            db,
            struct(),
            queue="b",
            run_at=now - 3 * HOUR,
            attempts=25,
            failed_at=now - 72 * HOUR,
            last_error="Net::SMTPFatalError: 550 no such user\napp/mail.rb:3:in `deliver'",
            locked_at=now - 72 * HOUR,
            locked_by="host:y pid:2",
        ),
        "stuck": insert(db, struct(), queue="a", run_at=None),
        "undecodable": insert(db, "--- !ruby/object:Broken\n  : : bad\n", run_at=now - HOUR),
    }


def ids_of(document: dict[str, Any]) -> list[int]:
    return [row["id"] for row in document["rows"]]


def test_list_ready_is_exactly_what_workers_claim(
    cli: Cli, db: SqlBackend, mixed: dict[str, int]
) -> None:
    """`jobs list --state ready` returns exactly the rows the worker's reserve claims,
    also with a queue filter (an expired lock is ready, a live one is not)."""
    code, listed = cli("jobs", "list", "--state", "ready", "--limit", "100", "--json")
    assert code == 0
    _, in_a = cli("jobs", "list", "--state", "ready", "--queue", "a", "--queue", "", "--json")

    def claims(queues: tuple[str | None, ...] | None) -> set[int]:
        claimed = set()
        for index in range(100):
            request = ReserveRequest(
                worker_name=f"host:probe pid:{index}",
                now=utc_now(),
                max_run_time=MRT,
                queues=queues,
            )
            job = db.reserve(request)
            if job is None:
                return claimed
            claimed.add(job.id)
        raise AssertionError("more claims than rows")

    expected_in_a = claims(("a", None))
    expected_all = expected_in_a | claims(None)
    assert set(ids_of(listed)) == expected_all
    assert set(ids_of(in_a)) == expected_in_a
    assert expected_all == {
        mixed["ready"],
        mixed["ready_null_queue"],
        mixed["expired_lock"],
        mixed["undecodable"],
    }
    assert expected_in_a == {mixed["ready"], mixed["ready_null_queue"], mixed["undecodable"]}


def test_each_row_is_in_exactly_one_state(cli: Cli, mixed: dict[str, int]) -> None:
    """Every state listing holds the rows of that state, and the listings partition the
    table: a retrying row is scheduled (attempts show it), a NULL run_at is stuck."""
    _, everything = cli("jobs", "list", "--state", "all", "--json")
    by_state: dict[str, list[int]] = {}
    for state in ("ready", "scheduled", "running", "failed", "stuck"):
        _, document = cli("jobs", "list", "--state", state, "--json")
        assert {row["state"] for row in document["rows"]} <= {state}
        by_state[state] = ids_of(document)
    assert sorted(i for ids in by_state.values() for i in ids) == ids_of(everything)
    assert by_state["scheduled"] == [mixed["scheduled"], mixed["retrying"]]
    assert by_state["running"] == [mixed["running"]]
    assert by_state["failed"] == [mixed["failed"]]
    assert by_state["stuck"] == [mixed["stuck"]]
    row = next(r for r in everything["rows"] if r["id"] == mixed["retrying"])
    assert (row["state"], row["attempts"], row["error"]) == ("scheduled", 3, "boom")


def test_list_columns_names_and_keyset_pages(cli: Cli, db: SqlBackend) -> None:
    """Pages of --limit rows follow each other through --after without gaps or repeats;
    each row carries the decoded name and the first line of last_error."""
    ids = [insert(db, struct(text=str(i)), last_error=f"err {i}\nframe") for i in range(7)]
    seen: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        args = ["jobs", "list", "--limit", "3", "--json"]
        if after is not None:
            args += ["--after", str(after)]
        code, page = cli(*args)
        assert code == 0
        assert page["count"] == len(page["rows"]) <= 3
        seen += ids_of(page)
        pages += 1
        after = page["next_after"]
        if after is None:
            break
    assert seen == ids
    assert pages == 3
    row = page["rows"][-1]
    assert (row["name"], row["error"], row["queue"], row["priority"]) == (
        "NewsletterJob",
        "err 6",
        None,
        0,
    )
    assert set(row) == {
        "id", "name", "state", "queue", "priority", "attempts", "run_at", "locked_at",
        "locked_by", "failed_at", "created_at", "updated_at", "error", "undecodable",
    }  # fmt: skip


def test_name_filter_works_on_decoded_names(cli: Cli, db: SqlBackend) -> None:
    """--name globs the names the worker decodes: struct, ActiveJob, class and record
    methods; a row that only mentions the name in its data is not a match."""
    ids = {
        "struct": insert(db, struct("Reports::Nightly", date="x")),
        "activejob": insert(db, encode.active_job("ReportJob", [1])),
        "class_method": insert(db, encode.method_call(RubyModule("User"), "cleanup", [30])),
        "record_method": insert(db, encode.method_call(RecordRef("User", 1), "activate!", [])),
        "mentions": insert(db, struct("NewsletterJob", text="User.cleanup Reports::Nightly")),
    }
    expectations = {
        "Reports::*": ["struct"],
        "User.*": ["class_method"],
        "User#activate!": ["record_method"],
        "User*": ["class_method", "record_method"],
        "*Job": ["activejob", "mentions"],
        "Nothing*": [],
    }
    for pattern, names in expectations.items():
        code, page = cli("jobs", "list", "--name", pattern, "--json")
        assert code == 0
        assert ids_of(page) == [ids[name] for name in names], pattern


def test_show_explains_each_state(cli: Cli, mixed: dict[str, int]) -> None:
    """`jobs show` gives the payload as a handler sees it, the full last_error and why
    the job runs or not; --handlers adds a missing perform function."""
    _, failed = cli("jobs", "show", str(mixed["failed"]), "--json")
    assert failed["why"] == ["failed 3 days ago after 25 attempts"]
    assert failed["last_error"].endswith("in `deliver'")
    assert failed["payload"] == {"type": "StructJob", "class_name": "NewsletterJob", "fields": {}}
    _, running = cli("jobs", "show", str(mixed["running"]), "--json")
    assert running["why"][0].startswith("locked by host:x pid:1 for 2 min")
    _, scheduled = cli("jobs", "show", str(mixed["retrying"]), "--json")
    assert scheduled["why"] == ["scheduled in 60 min", "retrying after 3 attempts that failed"]
    _, stuck = cli("jobs", "show", str(mixed["stuck"]), "--json")
    assert stuck["why"] == ["run_at is NULL: no worker will ever claim it"]
    _, broken = cli("jobs", "show", str(mixed["undecodable"]), "--json")
    assert broken["name"] == "Broken"
    assert broken["undecodable"].startswith("Job failed to load: YAML syntax error")
    assert broken["why"][1].startswith("undecodable: YAML syntax error")
    _, expired = cli("jobs", "show", str(mixed["expired_lock"]), "--json")
    assert expired["why"][0].startswith("ready: the lock of host:gone pid:9 expired 60 min ago")

    code, text = cli(
        "jobs", "show", str(mixed["ready"]), "--handlers", "tests.config_handlers:handlers"
    )
    assert code == 0
    assert "no handler registered for NewsletterJob" in text
    assert "StructJob(class_name='NewsletterJob', fields={'text': 'a'})" in text
    assert text.rstrip().endswith("1 row")


def test_unknown_id_exits_1_and_empty_filters_print_0_rows(cli: Cli, db: SqlBackend) -> None:
    """An unknown id exits 1 with a message and changes nothing; a filter matching
    nothing prints "0 rows" and exits 0."""
    kept = insert(db, struct(), failed_at=utc_now() - HOUR)
    for command in (
        ["show", "999"],
        ["retry", "999", str(kept), "--yes"],
        ["delete", "999", "--yes"],
    ):
        code, text = cli("jobs", *command)
        assert code == 1
        assert "no job with id 999" in text
    assert db.job(kept) is not None
    code, text = cli("jobs", "list", "--queue", "nope")
    assert (code, text.strip()) == (0, "0 rows")
    code, text = cli("jobs", "delete", "--queue", "nope", "--yes")
    assert (code, text.strip()) == (0, "deleted 0 rows")


def test_retry_resets_rows_and_dry_run_changes_nothing(cli: Cli, db: SqlBackend) -> None:
    """retry --failed sets failed_at NULL, attempts 0, run_at now and clears the lock;
    --dry-run lists exactly those rows first and writes nothing; --keep-attempts keeps
    attempts; last_error stays for the record."""
    now = utc_now()
    old = now - 24 * HOUR
    failed = [
        insert(db, struct(), queue="q", failed_at=old, attempts=25, run_at=old, last_error="e",
               locked_by="host:y pid:2", locked_at=old)
        for _ in range(3)
    ]  # fmt: skip
    other = insert(db, struct(), queue="other", failed_at=old, attempts=2, run_at=old)
    before = [db.job(i) for i in failed]
    code, dry = cli("jobs", "retry", "--failed", "--queue", "q", "--dry-run", "--json")
    assert code == 0
    assert (dry["dry_run"], dry["count"], ids_of(dry)) == (True, 3, failed)
    assert [db.job(i) for i in failed] == before

    code, done = cli("jobs", "retry", "--failed", "--queue", "q", "--yes", "--json")
    assert (code, done["count"], done["ids"]) == (0, 3, failed)
    for job_id in failed:
        job = db.job(job_id)
        assert job is not None
        assert (job.failed_at, job.attempts, job.locked_by, job.locked_at) == (None, 0, None, None)
        assert job.run_at is not None
        assert job.run_at >= now - timedelta(seconds=1)
        assert job.last_error == "e"
    code, text = cli("jobs", "retry", str(other), "--keep-attempts", "--yes")
    assert (code, text.strip()) == (0, "retried 1 row")
    job = db.job(other)
    assert job is not None
    assert (job.failed_at, job.attempts) == (None, 2)


def test_delete_by_ids_and_filters(cli: Cli, db: SqlBackend) -> None:
    """delete removes the rows given by id or selected by filters, and no other."""
    now = utc_now()
    a = insert(db, struct("A"), queue="x")
    b = insert(db, struct("B"), queue="x", failed_at=now - 48 * HOUR)
    c = insert(db, struct("C"), queue="y", failed_at=now - 48 * HOUR)
    d = insert(db, struct("D"), queue="y")
    code, text = cli("jobs", "delete", str(a), "--yes")
    assert (code, text.strip()) == (0, "deleted 1 row")
    code, dry = cli(
        "jobs", "delete", "--state", "failed", "--older-than", "1d", "--dry-run", "--json"
    )
    assert ids_of(dry) == [b, c]
    code, done = cli("jobs", "delete", "--state", "failed", "--queue", "y", "--yes", "--json")
    assert (code, done["count"]) == (0, 1)
    assert [job.id for job in db.jobs()] == [b, d]


def test_filter_or_ids_are_required(cli: Cli, db: SqlBackend) -> None:
    """delete and retry with neither ids nor filters refuse with a message (exit 2):
    --state all is the explicit way to select every row."""
    insert(db, struct())
    code, text = cli("jobs", "delete", "--yes")
    assert code == 2
    assert "give row ids, or filters" in text
    assert len(db.jobs()) == 1
    code, done = cli("jobs", "delete", "--state", "all", "--yes", "--json")
    assert (code, done["count"], db.jobs()) == (0, 1, [])


def test_destructive_commands_need_confirmation(
    cli: Cli, db: SqlBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --yes: stdin that is not a terminal refuses (exit 1, nothing changed); on a
    terminal, "y" proceeds and anything else refuses."""
    job_id = insert(db, struct(), failed_at=utc_now() - 40 * 24 * HOUR)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    for command in (
        ["delete", str(job_id)],
        ["retry", "--failed"],
        ["prune", "--failed-older-than", "30d"],
    ):
        code, text = cli("jobs", *command)
        assert code == 1
        assert "standard input is not a terminal; pass --yes" in text
    assert db.job(job_id) is not None

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, text = cli("jobs", "prune", "--failed-older-than", "30d")
    assert code == 1
    assert "Prune 1 row that failed more than 30 days ago? [y/N]" in text
    assert db.job(job_id) is not None
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, text = cli("jobs", "prune", "--failed-older-than", "30d")
    assert code == 0
    assert text.strip().endswith("pruned 1 row that failed more than 30 days ago")
    assert db.job(job_id) is None


@pytest.fixture
def live_worker(db_url: str, db: SqlBackend) -> Iterator[tuple[int, threading.Event]]:
    """A real worker thread holding a long job; yields (row id, release event)."""
    started, release = threading.Event(), threading.Event()
    handlers = Handlers()

    @handlers.register("LongJob")
    def long_job(job: Job) -> None:
        started.set()
        release.wait(60)

    held = db.enqueue(struct("LongJob"))
    worker = Worker(database=db_url, handlers=handlers, name="host:live pid:1", sleep_delay=0.1)
    worker.start()
    try:
        assert started.wait(30), "the worker did not start the long job"
        yield held, release
    finally:
        release.set()
        worker.stop()
        worker.join(30)


def test_retry_and_delete_never_touch_a_row_a_live_worker_holds(
    cli: Cli, db: SqlBackend, live_worker: tuple[int, threading.Event]
) -> None:
    """While a real worker runs a long job, retry and delete (by id, by filter, by
    state) leave its row exactly as it is and report it as held; other rows are changed.
    When the job ends, the worker's own outcome is written."""
    held, release = live_worker
    free = insert(db, struct(), failed_at=utc_now() - HOUR)
    before = db.job(held)
    assert before is not None
    assert before.locked_by == "host:live pid:1"

    _, by_id = cli("jobs", "retry", str(held), str(free), "--yes", "--json")
    assert (by_id["count"], by_id["ids"]) == (1, [free])
    assert [row["id"] for row in by_id["held"]] == [held]
    _, by_state = cli("jobs", "retry", "--state", "running", "--yes", "--json")
    assert by_state["count"] == 0
    _, delete_id = cli("jobs", "delete", str(held), "--yes", "--json")
    assert (delete_id["count"], [r["id"] for r in delete_id["held"]]) == (0, [held])
    code, text = cli("jobs", "delete", "--state", "all", "--yes")
    assert (code, text.strip()) == (0, "deleted 1 row")
    assert db.job(held) == before
    assert db.job(free) is None

    release.set()
    for _ in range(300):
        if db.job(held) is None:
            break
        threading.Event().wait(0.1)
    assert db.job(held) is None, "the worker's success was not recorded"


def test_prune_deletes_only_old_failed_rows_in_batches(cli: Cli, db: SqlBackend) -> None:
    """prune --failed-older-than deletes failed rows older than the limit, batch by
    batch, and leaves recent failures and unfailed rows."""
    now = utc_now()
    old = [insert(db, struct(), failed_at=now - 40 * 24 * HOUR) for _ in range(5)]
    recent = insert(db, struct(), failed_at=now - 24 * HOUR)
    waiting = insert(db, struct(), run_at=now - 40 * 24 * HOUR)
    code, dry = cli("jobs", "prune", "--failed-older-than", "30d", "--dry-run", "--json")
    assert (dry["count"], ids_of(dry)) == (5, old)
    code, done = cli(
        "jobs", "prune", "--failed-older-than", "30d", "--batch", "2", "--yes", "--json"
    )
    assert (code, done["count"], done["ids"]) == (0, 5, old)
    assert [job.id for job in db.jobs()] == [recent, waiting]


def test_stats_counts_latency_failures_and_workers(cli: Cli, mixed: dict[str, int]) -> None:
    """stats counts rows per state per queue, gives the oldest ready row's age, recent
    failures and the running rows per worker; --by state and --by name group differently."""
    code, stats = cli("jobs", "stats", "--json")
    assert code == 0
    groups = {group["key"]: group for group in stats["groups"]}
    assert list(groups) == [None, "a", "b"]
    assert {k: groups["a"][k] for k in ("ready", "scheduled", "stuck", "retrying")} == {
        "ready": 1,
        "scheduled": 2,
        "stuck": 1,
        "retrying": 1,
    }
    assert {k: groups["b"][k] for k in ("ready", "running", "failed")} == {
        "ready": 1,
        "running": 1,
        "failed": 1,
    }
    assert stats["count"] == stats["total"]["total"] == len(mixed)
    assert 5.9 * 3600 < groups["b"]["oldest_ready_age_seconds"] < 6.1 * 3600
    assert (stats["total"]["failed_last_hour"], stats["total"]["failed_last_day"]) == (0, 0)
    assert stats["workers"] == [{"locked_by": "host:x pid:1", "locked": 1}]

    _, by_state = cli("jobs", "stats", "--by", "state", "--json")
    assert {g["key"]: g["total"] for g in by_state["groups"]} == {
        "ready": 4,
        "scheduled": 2,
        "running": 1,
        "failed": 1,
        "stuck": 1,
    }
    _, by_name = cli("jobs", "stats", "--by", "name", "--json")
    assert {g["key"]: g["total"] for g in by_name["groups"]} == {
        "Broken": 1,
        "LongJob": 1,
        "NewsletterJob": 6,
        "Reports::Nightly": 1,
    }
    code, text = cli("jobs", "stats")
    assert code == 0
    assert text.rstrip().endswith(f"{len(mixed)} rows")


def test_failures_group_by_name_class_and_message(cli: Cli, db: SqlBackend) -> None:
    """failures groups failed and erroring rows by (name, error class, first line),
    largest first, with counts and the newest id; successes and clean rows are absent."""
    now = utc_now()
    smtp = "Net::SMTPFatalError 550\napp/mail.rb:3:in `deliver'"
    rows = [
        insert(db, struct(), failed_at=now - HOUR, attempts=25, last_error=smtp),
        insert(db, struct(), attempts=2, last_error=smtp, run_at=now + HOUR),
        insert(db, struct(), failed_at=now - HOUR, attempts=25, last_error=smtp),
        insert(db, struct("ImportJob"), failed_at=now, last_error="Job failed to load: bad"),
        insert(db, struct("ImportJob")),
    ]
    code, document = cli("jobs", "failures", "--json")
    assert code == 0
    assert document["count"] == 4
    assert document["groups"] == [
        {
            "name": "NewsletterJob",
            "error_class": None,
            "message": "Net::SMTPFatalError 550",
            "origin": "app/mail.rb:3:in `deliver'",
            "count": 3,
            "failed": 2,
            "erroring": 1,
            "newest_id": rows[2],
        },
        {
            "name": "ImportJob",
            "error_class": "Delayed::DeserializationError",
            "message": "Job failed to load: bad",
            "origin": None,
            "count": 1,
            "failed": 1,
            "erroring": 0,
            "newest_id": rows[3],
        },
    ]


def test_check_exit_status(cli: Cli, db: SqlBackend) -> None:
    """check exits 0 when nothing is late or failed; 1 naming the rows when a ready job
    waited past --max-age or a job failed; --ignore-failed and --queue narrow it."""
    now = utc_now()
    insert(db, struct(), run_at=now - timedelta(seconds=30), queue="fast")
    code, text = cli("check", "--max-age", "300")
    assert code == 0
    assert text.strip().splitlines()[-1] == "0 late rows, 0 failed rows"
    late = insert(db, struct("Reports::Nightly"), run_at=now - HOUR, queue="slow")
    failed = insert(db, struct(), failed_at=now - HOUR, queue="fast", last_error="boom")
    code, result = cli("check", "--max-age", "600", "--json")
    assert code == 1
    assert (result["ok"], result["late"], result["failed"]) == (False, 1, 1)
    assert [row["id"] for row in result["late_rows"]] == [late]
    assert [row["id"] for row in result["failed_rows"]] == [failed]
    code, text = cli("check", "--max-age", "600")
    assert code == 1
    assert f"{late} Reports::Nightly (queue slow, waiting 60 min)" in text
    assert f"{failed} NewsletterJob: boom" in text
    code, _ = cli("check", "--max-age", "7200", "--ignore-failed", "--json")
    assert code == 0
    code, _ = cli("check", "--queue", "fast", "--ignore-failed", "--json")
    assert code == 0


def test_enqueue_writes_each_kind(cli: Cli, db: SqlBackend) -> None:
    """enqueue writes struct (default), ActiveJob and method rows through djmw.encode,
    with queue, priority and run_at; the worker's decoder reads back the name."""
    code, row = cli(
        "enqueue", "NewsletterJob", "--args", '{"text": "hi", "emails": ["a@b.c"]}', "--json"
    )
    assert (code, row["name"], row["state"], row["queue"]) == (0, "NewsletterJob", "ready", None)
    job = db.job(row["id"])
    assert job is not None
    stored = job.handler.encode() if isinstance(job.handler, str) else job.handler
    assert (
        stored == encode.struct_job("NewsletterJob", {"text": "hi", "emails": ["a@b.c"]}).encode()
    )
    code, aj = cli(
        "enqueue", "ReportJob", "--kind", "activejob", "--args", '[1, "x"]', "--queue", "reports",
        "--priority", "3", "--run-at", "+1h", "--json",
    )  # fmt: skip
    assert (code, aj["name"], aj["queue"], aj["priority"], aj["state"]) == (
        0,
        "ReportJob",
        "reports",
        3,
        "scheduled",
    )
    code, method = cli("enqueue", "User.cleanup", "--kind", "method", "--args", "[30]", "--json")
    assert (code, method["name"]) == (0, "User.cleanup")
    code, record = cli(
        "enqueue", "User#activate!", "--kind", "method", "--record-id", "1", "--json"
    )
    assert (code, record["name"]) == (0, "User#activate!")
    code, text = cli("enqueue", "lower.case", "--kind", "method")
    assert code == 2
    assert "cannot enqueue 'lower.case'" in text
    code, text = cli("enqueue", "NewsletterJob", "--args", "[1]")
    assert code == 2
    assert "JSON object" in text
    assert len(db.jobs()) == 4


HOSTILE = "\x1b[2J\x1b]0;owned\x07 \u202eevil\u202c \u200b\x00\x9b31m" + "x" * 5000
ESCAPED_AWAY = ("\x1b", "\x07", "\u202e", "\u202c", "\u200b", "\x00", "\x9b")


def test_hostile_row_text_never_reaches_the_terminal(cli: Cli, db: SqlBackend) -> None:
    """Escape sequences, NUL bytes, bidi marks and zero-width characters in any column
    are shown escaped and cut in terminal output, and a 10 MB handler is shown as
    undecodable with its reason; no command crashes."""
    mysql = type(db).__name__ == "MysqlBackend"
    postgresql = type(db).__name__ == "PostgresqlBackend"
    if mysql:  # MariaDB's TEXT holds 64 KiB; apps with big handlers widen it
        db._execute("ALTER TABLE delayed_jobs MODIFY handler LONGTEXT NOT NULL")
    now = utc_now()
    text_without_nul = HOSTILE.replace("\x00", "")
    if mysql:  # built by the server: PyMySQL's packet for 10 MB of text is too big
        huge = insert(db, struct())
        db._execute(
            "UPDATE delayed_jobs SET handler = CONCAT('--- !ruby/struct:Huge\ntext: ', "
            "REPEAT('A', 10000000), '\n') WHERE id = %s",
            [huge],
        )
    else:
        huge = insert(db, b"--- !ruby/struct:Huge\ntext: " + b"A" * 10_000_000 + b"\n")
    # PostgreSQL's text refuses NUL: there the row carries the escape sequence alone.
    nul_byte = b"" if postgresql else b"\x00"
    nul = insert(db, b"--- !ruby/struct:Nul\ntext: " + nul_byte + b"\x1b[31m\n")
    hostile = insert(
        db,
        encode.struct_job("Evil", {"text": HOSTILE}),
        queue=text_without_nul[:200],
        locked_by=text_without_nul[:200],
        locked_at=now - 10 * 24 * HOUR,
        failed_at=now - HOUR,
        last_error=text_without_nul + "\nframe",
    )
    outputs = [
        cli("jobs", "list", "--state", "all")[1],
        cli("jobs", "show", str(hostile))[1],
        cli("jobs", "show", str(huge))[1],
        cli("jobs", "show", str(nul))[1],
        cli("jobs", "failures")[1],
        cli("jobs", "stats", "--by", "queue")[1],
        cli("jobs", "stats", "--by", "name")[1],
        cli("check")[1],
        cli("jobs", "delete", "--state", "failed", "--dry-run")[1],
    ]
    for output in outputs:
        for char in ESCAPED_AWAY:
            assert char not in output
        assert max(len(line) for line in output.splitlines()) < 30_000
    assert "\\e[2J" in outputs[1]
    assert "\\u202eevil" in outputs[1]
    _, huge_row = cli("jobs", "show", str(huge), "--json", parse=True)
    assert huge_row["undecodable"].startswith("Job failed to load: the handler is 10000029 bytes")
    assert "undecodable: the handler is 10000029 bytes" in outputs[2]
    _, nul_row = cli("jobs", "show", str(nul), "--json")
    # Where the row could hold the NUL, that is the first character YAML refuses.
    assert ("#x001B" if postgresql else "NUL") in nul_row["undecodable"]


def test_bad_url_and_missing_table_read_as_for_work(
    cli: Cli, db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad URL, an unreachable server or a missing table give the same message as
    `djmw work` (exit 2), never the password; DATABASE_URL is read when --database is
    omitted."""
    cases = [
        "mysql://app:s3cret@127.0.0.1:1/app",
        "postgres2://app:s3cret@host/app",
        f"sqlite:///{tmp_path / 'empty.db'}",
    ]
    for url in cases:
        code, jobs_text = cli("jobs", "list", "--database", url, database=False)
        work_code, work_text = cli("work", "--database", url, "--exit-on-complete", database=False)
        assert (code, work_code) == (2, 2)
        assert jobs_text == work_text
        assert "s3cret" not in jobs_text
    monkeypatch.setenv("DATABASE_URL", db_url)
    open_backend(db_url).create_schema()
    code, page = cli("jobs", "list", "--json", database=False)
    assert (code, page["count"]) == (0, 0)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`djmw --version` prints the package version and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"djmw {djmw.__version__}\n"


def test_stats_read_in_id_ranges_equal_one_scan(
    db_url: str, mixed: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as several id ranges on their own connections (as on a big table), stats and
    counts equal what one query gives."""
    import djmw.admin.jobs as jobs_module
    from djmw.admin import JobFilter, Jobs

    monkeypatch.setattr(jobs_module, "_SPLIT_ABOVE", 0)
    opened: list[str] = []
    real_open = jobs_module.open_backend

    def counting_open(database: Any, **options: Any) -> SqlBackend:
        opened.append(str(database))
        return real_open(database, **options)

    monkeypatch.setattr(jobs_module, "open_backend", counting_open)

    def without_ages(stats: dict[str, Any]) -> dict[str, Any]:
        groups = [*stats["groups"], stats["total"]]
        return {
            "groups": [{k: v for k, v in g.items() if "age" not in k} for g in groups],
            "workers": stats["workers"],
        }

    with Jobs(db_url, scan_connections=1) as one, Jobs(db_url, scan_connections=3) as three:
        opened.clear()
        assert without_ages(three.stats().to_dict()) == without_ages(one.stats().to_dict())
        assert len(opened) == 3
        ready = JobFilter(state="ready")
        assert three.count(ready) == one.count(ready) == 4
        assert three.check(max_age=60).late == one.check(max_age=60).late == 4
