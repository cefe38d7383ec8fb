"""The queue gauges: per queue and priority, computed by one process per interval.

Every djmw process that serves ``/metrics`` runs a ``QueueMonitor``, but only the one
holding the database-wide lock ``queue-monitor`` (``Backend.hold_lock``: MySQL's
``GET_LOCK``, a file lock beside an SQLite file) runs the GROUP BY each interval and
exports the gauges; the others export none. When the holder dies its lock goes with its
connection and another process takes over at its next interval. Under ``--processes N``
the supervisor runs the monitor, never the workers.

Gauges, labelled ``queue_name`` (``""`` for NULL) and ``priority``:
prometheus_exporter's ``delayed_jobs_enqueued`` (every row), ``delayed_jobs_pending``
(attempts 0, not locked) and ``delayed_jobs_failed``; Betterment delayed's monitor set
``delayed_job_count``, ``delayed_job_future_count``, ``delayed_job_working_count``,
``delayed_job_workable_count``, ``delayed_job_erroring_count``,
``delayed_job_failed_count``, ``delayed_job_max_lock_age`` and ``delayed_job_max_age``
(seconds); and ``djmw_queue_monitor_leader`` (1 in the process that computed them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import attrs

from djmw.backends import Backend, QueueStats
from djmw.errors import DjmwError
from djmw.logs import LOGGER_NAME
from djmw.middleware.metrics import import_prometheus

logger = logging.getLogger(LOGGER_NAME)

LOCK_NAME = "queue-monitor"

#: (metric name, help, QueueStats attribute)
GAUGES = (
    ("delayed_jobs_enqueued", "Number of enqueued delayed jobs.", "count"),
    (
        "delayed_jobs_pending",
        "Number of pending delayed jobs (attempts 0, not locked).",
        "pending_count",
    ),
    ("delayed_jobs_failed", "Number of failed delayed jobs.", "failed_count"),
    ("delayed_job_count", "Rows in the queue (Betterment delayed's count).", "count"),
    ("delayed_job_future_count", "Rows whose run_at is in the future.", "future_count"),
    ("delayed_job_working_count", "Locked rows that have not failed.", "working_count"),
    (
        "delayed_job_workable_count",
        "Unlocked, unfailed rows whose run_at has come.",
        "workable_count",
    ),
    ("delayed_job_erroring_count", "Unfailed rows with a last_error.", "erroring_count"),
    ("delayed_job_failed_count", "Rows with failed_at set.", "failed_count"),
    (
        "delayed_job_max_lock_age",
        "Seconds since the oldest working row was locked.",
        "max_lock_age",
    ),
    ("delayed_job_max_age", "Seconds since the oldest workable row's run_at.", "max_age"),
)


@attrs.define(eq=False)
class QueueMonitor:
    """Compute the queue gauges every ``interval`` seconds while holding the leader lock.

    Args:
        connect: opens the monitor's own connection (``Worker.connect``).
        clock: the workers' clock (naive UTC by default), for ages and future rows.
        interval: seconds between two computations.
        lock_name: the leader lock's name; processes sharing it elect one leader.

    Use ``poll()`` to run one interval by hand, or ``start()``/``stop()`` for the thread;
    register it in a prometheus_client registry (``registry.register(monitor)``).
    """

    connect: Callable[[], Backend]
    clock: Callable[[], datetime]
    interval: float = 30.0
    lock_name: str = LOCK_NAME
    _backend: Backend | None = attrs.field(default=None, init=False)
    _stats: list[QueueStats] | None = attrs.field(default=None, init=False)
    _stop: threading.Event = attrs.field(factory=threading.Event, init=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False)

    @property
    def leader(self) -> bool:
        """True when the last poll held the lock and computed the gauges."""
        return self._stats is not None

    def poll(self) -> bool:
        """Take (or keep) the leader lock and compute the gauges; False if not the leader."""
        try:
            if self._backend is None:
                self._backend = self.connect()
            if not self._backend.hold_lock(self.lock_name):
                self._stats = None
                return False
            self._stats = self._backend.queue_stats(self.clock())
        except (DjmwError, OSError) as exc:
            logger.warning("queue monitor: %s; no queue gauges until it works again", exc)
            self._stats = None
            self._drop_connection()
            return False
        return True

    def _drop_connection(self) -> None:
        if self._backend is not None:
            try:
                self._backend.close()
            except Exception as exc:  # closing a broken connection may fail too
                logger.debug("queue monitor: closing its connection failed: %s", exc)
            self._backend = None

    def start(self) -> QueueMonitor:
        """Poll now and then every ``interval`` seconds in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="djmw queue monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.poll()
            self._stop.wait(max(self.interval - (time.monotonic() - started), 0.0))

    def stop(self) -> None:
        """Stop the thread and close the connection (which gives up the lock)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._drop_connection()

    # -- prometheus_client's collector protocol -------------------------------------------
    def describe(self) -> list[Any]:
        """Nothing to describe ahead: the series depend on the table's queues."""
        return []

    def collect(self) -> Iterator[Any]:
        """Yield the gauges of the last poll (none when this process is not the leader)."""
        import_prometheus()
        from prometheus_client.core import GaugeMetricFamily as family  # noqa: PLC0415

        stats = self._stats
        leader = family(
            "djmw_queue_monitor_leader",
            "1 when this process computes the queue gauges (holds the leader lock).",
        )
        leader.add_metric([], 1.0 if stats is not None else 0.0)
        yield leader
        if stats is None:
            return
        for name, documentation, attribute in GAUGES:
            gauge = family(name, documentation, labels=["queue_name", "priority"])
            for row in stats:
                gauge.add_metric(
                    [row.queue or "", str(row.priority)], float(getattr(row, attribute))
                )
            yield gauge
