"""A corpus of hostile and broken ``delayed_jobs`` rows, with the end state each must reach.

Every entry is one row: its handler (text, raw bytes or NULL), the columns that differ
from a plain ready row, and what one ``Worker.work_off`` must leave behind:

- ``deleted``: the job ran (a good job, however odd its row) and its row is gone;
- ``failed``: ``failed_at`` is set and ``last_error`` says why (``Job failed to load: ...``
  for undecodable handlers, attempts unchanged);
- ``rescheduled``: the attempt failed, attempts went up and ``run_at`` moved on;
- ``untouched``: the row is not eligible and is left exactly as it was.

Static handlers live in ``tests/fixtures/hostile/``; big or binary ones are built here.
``tests/integration/test_hostile_rows.py`` inserts the whole corpus into one table and
runs one worker over it, on MariaDB, PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import attrs

State = Literal["deleted", "failed", "rescheduled", "untouched"]
Dialect = Literal["mysql", "postgresql", "sqlite"]

FIXTURES = Path(__file__).parent / "fixtures" / "hostile"
LOAD = "Job failed to load: "
DIALECTS: tuple[Dialect, ...] = ("mysql", "postgresql", "sqlite")
BOTH: frozenset[Dialect] = frozenset(DIALECTS)
MYSQL: frozenset[Dialect] = frozenset({"mysql"})
SQLITE: frozenset[Dialect] = frozenset({"sqlite"})
#: PostgreSQL's and SQLite's text columns have no practical size limit.
UNBOUNDED_TEXT: frozenset[Dialect] = frozenset({"postgresql", "sqlite"})
#: PostgreSQL refuses NUL characters and invalid UTF-8 in text at INSERT: no row holds them.
NOT_POSTGRESQL: frozenset[Dialect] = frozenset({"mysql", "sqlite"})

#: The worker's clock; every row is ready at READY unless it says otherwise.
T0 = datetime(2026, 1, 1, 12, 0, 0)
READY = T0 - timedelta(minutes=1)
#: The name of the worker that runs over the corpus.
WORKER_NAME = "host:hostile pid:1"
#: delayed_job's default max_run_time, also the lock expiry.
MAX_RUN_TIME = 4 * 3600.0

#: MariaDB's TEXT columns (handler, last_error) hold at most this many bytes.
MYSQL_TEXT_BYTES = 65_535
#: The decode limit the MariaDB run lowers max_bytes to, so that a TEXT-sized handler is over it.
MYSQL_MAX_BYTES = 60_000

#: Queue names that look like SQL; the worker's queue filter names them verbatim.
EVIL_QUEUE = "'); DROP TABLE delayed_jobs; --"
QUOTED_QUEUE = 'it\'s "quoted" \\ back\\slash `tick`'
EMOJI_QUEUE = "📬 mail"
#: Rows in these queues must not run: the filter does not name them.
UNLISTED_QUEUE = "'; DELETE FROM delayed_jobs; --"
WILDCARD_QUEUE = "%"
#: The worker's ``queues`` filter: the NULL queue plus the odd names above.
QUEUES: tuple[str | None, ...] = (None, EVIL_QUEUE, QUOTED_QUEUE, EMOJI_QUEUE)

#: The message EmojiErrorJob raises (read from its handler).
EMOJI_MESSAGE = "💥 déjà vu — 失敗 ✓ 🧨"
#: How long the message BigErrorJob raises is (200 KiB).
BIG_ERROR_CHARS = 200 * 1024

OK = "--- !ruby/struct:OkJob\nn: 1\n"
FAIL = "--- !ruby/struct:FailJob\nn: 1\n"


@attrs.frozen(kw_only=True)
class Entry:
    """One row of the corpus and the state the worker must leave it in.

    Attributes:
        name: a short identifier (also the test id).
        about: what makes the row hostile and why the end state is right.
        handler: the handler column: text, raw bytes (stored as a BLOB value on SQLite),
            or None for NULL.
        state: ``deleted``, ``failed``, ``rescheduled`` or ``untouched``.
        columns: column values that differ from a ready row (priority 0, attempts 0,
            run_at READY, no lock, no queue); datetimes are converted per dialect.
        error_starts / error_contains / error_ends: what ``last_error`` must start with,
            contain and end with (failed and rescheduled rows).
        error_max_bytes / error_min_bytes: bounds on ``last_error``'s UTF-8 size.
        attempts: the attempts value afterwards; None = unchanged.
        dialects: the databases this row is inserted into.
        insert_sql_mode: MariaDB only: the session ``sql_mode`` the row is inserted under.
    """

    name: str
    about: str
    handler: str | bytes | None
    state: State
    columns: Mapping[str, object] = attrs.field(factory=dict)
    error_starts: str = ""
    error_contains: str = ""
    error_ends: str = ""
    error_max_bytes: int | None = None
    error_min_bytes: int | None = None
    attempts: int | None = None
    dialects: frozenset[Dialect] = BOTH
    insert_sql_mode: str | None = None


def fixture(name: str) -> str:
    """Return the text of ``tests/fixtures/hostile/<name>``."""
    return (FIXTURES / name).read_text(encoding="utf-8")


def _load_failure(
    name: str, about: str, handler: str | bytes | None, reason: str, **options: object
) -> Entry:
    return Entry(
        name=name,
        about=about,
        handler=handler,
        state="failed",
        error_starts=LOAD,
        error_contains=reason,
        **options,  # type: ignore[arg-type]
    )


def _from_file(name: str, about: str, reason: str) -> Entry:
    return _load_failure(name, about, fixture(f"{name}.yml"), reason)


def _deep_flow(levels: int) -> str:
    return "--- !ruby/struct:OkJob\nn: " + "[" * levels + "]" * levels + "\n"


def _deep_block(levels: int) -> str:
    return "--- !ruby/struct:OkJob\nn:\n  " + "- " * levels + "x\n"


def _alias_flood(count: int) -> str:
    return "--- !ruby/struct:OkJob\nx: &x 1\nl: [" + ", ".join(["*x"] * count) + "]\n"


def _big_handler(size: int) -> str:
    head = '--- !ruby/struct:OkJob\nblob: "'
    tail = '"\n'
    return head + "A" * (size - len(head) - len(tail)) + tail


_MALFORMED = [
    _from_file("yaml_unclosed_flow_sequence", "a flow sequence never closed", "YAML syntax error"),
    _from_file("yaml_unclosed_flow_mapping", "a flow mapping never closed", "YAML syntax error"),
    _from_file("yaml_bad_indentation", "a mapping key indented under a scalar", "mapping values"),
    _from_file("yaml_tab_indentation", "a tab used for indentation", "cannot start any token"),
    _from_file("yaml_unterminated_quote", "a double-quoted scalar never closed", "end of stream"),
    _from_file("yaml_undefined_alias", "an alias to an anchor that does not exist", "alias"),
    _from_file("yaml_two_documents", "two YAML documents in one handler", "single document"),
    _from_file("yaml_duplicate_anchor", "the same anchor defined twice", "duplicate anchor"),
    _from_file("yaml_comment_only", "a comment and no document", "no YAML document"),
    _load_failure(
        "yaml_control_character",
        "a BEL control character, which YAML forbids",
        '--- !ruby/struct:OkJob\nn: "ring \x07 ring"\n',
        "character YAML does not allow",
    ),
]

_TAGS = [
    _from_file("tag_local_unknown", "a local tag nobody defines (!evil)", "unknown tag !evil"),
    _from_file(
        "tag_verbatim_unknown",
        "a verbatim global tag of another application",
        "unknown tag tag:example.com,2000:app/evil",
    ),
    _from_file(
        "tag_ruby_unknown_kind", "a !ruby/ tag of a kind Psych never writes", "!ruby/evilkind"
    ),
    _from_file(
        "python_object_apply_os_system",
        "PyYAML's unsafe loader would run os.system",
        "unknown tag !!python/object/apply:os.system",
    ),
    _from_file("python_object", "PyYAML's unsafe loader would build a Popen", "!!python/object:"),
    _from_file(
        "python_object_new",
        "PyYAML's unsafe loader would call Popen.__new__",
        "!!python/object/new:subprocess.Popen",
    ),
    _from_file(
        "python_name", "PyYAML's unsafe loader would import os.system", "!!python/name:os.system"
    ),
    _from_file("python_module", "PyYAML's unsafe loader would import os", "!!python/module:os"),
    _from_file(
        "python_nested_in_job",
        "a !!python tag inside an otherwise runnable OkJob: the whole job fails",
        "!!python/object/apply:os.system",
    ),
    _from_file(
        "ruby_object_unknown_class",
        "a plain Ruby object of a class with no perform function: decoded as an ObjectJob "
        "(a RubyObject), then failed as an unknown job",
        "no perform function is registered for 'Evil::Unknown'",
    ),
    Entry(
        name="ruby_object_unknown_nested",
        about="an unknown Ruby object as a field of a known job: a RubyObject value, the job runs",
        handler=fixture("ruby_object_unknown_nested.yml"),
        state="deleted",
    ),
    _from_file("legacy_dj2_struct", "a delayed_job 2.x PerformableMethod struct", "legacy"),
    _from_file(
        "performable_method_without_method_name",
        "a PerformableMethod that names no method",
        "without a method_name",
    ),
    _from_file(
        "activejob_wrapper_without_job_data",
        "an ActiveJob wrapper whose job_data is an Integer",
        "without a job_data Hash",
    ),
]

_BOMBS = [
    _from_file("billion_laughs", "nine levels of nine aliases (387M nodes)", "max_nodes"),
    _load_failure("alias_flood", "1,500 aliases to one scalar", _alias_flood(1500), "max_aliases"),
    _from_file("recursive_alias", "a sequence that contains itself", "recursive alias"),
    _load_failure(
        "nesting_10k_flow", "10,000 nested flow sequences", _deep_flow(10_000), "nests deeper"
    ),
    _load_failure(
        "nesting_10k_block",
        "10,000 nested block sequences on one line",
        _deep_block(10_000),
        "nests deeper",
    ),
    _load_failure(
        "handler_10_mib",
        "a 10 MiB handler (not on MariaDB: its TEXT holds 64 KiB)",
        _big_handler(10 * 1024 * 1024),
        "over the 1048576-byte limit (max_bytes)",
        dialects=UNBOUNDED_TEXT,
    ),
    _load_failure(
        "handler_text_max",
        "the largest handler MariaDB's TEXT holds, over the run's lowered max_bytes",
        _big_handler(MYSQL_TEXT_BYTES),
        f"over the {MYSQL_MAX_BYTES}-byte limit (max_bytes)",
        dialects=MYSQL,
    ),
]

_ENCODING = [
    _load_failure(
        "invalid_utf8",
        "raw bytes that are not UTF-8, stored as a BLOB value in the text column",
        b'--- !ruby/struct:OkJob\nn: "\xc3\x28 \xff\xfe"\n',
        "not valid UTF-8",
        dialects=SQLITE,
    ),
    # MariaDB cannot hand invalid UTF-8 to the worker: strict mode refuses the INSERT
    # (error 1366), sql_mode '' stores '?' in place of each bad byte, a latin1 column
    # reads back as (valid) mojibake, and the worker reads handler through CONVERT(...
    # USING utf8mb4), which replaces bad bytes of binary columns with '?' too. The row
    # below is what the server keeps of such an INSERT: it decodes, and the job runs.
    Entry(
        name="invalid_utf8_replaced_by_server",
        about="invalid UTF-8 inserted under sql_mode '': MariaDB stores '?' for the bad bytes",
        handler=b'--- !ruby/struct:OkJob\nn: "\xc3\x28 \xff\xfe"\n',
        state="deleted",
        dialects=MYSQL,
        insert_sql_mode="",
    ),
    _load_failure(
        "nul_byte",
        "a NUL byte inside a quoted scalar",
        '--- !ruby/struct:OkJob\nn: "a\x00b"\n',
        "NUL",
        dialects=NOT_POSTGRESQL,
    ),
    Entry(
        name="byte_order_mark",
        about="a UTF-8 byte order mark before the document: valid YAML, the job runs",
        handler="\ufeff" + OK,
        state="deleted",
    ),
    Entry(
        name="bignum_field",
        about="an Integer far past 64 bits in a field: a Python int, the job runs",
        handler="--- !ruby/struct:OkJob\nn: 123456789012345678901234567890123456789\n",
        state="deleted",
    ),
    _load_failure(
        "null_handler", "handler is NULL (constraint dropped)", None, "the handler is NULL"
    ),
    _load_failure("empty_handler", "handler is the empty string", "", "the handler is empty"),
    _load_failure(
        "whitespace_handler", "handler is only blank lines", "  \n\n\t\n", "the handler is empty"
    ),
    _from_file("top_level_integer", "the document is an Integer", "top-level value is a int"),
    _from_file("top_level_string", "the document is a String", "top-level value is a str"),
    _from_file("top_level_list", "the document is an Array", "top-level value is a list"),
]

_COLUMNS = [
    Entry(
        name="priority_int_min",
        about="priority -2**31, the smallest INT: runs first",
        handler=OK,
        state="deleted",
        columns={"priority": -(2**31)},
    ),
    Entry(
        name="priority_int_max",
        about="priority 2**31 - 1, the largest INT: runs last",
        handler=OK,
        state="deleted",
        columns={"priority": 2**31 - 1},
    ),
    Entry(
        name="priority_int64_min",
        about="priority -2**63 (SQLite integers are 64-bit)",
        handler=OK,
        state="deleted",
        columns={"priority": -(2**63)},
        dialects=SQLITE,
    ),
    Entry(
        name="priority_int64_max",
        about="priority 2**63 - 1 (SQLite integers are 64-bit)",
        handler=OK,
        state="deleted",
        columns={"priority": 2**63 - 1},
        dialects=SQLITE,
    ),
    Entry(
        name="priority_null",
        about="priority NULL, as legacy tables without the NOT NULL allow: runs",
        handler=OK,
        state="deleted",
        columns={"priority": None},
    ),
    Entry(
        name="run_at_null",
        about="run_at NULL: never ready, as in delayed_job (NULL <= now is not true)",
        handler=OK,
        state="untouched",
        columns={"run_at": None},
    ),
    Entry(
        name="run_at_year_9999",
        about="run_at 9999-12-31 23:59:59, the largest DATETIME: not ready, no overflow",
        handler=OK,
        state="untouched",
        columns={"run_at": datetime(9999, 12, 31, 23, 59, 59)},
    ),
    Entry(
        name="attempts_past_max",
        about="attempts 30 with max_attempts 25: one more failure fails it for good",
        handler=FAIL,
        state="failed",
        columns={"attempts": 30},
        error_starts="boom\n",
        attempts=31,
    ),
    Entry(
        name="already_failed",
        about="failed_at already set: never taken again",
        handler=OK,
        state="untouched",
        columns={"failed_at": T0 - timedelta(days=1), "last_error": "old failure"},
    ),
    Entry(
        name="queue_sql_injection",
        about="queue named like an SQL injection, listed in the worker's filter: runs",
        handler=OK,
        state="deleted",
        columns={"queue": EVIL_QUEUE},
    ),
    Entry(
        name="queue_quotes_and_backslashes",
        about="queue with quotes, backslashes and a backtick, listed in the filter: runs",
        handler=OK,
        state="deleted",
        columns={"queue": QUOTED_QUEUE},
    ),
    Entry(
        name="queue_emoji",
        about="queue with an emoji, listed in the filter: runs",
        handler=OK,
        state="deleted",
        columns={"queue": EMOJI_QUEUE},
    ),
    Entry(
        name="queue_unlisted_injection",
        about="queue named like an SQL injection, not in the filter: never taken",
        handler=OK,
        state="untouched",
        columns={"queue": UNLISTED_QUEUE},
    ),
    Entry(
        name="queue_like_wildcard",
        about="queue '%', not in the filter: the filter is equality, not LIKE",
        handler=OK,
        state="untouched",
        columns={"queue": WILDCARD_QUEUE},
    ),
    Entry(
        name="lock_dead_worker_expired",
        about="locked by a dead worker 5 hours ago (past max_run_time): taken and run",
        handler=OK,
        state="deleted",
        columns={"locked_by": "host:dead pid:99", "locked_at": T0 - timedelta(hours=5)},
    ),
    Entry(
        name="lock_other_worker_fresh",
        about="locked by another worker a minute ago: not taken",
        handler=OK,
        state="untouched",
        columns={"locked_by": "host:alive pid:98", "locked_at": T0 - timedelta(minutes=1)},
    ),
    Entry(
        name="last_error_1_mib",
        about="a 1 MiB last_error already in the row; the new failure replaces it",
        handler=FAIL,
        state="rescheduled",
        columns={"attempts": 1, "last_error": "e" * (1024 * 1024)},
        error_starts="boom\n",
        error_max_bytes=4096,
        attempts=2,
        dialects=UNBOUNDED_TEXT,
    ),
    Entry(
        name="last_error_text_max",
        about="a last_error filling MariaDB's TEXT (64 KiB); the new failure replaces it",
        handler=FAIL,
        state="rescheduled",
        columns={"attempts": 1, "last_error": "e" * MYSQL_TEXT_BYTES},
        error_starts="boom\n",
        error_max_bytes=4096,
        attempts=2,
        dialects=MYSQL,
    ),
    Entry(
        name="last_error_invalid_utf8",
        about="a last_error of raw non-UTF-8 bytes (a BLOB value): read, then replaced",
        handler=FAIL,
        state="rescheduled",
        columns={"last_error": b"old \xff\xfe error"},
        error_starts="boom\n",
        attempts=1,
        dialects=SQLITE,
    ),
    Entry(
        name="error_200_kib_truncated",
        about="the job raises a 200 KiB message: last_error is cut to the TEXT column",
        handler=f"--- !ruby/struct:BigErrorJob\nsize: {BIG_ERROR_CHARS}\n",
        state="rescheduled",
        error_starts="E" * 1000,
        error_ends="[truncated by djmw]",
        error_max_bytes=MYSQL_TEXT_BYTES,
        attempts=1,
        dialects=MYSQL,
    ),
    Entry(
        name="error_200_kib_whole",
        about="the job raises a 200 KiB message: PostgreSQL's and SQLite's text keep all of it",
        handler=f"--- !ruby/struct:BigErrorJob\nsize: {BIG_ERROR_CHARS}\n",
        state="rescheduled",
        error_starts="E" * BIG_ERROR_CHARS + "\n",
        error_min_bytes=BIG_ERROR_CHARS,
        attempts=1,
        dialects=UNBOUNDED_TEXT,
    ),
    Entry(
        name="error_emoji_message",
        about="the job raises a message with emoji and CJK: stored intact (utf8mb4)",
        handler=f'--- !ruby/struct:EmojiErrorJob\nmessage: "{EMOJI_MESSAGE}"\n',
        state="rescheduled",
        error_starts=EMOJI_MESSAGE + "\n",
        attempts=1,
    ),
    Entry(
        name="error_nul_in_message",
        about="the job raises a message holding NUL (YAML's \\0): stored (escaped on PostgreSQL)",
        handler='--- !ruby/struct:EmojiErrorJob\nmessage: "nul \\0 inside"\n',
        state="rescheduled",
        error_starts="nul ",
        error_contains=" inside\n",
        attempts=1,
    ),
]

ENTRIES: tuple[Entry, ...] = (*_MALFORMED, *_TAGS, *_BOMBS, *_ENCODING, *_COLUMNS)


def corpus(dialect: Dialect) -> list[Entry]:
    """Return the entries inserted into ``dialect``'s table, in insertion order."""
    return [entry for entry in ENTRIES if dialect in entry.dialects]


def _check_names_unique() -> None:
    names = [entry.name for entry in ENTRIES]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:  # pragma: no cover - a mistake in this file
        msg = f"duplicate corpus names: {duplicates}"
        raise AssertionError(msg)


_check_names_unique()
