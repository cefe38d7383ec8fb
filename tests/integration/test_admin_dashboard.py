"""The operations-API pieces the dashboard added, on real MariaDB and SQLite: the
last_error text filter, the per-hour timeline, bounded failure summaries and id-bounded
list pages; and the dashboard's windowed list reading the same rows as one keyset scan."""

from __future__ import annotations

from datetime import timedelta

import pytest
import web_support as ws

from djmw._clock import utc_now
from djmw.admin import JobFilter, Jobs
from djmw.backends.base import SqlBackend
from djmw.cli import main
from djmw.errors import ConfigurationError
from djmw.testing import ManualClock
from djmw.web.listing import list_page

HOUR = timedelta(hours=1)


def test_error_filter_matches_text_in_last_error(db: SqlBackend, db_url: str) -> None:
    """JobFilter(error=...) selects rows whose last_error contains the text, LIKE
    wildcards in it taken literally, and ``djmw jobs list --error`` uses it."""
    smtp = ws.insert(db, ws.struct(), last_error="Net::SMTPFatalError: 550\nx.rb:1")
    percent = ws.insert(db, ws.struct(), last_error="disk 100% full")
    ws.insert(db, ws.struct(), last_error="disk 100 full")
    ws.insert(db, ws.struct())
    with Jobs(db_url) as jobs:
        assert [r.id for r in jobs.list(JobFilter(error="SMTPFatal")).rows] == [smtp]
        assert [r.id for r in jobs.list(JobFilter(error="100%")).rows] == [percent]
        assert jobs.count(JobFilter(error="x.rb:1")) == 1
    with pytest.raises(ConfigurationError, match="error must be non-empty"):
        JobFilter(error="")
    assert main(["jobs", "list", "--error", "100%", "--json", "--database", db_url]) == 0


def test_timeline_counts_failures_and_scheduled_rows_per_hour(db: SqlBackend, db_url: str) -> None:
    """Failures land in the hour of their failed_at (oldest first), scheduled rows in
    the hour of their run_at (soonest first); rows outside the 24 h windows, running
    rows and ready rows are not counted."""
    clock = ManualClock()
    now = clock()
    for minutes in (5, 50, 70):
        ws.insert(db, ws.struct(), failed_at=now - timedelta(minutes=minutes), last_error="x")
    ws.insert(db, ws.struct(), failed_at=now - 30 * HOUR, last_error="too old")
    for minutes in (10, 130, 135):
        ws.insert(db, ws.struct(), run_at=now + timedelta(minutes=minutes))
    ws.insert(db, ws.struct(), run_at=now + 30 * HOUR)
    ws.insert(
        db,
        ws.struct(),
        run_at=now + HOUR / 2,
        locked_at=now - timedelta(minutes=1),
        locked_by="host:a pid:1",
    )
    ws.insert(db, ws.struct(), run_at=now - HOUR)
    with Jobs(db_url, clock=clock) as jobs:
        timeline = jobs.timeline()
        assert len(timeline.failed) == len(timeline.scheduled) == 24
        assert timeline.failed[-1] == 2
        assert timeline.failed[-2] == 1
        assert sum(timeline.failed) == 3
        assert timeline.scheduled[0] == 1
        assert timeline.scheduled[2] == 2
        assert sum(timeline.scheduled) == 3
        assert jobs.timeline(jobs=JobFilter(queues=["nope"])).failed == [0] * 24
        with pytest.raises(ConfigurationError, match="hours"):
            jobs.timeline(hours=0)


def test_failure_summary_reads_only_the_newest_rows_when_asked(db: SqlBackend, db_url: str) -> None:
    """Without a bound it groups every broken row (as ``failures``); with ``newest`` it
    groups that many rows, newest first, and says older ones were left."""
    ids = [ws.insert(db, ws.struct(), failed_at=utc_now(), last_error="A\nx") for _ in range(5)]
    ids += [ws.insert(db, ws.struct(), failed_at=utc_now(), last_error="B\ny") for _ in range(3)]
    with Jobs(db_url, batch_size=2) as jobs:
        whole = jobs.failure_summary()
        assert (whole.rows, whole.complete) == (8, True)
        assert [(g.message, g.count) for g in whole.groups] == [("A", 5), ("B", 3)]
        assert [g.to_dict() for g in whole.groups] == [g.to_dict() for g in jobs.failures()]
        newest = jobs.failure_summary(newest=4)
        assert (newest.rows, newest.complete) == (4, False)
        assert [(g.message, g.count) for g in newest.groups] == [("B", 3), ("A", 1)]
        assert newest.groups[1].newest_id == ids[4]
        assert jobs.failure_summary(newest=8).complete is True


def test_windowed_pages_read_the_same_rows_as_one_keyset_scan(db: SqlBackend, db_url: str) -> None:
    """list_page over small id windows returns, page after page, exactly the rows of a
    plain keyset scan; with no time budget it stops after each window and says how far
    it searched; ``until`` bounds Jobs.list."""
    ids = [
        ws.insert(db, ws.struct(), failed_at=utc_now() if i % 7 == 0 else None) for i in range(60)
    ]
    failed = JobFilter(state="failed")
    with Jobs(db_url) as jobs:
        expected = [row.id for row in jobs.rows(failed)]
        assert [r.id for r in jobs.list(failed, until=ids[20]).rows] == [
            i for i in expected if i <= ids[20]
        ]
        assert jobs.id_span() == (ids[0], ids[-1])
        seen: list[int] = []
        after = None
        while True:
            page = list_page(jobs, failed, limit=3, after=after, window=10, budget=10.0)
            seen += [row.id for row in page.rows]
            if page.next_after is None:
                break
            after = page.next_after
        assert seen == expected
        partial = list_page(
            jobs, JobFilter(state="stuck"), limit=3, after=None, window=10, budget=0
        )
        assert (list(partial.rows), partial.searched_to) == ([], ids[0] + 9)
        assert partial.next_after == ids[0] + 9
