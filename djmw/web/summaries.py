"""Where the dashboard's data comes from: a small pool of ``djmw.admin.Jobs`` connections,
and summaries kept fresh in the background.

Every read and write goes through the operations API (``djmw.admin.Jobs``), so a state,
a name and the live-worker guard mean in the browser what they mean for ``djmw jobs``
and for the worker. ``Reader.call`` runs one call on a pooled connection, at most
``connections`` at once, in the calling thread (the pages call it from Starlette's
thread pool, never on the event loop); the background reads run in two threads of their
own.

Lists and job pages are keyset reads that stay fast on any table. The overview's counts
and charts and the failure groups are whole-table scans (seconds on a million rows), so
``Summaries`` keeps the last result of each and reads it again in the background when it
is older than the refresh interval, at most one read per summary at a time, and never
sooner than three times its last duration after the previous one (a dashboard left open
uses at most about a third of one database core). A page waits ``summary_wait`` for a
read under way, then shows the previous result with its age, or "counting" when there is
none yet; the live refresh brings the new one.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import attrs

from djmw.admin import Jobs
from djmw.web.settings import WebSettings

T = TypeVar("T")


class Reader:
    """Runs operations-API calls on pooled connections in the dashboard's threads.

    The first connection is opened at construction, so a bad URL or a missing table
    fails at start with the same message as ``djmw work`` (never the password).
    """

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self._idle: queue.LifoQueue[Jobs] = queue.LifoQueue()
        self._all: list[Jobs] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.connections)
        self._closed = False
        self._idle.put(self._open())
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="djmw-web"
        )

    def _open(self) -> Jobs:
        jobs = Jobs(
            self.settings.database,
            table=self.settings.table,
            max_run_time=self.settings.max_run_time,
        )
        with self._lock:
            self._all.append(jobs)
        return jobs

    def call(self, action: Callable[[Jobs], T]) -> T:
        """Run ``action`` on an idle connection (opening one if none is idle), in the
        calling thread; waits while ``connections`` calls are under way."""
        with self._slots:
            try:
                jobs = self._idle.get_nowait()
            except queue.Empty:
                jobs = self._open()
            try:
                return action(jobs)
            finally:
                if self._closed:
                    jobs.close()
                else:
                    self._idle.put(jobs)

    def submit(self, action: Callable[[Jobs], T]) -> concurrent.futures.Future[T]:
        """Run ``action`` on a pooled connection in one of the background threads."""
        return self.executor.submit(self.call, action)

    def close(self) -> None:
        """Wait for the calls under way, then close every connection."""
        self._closed = True
        self.executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            opened, self._all = self._all, []
        for jobs in opened:
            jobs.close()


@attrs.frozen(kw_only=True)
class Snapshot(Generic[T]):
    """One summary as last read.

    Attributes:
        value: the result, or None when the read failed.
        error: why the read failed (a djmw error message, which never holds a password).
        taken: when the read started (``time.time()``).
        duration: how long it took, in seconds.
        stale: a newer read is due or under way.
    """

    value: T | None
    error: str | None
    taken: float
    duration: float
    stale: bool = False

    @property
    def age(self) -> float:
        """Seconds since the read started."""
        return max(time.time() - self.taken, 0.0)


@attrs.define
class _Entry:
    snapshot: Snapshot[Any] | None = None
    future: concurrent.futures.Future[Any] | None = None
    started: float = 0.0
    invalidated: bool = False


class Summaries:
    """The latest result of each expensive read, by key, read again in the background.

    Args:
        reader: the connections to read with.
        max_entries: summaries kept (different filters of the failures page), the
            least recently used dropped first.
    """

    def __init__(self, reader: Reader, *, max_entries: int = 32) -> None:
        self.reader = reader
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: Hashable, compute: Callable[[Jobs], T], *, max_age: float, wait: float
    ) -> Snapshot[T] | None:
        """The summary ``key``: read again in the background when older than
        ``max_age`` (or invalidated); waits up to ``wait`` seconds for a read under way.

        Returns None when no read has finished yet.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            future = self._start_if_due(entry, compute, max_age)
        if future is not None and not future.done():
            concurrent.futures.wait([future], timeout=wait)
        with self._lock:
            snapshot = entry.snapshot
            if snapshot is None:
                return None
            due = entry.invalidated or (entry.future is not None and not entry.future.done())
            return attrs.evolve(snapshot, stale=due) if due else snapshot

    def _start_if_due(
        self, entry: _Entry, compute: Callable[[Jobs], Any], max_age: float
    ) -> concurrent.futures.Future[Any] | None:
        if entry.future is not None and not entry.future.done():
            return entry.future
        snapshot = entry.snapshot
        now = time.time()
        fresh = snapshot is not None and snapshot.age <= max_age and not entry.invalidated
        # Never read again sooner than three times the last read's duration.
        rested = snapshot is None or now - entry.started >= 3 * snapshot.duration
        if fresh or not (rested or entry.invalidated):
            return None
        entry.started = now
        entry.invalidated = False
        entry.future = self.reader.submit(lambda jobs: self._read(entry, compute, jobs))
        return entry.future

    def _read(self, entry: _Entry, compute: Callable[[Jobs], Any], jobs: Jobs) -> None:
        started, clock = time.time(), time.perf_counter()
        value: Any = None
        error: str | None = None
        try:
            value = compute(jobs)
        except Exception as exc:  # shown on the page, read again later
            error = _message(exc)
        snapshot = Snapshot(
            value=value, error=error, taken=started, duration=time.perf_counter() - clock
        )
        with self._lock:
            if entry.snapshot is None or value is not None or entry.snapshot.value is None:
                entry.snapshot = snapshot
            else:  # keep showing the last good counts, with the error beside them
                entry.snapshot = attrs.evolve(entry.snapshot, error=error)

    def invalidate(self) -> None:
        """Mark every summary out of date (after an action changed rows)."""
        with self._lock:
            for entry in self._entries.values():
                entry.invalidated = True


