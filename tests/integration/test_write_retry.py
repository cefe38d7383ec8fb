"""Final writes on MariaDB: the first try runs bare, transient errors are retried, and a
failed combined write-and-claim is logged and written on its own."""

from __future__ import annotations

import logging

import pymysql
import pytest

from djmw._clock import utc_now
from djmw.backends import ReserveRequest, open_backend
from djmw.backends.mysql import MysqlBackend
from djmw.errors import BackendError
from djmw.outcome import Succeeded

pytestmark = pytest.mark.mysql


def _backend(mysql_url: str) -> MysqlBackend:
    backend = open_backend(mysql_url, write_retry_seconds=10)
    assert isinstance(backend, MysqlBackend)
    return backend


def test_a_deadlock_on_the_first_try_is_retried_and_counted(mysql_url: str) -> None:
    """A write that deadlocks once lands on the next try; the retry is counted."""
    backend = _backend(mysql_url)
    tries: list[int] = []

    def action() -> int:
        tries.append(1)
        if len(tries) == 1:
            raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
        return 7

    assert backend._write(action) == 7
    assert len(tries) == 2
    assert backend.stats["deadlocks_retried"] == 1
    backend.close()


def test_a_permanent_error_is_not_retried(mysql_url: str) -> None:
    """A write error that is not transient fails at once as a BackendError."""
    backend = _backend(mysql_url)
    tries: list[int] = []

    def action() -> int:
        tries.append(1)
        raise pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax")

    with pytest.raises(BackendError, match="MySQL write failed"):
        backend._write(action)
    assert len(tries) == 1
    backend.close()


def test_repeated_deadlocks_keep_being_retried(mysql_url: str) -> None:
    """Three deadlocks in a row, then success: four tries, three retries counted."""
    backend = _backend(mysql_url)
    tries: list[int] = []

    def action() -> int:
        tries.append(1)
        if len(tries) <= 3:
            raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
        return 1

    assert backend._write(action) == 1
    assert len(tries) == 4
    assert backend.stats["deadlocks_retried"] == 3
    backend.close()


def test_a_failed_reconnect_is_retried_like_a_lost_connection(mysql_url: str) -> None:
    """A reconnect that fails (BackendError caused by a lost connection) is retried too:
    the write lands once the server answers again."""
    backend = _backend(mysql_url)
    tries: list[int] = []

    def action() -> int:
        tries.append(1)
        if len(tries) == 1:
            lost = pymysql.err.OperationalError(2003, "Can't connect to MySQL server")
            raise BackendError("cannot connect") from lost
        return 5

    assert backend._write(action) == 5
    assert len(tries) == 2
    backend.close()


def test_a_lost_connection_under_the_combined_write_is_logged_and_survived(
    mysql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection dies between two jobs (a server restart, a killed session): the
    combined outcome-and-claim transaction fails, a warning says so with the error, the
    outcome is written on its own over a new connection (whose opening is logged too),
    and the next job is claimed."""
    backend = _backend(mysql_url)
    backend.create_schema()
    first = backend.enqueue("--- !ruby/struct:OkJob\nn: 1\n")
    second = backend.enqueue("--- !ruby/struct:OkJob\nn: 2\n")
    request = ReserveRequest(worker_name="w", now=utc_now(), max_run_time=3600)
    job = backend.reserve(request)
    assert job is not None
    assert job.id == first
    killer = _backend(mysql_url)
    (connection_id,) = backend._query("SELECT CONNECTION_ID()")[0]
    killer._execute(f"KILL {int(connection_id)}")
    killer.close()
    with caplog.at_level(logging.WARNING, logger="djmw.backend"):
        nxt = backend.finish_and_reserve(job, Succeeded(), request)
    assert nxt is not None
    assert nxt.id == second
    assert [row.id for row in backend.jobs()] == [second]
    warned = [
        r.getMessage() for r in caplog.records if "together with the next claim" in r.getMessage()
    ]
    assert len(warned) == 1
    assert "rolled back" in warned[0]
    assert backend.stats["reconnects"] >= 1
    assert any(r.getMessage().startswith("Reconnected to mysql://") for r in caplog.records)
    backend.close()
