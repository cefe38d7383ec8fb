"""Backend.queue_stats and Backend.hold_lock on each real database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from djmw.backends import QueueStats, open_backend
from djmw.backends.base import SqlBackend
from djmw.testing import ManualClock

OK = "--- !ruby/struct:OkJob\nn: 1\n"


def test_queue_stats_count_each_state_per_queue_and_priority(db: SqlBackend) -> None:
    """One GROUP BY gives every gauge: future, working, workable, erroring, failed,
    pending, and the ages of the oldest lock and the oldest workable row."""
    now = db.clock().replace(microsecond=0)
    past = now - timedelta(seconds=100)
    db.enqueue(OK, queue="a", priority=1, run_at=past)
    db.enqueue(OK, queue="a", priority=1, run_at=now + timedelta(hours=1))
    working = db.enqueue(OK, queue="a", priority=1, run_at=past)
    erroring = db.enqueue(OK, queue="a", priority=1, run_at=past)
    failed = db.enqueue(OK, queue="a", priority=1, run_at=past)
    db.enqueue(OK, queue=None, priority=-5, run_at=past)
    stamp = db._stamp
    db._execute(
        "UPDATE delayed_jobs SET locked_at = ?, locked_by = 'w' WHERE id = ?".replace("?", db.mark),
        [stamp(now - timedelta(seconds=40)), working],
    )
    db._execute(
        "UPDATE delayed_jobs SET attempts = 2, last_error = 'x' WHERE id = ?".replace("?", db.mark),
        [erroring],
    )
    db._execute(
        "UPDATE delayed_jobs SET attempts = 1, last_error = 'x', failed_at = ? WHERE id = ?".replace(
            "?", db.mark
        ),
        [stamp(now), failed],
    )
    stats = {(s.queue, s.priority): s for s in db.queue_stats(now)}
    assert stats[("a", 1)] == QueueStats(
        queue="a",
        priority=1,
        count=5,
        future_count=1,
        working_count=1,
        workable_count=2,
        erroring_count=1,
        failed_count=1,
        pending_count=2,
        max_lock_age=40.0,
        max_age=100.0,
    )
    assert stats[(None, -5)].count == 1
    assert stats[(None, -5)].workable_count == 1
    assert set(stats) == {("a", 1), (None, -5)}


def test_hold_lock_elects_one_connection_until_it_closes(db_url: str, db: SqlBackend) -> None:
    """The first connection to ask holds the lock (and keeps it when asking again); a
    second is refused until the first closes; names are independent."""
    first = open_backend(db_url, clock=ManualClock())
    second = open_backend(db_url, clock=ManualClock())
    try:
        assert first.hold_lock("queue-monitor") is True
        assert first.hold_lock("queue-monitor") is True
        assert second.hold_lock("queue-monitor") is False
        assert second.hold_lock("another") is True
        first.close()
        assert second.hold_lock("queue-monitor") is True
    finally:
        second.close()


def test_the_leader_lock_is_per_database_on_one_mariadb_server(
    mysql_url: str, request: pytest.FixtureRequest
) -> None:
    """MariaDB's named locks are server-wide: the fleets of two databases on one server
    each elect their own leader (the key names the database)."""
    other_url = mysql_url.rsplit("/", 1)[0] + "/" + mysql_url.rsplit("/", 1)[1] + "_b"
    server = open_backend(mysql_url)
    server._execute(f"CREATE DATABASE `{other_url.rsplit('/', 1)[1]}`")
    request.addfinalizer(
        lambda: server._execute(f"DROP DATABASE IF EXISTS `{other_url.rsplit('/', 1)[1]}`")
    )
    first, second = open_backend(mysql_url), open_backend(other_url)
    try:
        assert first.hold_lock("queue-monitor") is True
        assert second.hold_lock("queue-monitor") is True
    finally:
        first.close()
        second.close()
