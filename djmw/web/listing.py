"""One page of a list, read in id windows so that it answers fast on any table.

A keyset page (``id > after ORDER BY id LIMIT n``) is fast while matching rows are
dense; for a sparse filter (no stuck row, a rare error text) the database walks the
whole primary key to find none. ``list_page`` therefore reads ``Jobs.list`` one id
window at a time (``until``) and stops when the page is full, the table ends, or a time
budget is spent: then the page says how far it searched and its "next" link continues
from there. Same rows, same order as ``Jobs.list``; only the cost of one request is
bounded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

import attrs

from djmw.admin import JobFilter, JobRow, Jobs

#: Ids read per window.
WINDOW = 50_000
#: Seconds a page may spend on windows before it answers with what it found.
BUDGET = 0.15


@attrs.frozen(kw_only=True)
class Listing:
    """A page of rows.

    Attributes:
        rows: the rows, by id.
        next_after: continue after this id (None: the table ends here).
        searched_to: when the page ended for lack of time, the id it searched up to.
        now: the clock's time of the read (for relative times).
    """

    rows: Sequence[JobRow]
    next_after: int | None
    searched_to: int | None
    now: datetime


def list_page(
    jobs: Jobs,
    jobs_filter: JobFilter,
    *,
    limit: int,
    after: int | None,
    window: int = WINDOW,
    budget: float = BUDGET,
) -> Listing:
    """Up to ``limit`` rows of ``jobs_filter`` after id ``after``, by id."""
    now = jobs.clock()
    span = jobs.id_span()
    if span is None:
        return Listing(rows=[], next_after=None, searched_to=None, now=now)
    low, high = span
    cursor = low - 1 if after is None else max(after, low - 1)
    rows: list[JobRow] = []
    started = time.perf_counter()
    while cursor < high:
        end = min(cursor + window, high)
        page = jobs.list(jobs_filter, limit=limit - len(rows), after=cursor, until=end)
        rows.extend(page.rows)
        if page.next_after is not None:  # the window holds more rows than the page
            return Listing(rows=rows, next_after=page.next_after, searched_to=None, now=now)
        cursor = end
        more = cursor < high
        if len(rows) == limit:
            return Listing(
                rows=rows, next_after=cursor if more else None, searched_to=None, now=now
            )
        if more and time.perf_counter() - started > budget:
            return Listing(rows=rows, next_after=cursor, searched_to=cursor, now=now)
    return Listing(rows=rows, next_after=None, searched_to=None, now=now)
