"""A last_error the column's charset cannot hold is escaped; the lock guard still matches.

MariaDB refuses, in strict mode, text its column's charset cannot store (error 1366).
The backend then writes last_error escaped to ASCII, and only last_error: the worker's
name in the ``locked_by = ?`` guard must match the row as it is, even when non-ASCII.
"""

from __future__ import annotations

import pytest

from djmw import Handlers, Job, Worker
from djmw.backends import open_backend

pytestmark = pytest.mark.mysql

NAME = "wörker-ü 1"


def test_non_ascii_worker_name_records_an_escaped_error(mysql_url: str) -> None:
    """Worker ``wörker-ü 1``, error text with an emoji into a latin1 last_error: recorded."""
    setup = open_backend(mysql_url)
    setup.create_schema()
    setup._execute("ALTER TABLE delayed_jobs MODIFY last_error TEXT CHARACTER SET latin1")
    job_id = setup.enqueue("--- !ruby/struct:EmojiJob {}\n")

    def emoji(job: Job) -> None:
        msg = "boom \U0001f4a5 déjà"
        raise ValueError(msg)

    worker = Worker(database=mysql_url, handlers=Handlers({"EmojiJob": emoji}), name=NAME)
    assert worker.work_off(1) == (0, 1)
    worker.close()
    row = setup.job(job_id)
    assert row is not None
    assert row.attempts == 1
    assert row.locked_by is None
    assert row.last_error is not None
    assert row.last_error.startswith("boom \\U0001f4a5 d\\xe9j\\xe0")
    setup.close()