class PendingCounts:
    """Bulk-confirmation counts, by filter, read in the background.

    An exact count of a filter can scan the whole table (seconds on a million rows). The
    confirmation page waits a moment for it, then answers with "counting" and its live
    part asks again; the count goes on in a background thread meanwhile. Asks for the
    same filter share one count: a reload or a second tab starts no second scan, and a
    count is reused while younger than ``max_age``.

    Args:
        reader: the connections to count with.
        max_age: seconds a finished count is shown again before the next ask recounts.
        max_entries: filters kept; the oldest is dropped (its thread finishes anyway).
    """

    def __init__(self, reader: Reader, *, max_age: float = 2.0, max_entries: int = 32) -> None:
        self.reader = reader
        self.max_age = max_age
        self.max_entries = max_entries
        self._counts: OrderedDict[Hashable, concurrent.futures.Future[Snapshot[int]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(
        self, key: Hashable, count: Callable[[Jobs], int], *, wait: float
    ) -> Snapshot[int] | None:
        """The count of ``key`` (started now unless one is under way or fresh), or None
        when it has not finished within ``wait`` seconds."""
        with self._lock:
            future = self._counts.get(key)
            if future is None or self._expired(future):
                future = self._counts[key] = self.reader.submit(_timed(count))
            self._counts.move_to_end(key)
            while len(self._counts) > self.max_entries:
                self._counts.popitem(last=False)
        try:
            return future.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            return None
        except (Exception, concurrent.futures.CancelledError) as exc:  # no connection
            return Snapshot(value=None, error=_message(exc), taken=time.time(), duration=0.0)

    def invalidate(self) -> None:
        """Forget every count (after an action changed rows); counts under way finish."""
        with self._lock:
            self._counts.clear()

    def _expired(self, future: concurrent.futures.Future[Snapshot[int]]) -> bool:
        if not future.done():
            return False
        try:
            snapshot = future.result()
        except (Exception, concurrent.futures.CancelledError):
            return True
        return snapshot.value is None or snapshot.age - snapshot.duration > self.max_age


def _timed(count: Callable[[Jobs], int]) -> Callable[[Jobs], Snapshot[int]]:
    started, clock = time.time(), time.perf_counter()

    def timed(jobs: Jobs) -> Snapshot[int]:
        try:
            value, error = count(jobs), None
        except Exception as exc:  # shown on the page; the next ask counts again
            value, error = None, _message(exc)
        return Snapshot(
            value=value, error=error, taken=started, duration=time.perf_counter() - clock
        )

    return timed


def _message(exc: BaseException) -> str:
    from djmw.errors import DjmwError  # noqa: PLC0415 - only failures need it

    if isinstance(exc, DjmwError):
        return str(exc)
    return f"{type(exc).__name__} while reading the table"
