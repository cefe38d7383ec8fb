"""The job-name index (``djmw schema --name-index``) on MariaDB, and its refusal elsewhere.

The index's key is computed by MariaDB from the handler text; a class-aware claim then
reads the index instead of every foreign row. The key must never hide a job: for every
handler shape it is either the marker of the name the decoder finds, or NULL (then the
claim falls back to the handler text for that row). Speed is shown by
``benchmarks/class_aware_claim.py``, not asserted here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import hostile_corpus as hc
import pytest

from djmw import Handlers, Worker
from djmw.backends import ReserveRequest, handler_marker, open_backend
from djmw.backends.mysql import NAME_KEY_COLUMN, MysqlBackend
from djmw.cli import main
from djmw.errors import PayloadDecodeError
from djmw.ruby.payload import decode_handler
from djmw.testing import ManualClock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T0 = hc.T0


@pytest.fixture
def indexed(mysql_url: str) -> Iterator[MysqlBackend]:
    """A MariaDB backend whose table has the job-name index (made by the command)."""
    assert main(["schema", "--database", mysql_url, "--name-index"]) == 0
    backend = open_backend(mysql_url, clock=ManualClock(T0))
    assert isinstance(backend, MysqlBackend)
    backend.check_schema()
    try:
        yield backend
    finally:
        backend.close()


def _handlers() -> list[str]:
    files = sorted((FIXTURES / "handlers").glob("*.yml")) + sorted(
        (FIXTURES / "ruby").glob("*.yml")
    )
    texts = [path.read_text(encoding="utf-8") for path in files]
    texts += [e.handler for e in hc.corpus("mysql") if isinstance(e.handler, str)]
    texts += [
        "--- !ruby/struct:TestJob {}\n",
        "--- !ruby/object:Bare",
        "--- !ruby/struct:NewsletterJob {text: hi}\n",
        "--- !ruby/object:Delayed::PerformableMethod\nobject: !ruby/class 'User'\n"
        "method_name: cleanup\nargs: []\n",
    ]
    return [text for text in texts if len(text.encode()) < hc.MYSQL_TEXT_BYTES]


@pytest.mark.mysql
def test_the_key_is_the_decoded_names_marker_or_null(indexed: MysqlBackend) -> None:
    """For every handler shape of the fixtures and the hostile corpus, MariaDB's key is
    NULL or the marker of the name the decoder gives; never another name (which would
    hide the job from its worker)."""
    texts = _handlers()
    ids = {indexed.enqueue(text): text for text in texts}
    keyed = dict(indexed._query(f"SELECT id, `{NAME_KEY_COLUMN}` FROM delayed_jobs"))
    wrong = []
    recognised = 0
    for job_id, text in ids.items():
        try:
            marker = handler_marker(decode_handler(text).name)
        except PayloadDecodeError:
            continue  # given back after decoding whatever its key
        key = keyed[job_id]
        recognised += key is not None
        if key not in (None, marker):
            wrong.append((text[:60], key, marker))
    assert wrong == []
    assert recognised >= 40  # the common shapes are keyed, not left to the fallback


@pytest.mark.mysql
def test_class_aware_claims_through_the_index(
    indexed: MysqlBackend, mysql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the index, a default worker runs exactly its own jobs (one whose shape has no
    key included) and leaves every other row as it was; the find reads the name index."""
    mine = [
        indexed.enqueue("--- !ruby/struct:OkJob\nn: 1\n"),
        indexed.enqueue("--- !ruby/struct:OkJob {n: 2}\n"),  # no key: the fallback finds it
        indexed.enqueue(
            "--- !ruby/object:Delayed::PerformableMethod\nobject: !ruby/class 'User'\n"
            "method_name: :cleanup\nargs: []\n"
        ),
    ]
    foreign = [
        indexed.enqueue("--- !ruby/struct:NewsletterJob\ntext: hi\n"),
        indexed.enqueue("--- !ruby/struct:NewsletterJob\nnote: OkJob\n"),
        indexed.enqueue("--- !ruby/struct:OkJob\n  n: [1\n"),
        indexed.enqueue(
            "--- !ruby/object:Delayed::PerformableMethod\nobject: !ruby/class 'Account'\n"
            "method_name: :cleanup\nargs: []\n"
        ),
    ]
    before = {i: indexed._query("SELECT * FROM delayed_jobs WHERE id = %s", [i]) for i in foreign}
    ran: list[int] = []
    handlers = Handlers(
        {"OkJob": lambda job: ran.append(job.id), "User.cleanup": lambda job: ran.append(job.id)}
    )
    worker = Worker(database=mysql_url, handlers=handlers, clock=ManualClock(T0), name="w")
    with caplog.at_level(logging.DEBUG, "djmw"):
        assert worker.work_off(20) == (3, 0)
    worker.close()
    assert sorted(ran) == sorted(mine)
    after = {i: indexed._query("SELECT * FROM delayed_jobs WHERE id = %s", [i]) for i in foreign}
    assert after == before
    given_back = {int(m) for m in re.findall(r"job (\d+) \(", caplog.text)}
    # Account.cleanup shares User.cleanup's key; broken YAML naming OkJob has no key.
    assert given_back == set(foreign[2:])

    request = ReserveRequest(worker_name="w", now=T0, max_run_time=3600, names=("OkJob",))
    claim, values = indexed._claim(request)
    find = claim.split("; UPDATE", 1)[0].removeprefix("SET @djmw_id = NULL; ")
    find = find.replace(" INTO @djmw_id", "", 1)
    plan = indexed._query("EXPLAIN " + find, values[: find.count("%s")])
    assert {row[5] for row in plan if row[2] == "delayed_jobs"} == {"delayed_jobs_djmw_name_key"}


@pytest.mark.mysql
def test_without_the_index_the_claim_filters_on_the_text(mysql_url: str) -> None:
    """A table without the index is found so by check_schema; the claim uses LIKE."""
    backend = open_backend(mysql_url)
    assert isinstance(backend, MysqlBackend)
    backend.create_schema()
    backend.check_schema()
    assert backend.name_key is False
    request = ReserveRequest(worker_name="w", now=T0, max_run_time=3600, names=("OkJob",))
    assert "handler LIKE" in backend._claim(request)[0]
    assert NAME_KEY_COLUMN not in backend._claim(request)[0]
    backend.close()


@pytest.mark.mysql
def test_schema_adds_the_index_to_a_table_with_rows_twice_over(
    mysql_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`djmw schema --name-index` on an existing table keys its rows; running it again
    changes nothing."""
    assert main(["schema", "--database", mysql_url]) == 0
    backend = open_backend(mysql_url)
    job_id = backend.enqueue("--- !ruby/struct:OkJob\nn: 1\n")
    for _ in range(2):
        assert main(["schema", "--database", mysql_url, "--name-index"]) == 0
        assert "with the job-name index" in capsys.readouterr().out
    assert backend._query(
        f"SELECT `{NAME_KEY_COLUMN}` FROM delayed_jobs WHERE id = %s", [job_id]
    ) == [("OkJob",)]
    backend.close()


def test_schema_name_index_refuses_sqlite(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """On SQLite the option is refused (exit 2) with a message saying the claim still works."""
    assert main(["schema", "--database", sqlite_url, "--name-index"]) == 2
    assert "--name-index is for MariaDB" in capsys.readouterr().err
