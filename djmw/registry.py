"""The worker registry: who is alive, and the rescue of the jobs of workers that died.

delayed_job knows a worker died only when its lock grows older than ``max_run_time`` (4 h
by default), or when a worker of the same name starts; a restarted container has a new
name, so its job waits four hours. djmw workers record themselves in a side table
(``delayed_workers`` by default, created by ``djmw schema``; Ruby never reads it): name,
host, pid, queues, started_at, heartbeat_at and the current job id. Each refreshes its
heartbeat_at every ``heartbeat_interval`` seconds (15) from its own thread, on its own
connection. Any live worker rescues the rows locked by a registered worker whose
heartbeat is older than ``dead_worker_timeout`` (60 s): it charges the crashed attempt
(``djmw.rescue``) and frees the row. Rows locked by names that are not registered (Ruby
workers, ``work_off``) keep delayed_job's rule: taken only once their lock is older than
``max_run_time``. A worker takes nobody for dead until its own beats have gone through on
time for two intervals (30 s after it starts, or after a database outage), so that every
live worker has beaten again first.

Where: the loop calls ``start`` when it starts, ``poll`` before each batch and ``stop``
when it ends; below the loop, above ``djmw.rescue`` and the backends.

Limits: every worker's clock must agree with the others' to well under the timeout (the
same rule as for ``max_run_time``). A worker that cannot beat for longer than the
timeout while alive (frozen with SIGSTOP or a suspended VM, or a handler holding the GIL
in a C loop) is taken for dead: its job is rescued and may run again while it still
runs. Its own late outcome write is then refused by the ``locked_by`` guard.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from djmw.backends import Backend, BackendFactory, WorkerRecord
from djmw.backends._sql import checked_table
from djmw.errors import ConfigurationError, DjmwError
from djmw.job import Job
from djmw.logs import worker_prefix
from djmw.rescue import CrashAccounting, running_and_waiting
from djmw.validation import positive_number

#: How long ``stop`` waits for a beat that is still writing.
_JOIN_SECONDS = 5.0
#: At most one scan for dead workers per this many seconds (each poll otherwise).
_SCAN_EVERY = 1.0


def _table(instance: object, attribute: object, value: object) -> None:
    if not isinstance(value, str):
        msg = f"RegistrySettings: table must be a string, got {value!r}."
        raise ConfigurationError(msg)
    checked_table(value)


@attrs.frozen(kw_only=True)
class RegistrySettings:
    """The registry's table and intervals (``Worker`` options of the same names).

    Args:
        table: the registry table (default: ``delayed_workers`` beside ``delayed_jobs``).
        heartbeat_interval: seconds between a worker's beats (default 15).
        dead_worker_timeout: a registered worker whose last beat is older than this many
            seconds is dead and its rows are rescued (default 60); at least twice
            ``heartbeat_interval``, so that one late beat is not a death.
    """

    table: str = attrs.field(default="delayed_workers", validator=_table)
    heartbeat_interval: float = attrs.field(default=15.0, validator=positive_number)
    dead_worker_timeout: float = attrs.field(default=60.0, validator=positive_number)

    def __attrs_post_init__(self) -> None:
        if self.dead_worker_timeout < 2 * self.heartbeat_interval:
            msg = (
                f"Worker: dead_worker_timeout ({self.dead_worker_timeout:g} s) must be at least "
                f"twice heartbeat_interval ({self.heartbeat_interval:g} s), or a live worker "
                "whose beat is a little late is taken for dead."
            )
            raise ConfigurationError(msg)


def _host() -> str:
    try:
        return socket.gethostname()
    except OSError:  # pragma: no cover - the name lookup failed
        return "unknown"


class WorkerRegistry:
    """One worker's registry row, its heartbeat thread, and its rescues of dead workers.

    Args:
        settings: the table and the intervals.
        name: this worker's name (its ``locked_by``).
        queues: the queues it works, recorded for operators.
        connect: opens the heartbeat thread's own connection (``Worker.connect``).
        crash: charges a rescued job's crashed attempt and writes its outcome.
        logger: where registry lines go.
        max_run_time: the worker's lock expiry; a warning says when it comes before
            ``dead_worker_timeout`` (crashed jobs would then be taken uncharged first).

    Note:
        ``start``, ``poll`` and ``stop`` run in the loop's thread on the loop's
        connection; only the beats run in the registry's own thread and connection.
    """

    def __init__(
        self,
        settings: RegistrySettings,
        *,
        name: str,
        queues: tuple[str | None, ...] | None,
        connect: BackendFactory,
        crash: CrashAccounting,
        logger: logging.Logger,
        max_run_time: float,
    ) -> None:
        self.settings = settings
        self.name = name
        self.queues = queues
        self.connect = connect
        self.crash = crash
        self.logger = logger
        self.max_run_time = max_run_time
        self.started_at: datetime | None = None
        self._current_job: Callable[[], Job | None] = lambda: None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_scan = float("-inf")
        #: How many scans for dead workers ran (for tests and monitoring).
        self.scans = 0
        # Since when (monotonic) this worker's own beats have gone through on time.
        self._healthy_since: float | None = None

    @property
    def _prefix(self) -> str:
        return worker_prefix(self.name)

    def _record(self, now: datetime) -> WorkerRecord:
        job = self._current_job()
        return WorkerRecord(
            name=self.name,
            host=_host(),
            pid=os.getpid(),
            queues=self.queues,
            started_at=self.started_at or now,
            heartbeat_at=now,
            job_id=job.id if job is not None else None,
        )

    # -- the loop's side -------------------------------------------------------------------
    def start(self, backend: Backend, current_job: Callable[[], Job | None]) -> datetime | None:
        """Register this worker and start beating; return the last heartbeat of the row
        this registration replaced (the same name's earlier incarnation), if any.

        A failed registration is logged, not raised: the first beat registers again.
        """
        if self.max_run_time <= self.settings.dead_worker_timeout:
            self.logger.warning(
                "%s max_run_time (%g s) is not above dead_worker_timeout (%g s): a crashed "
                "job's expired lock may be taken, uncharged, before the registry rescues it",
                self._prefix,
                self.max_run_time,
                self.settings.dead_worker_timeout,
            )
        self._current_job = current_job
        now = backend.clock()
        self.started_at = now
        previous = None
        try:
            previous = backend.register_worker(self.settings.table, self._record(now))
            self._healthy_since = time.monotonic()
        except (DjmwError, OSError) as exc:
            self.logger.error(
                "%s Could not register this worker: %s; its first heartbeat tries again",
                self._prefix,
                exc,
            )
        self._done.clear()
        self._thread = threading.Thread(
            target=self._beats, name=f"djmw registry {self.name}", daemon=True
        )
        self._thread.start()
        return previous.heartbeat_at if previous is not None else None

    @property
    def settled(self) -> bool:
        """True once this worker's own beats have gone through on time for two intervals.

        Until then it takes nobody for dead: right after it started, or after its beats
        failed or came late (a database outage), a live worker may not have had the
        chance to beat again yet.
        """
        since = self._healthy_since
        return (
            since is not None and time.monotonic() - since >= 2 * self.settings.heartbeat_interval
        )

    def poll(self, backend: Backend) -> int:
        """Rescue the rows of registered workers whose heartbeat stopped; return how many.

        At most one scan per second, and only once ``settled``; errors are logged, never
        raised (the next poll tries again).
        """
        if not self.settled:
            return 0
        if time.monotonic() - self._last_scan < min(_SCAN_EVERY, self.settings.heartbeat_interval):
            return 0
        self._last_scan = time.monotonic()
        self.scans += 1
        try:
            now = backend.clock()
            before = now - timedelta(seconds=self.settings.dead_worker_timeout)
            return sum(
                self._rescue(backend, dead, before, now)
                for dead in backend.dead_workers(self.settings.table, before)
                if dead.name != self.name
            )
        except (DjmwError, OSError) as exc:
            self.logger.error("%s Could not rescue the jobs of dead workers: %s", self._prefix, exc)
            return 0

    def _rescue(self, backend: Backend, dead: WorkerRecord, before: datetime, now: datetime) -> int:
        table, count = self.settings.table, 0
        running, waiting = running_and_waiting(backend.locked_jobs(dead.name))
        if running is not None:
            taken = backend.take_over(table, running, self.name, before)
            # None: another worker was faster, or the lock is too recent yet.
            if taken is not None:
                seen = max(dead.heartbeat_at, running.locked_at or dead.heartbeat_at)
                self.crash.charge(backend, taken, dead.name, min(seen, now))
                count += 1
        given = [
            taken
            for job in waiting
            if (taken := backend.take_over(table, job, self.name, before)) is not None
        ]
        self.crash.give_back(backend, given, dead.name)
        count += len(given)
        if backend.forget_worker(table, dead.name, before):
            self.logger.info(
                "%s Worker %s (host %s, pid %d) has not beaten since %s: taken for dead, "
                "%d of its jobs rescued, its registry row removed",
                self._prefix,
                dead.name,
                dead.host,
                dead.pid,
                dead.heartbeat_at.isoformat(sep=" ", timespec="seconds"),
                count,
            )
        return count

    def stop(self, backend: Backend | None, *, unregister: bool = True) -> None:
        """Stop beating; remove this worker's row unless told not to (its locks could not
        be cleared: the rows must stay rescuable)."""
        if self._thread is None:  # never started (work_off) or already stopped
            return
        self._done.set()
        self._thread.join(_JOIN_SECONDS)
        self._thread = None
        if backend is None or not unregister:
            return
        try:
            backend.unregister_worker(self.settings.table, self.name)
        except (DjmwError, OSError) as exc:
            self.logger.error(
                "%s Could not remove this worker from the registry: %s", self._prefix, exc
            )

    # -- the heartbeat thread --------------------------------------------------------------
    def _beats(self) -> None:
        backend: Backend | None = None
        try:
            while not self._done.wait(self.settings.heartbeat_interval):
                started = time.monotonic()
                try:
                    if backend is None:
                        backend = self.connect()
                    self._beat(backend)
                except Exception as exc:  # logged; the next beat tries again
                    self._healthy_since = None
                    self.logger.error("%s Registry heartbeat failed: %s", self._prefix, exc)
                    continue
                ended = time.monotonic()
                if (
                    self._healthy_since is None
                    or ended - started > self.settings.heartbeat_interval
                ):
                    self._healthy_since = ended  # on time again from now
        finally:
            if backend is not None:
                with contextlib.suppress(Exception):
                    backend.close()

    def _beat(self, backend: Backend) -> None:
        job = self._current_job()
        table = self.settings.table
        if backend.beat(table, self.name, job.id if job is not None else None):
            return
        self.logger.warning(
            "%s This worker's registry row is missing: another worker found its heartbeat "
            "older than %g s and took it for dead (was it paused?), or it could not "
            "register at start; registering again",
            self._prefix,
            self.settings.dead_worker_timeout,
        )
        backend.register_worker(table, self._record(backend.clock()))
