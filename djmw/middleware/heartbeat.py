"""Heartbeat: keep a running job's lock fresh, so max_run_time can be short."""

from __future__ import annotations

import contextlib
import logging
import threading

import attrs

from djmw.backends import Backend, BackendFactory
from djmw.chain import CallNext, Middleware
from djmw.job import Job
from djmw.logs import job_prefix
from djmw.outcome import Outcome
from djmw.validation import positive_number

logger = logging.getLogger("djmw.heartbeat")

#: How long the end of a job waits for a beat that is still writing.
_JOIN_SECONDS = 5.0


@attrs.frozen(kw_only=True)
class Heartbeat:
    """Refresh the job's ``locked_at`` every ``interval`` seconds while the job runs.

    delayed_job treats a lock older than ``max_run_time`` as abandoned by a crashed
    worker, so ``max_run_time`` is both how long a job may run and how soon a crashed
    worker's job runs again. With a heartbeat, a running job's lock never gets older than
    ``interval`` (plus a second on whole-second columns): ``max_run_time`` can be a few
    minutes, for fast crash recovery, without other workers stealing long jobs. Each beat
    is ``UPDATE <table> SET locked_at = <now> WHERE id = ? AND locked_by = ?``, with "now"
    from the job's clock; no schema change.

    Where: inside RunHooks and LogOutcome, outside EnforceTimeout when the chain has one:
    ``chain = default_middlewares(handlers); chain.insert(3, Heartbeat(...))`` puts it
    right after LogOutcome. Outside EnforceTimeout, the beat thread stays in the worker
    process when ``mode="process"`` runs the handler in a child.

    Args:
        interval: seconds between beats (default 60); keep it well below the workers'
            max_run_time, all of them (a worker with a shorter one steals sooner).
        connect: opens a connection for the beats. None (the usual case): the Worker
            gives its own ``Worker.connect`` when it composes the chain
            (``with_backend``), so the beats reach the worker's database and table.

    Note:
        The beats use their own connection, opened by the beat thread at its first beat
        (jobs shorter than ``interval`` open none) and closed when the job ends; never
        the worker's connection, which is busy or must stay untouched while the job runs.
        A Heartbeat used outside a Worker without ``connect`` runs the job without beats.
        A failed beat is logged on ``djmw.heartbeat`` and retried at the next interval;
        it never reaches the job. When the row is no longer locked by this worker (its
        lock had already expired and another worker took it), a warning is logged and
        the beats stop. A job without ``locked_by`` (unit tests) runs without beats.

        With a short worker max_run_time (the lock expiry), give long jobs their own
        limit with ``EnforceTimeout(max_run_time=...)``, which may exceed the worker's.

        Limits: a handler looping in C while holding
        the GIL starves the beat thread like every other thread, unless EnforceTimeout's
        ``process`` mode runs it in a child process. A frozen worker (SIGSTOP, a
        suspended VM) stops beating too, so its lock expires as without a heartbeat.
    """

    interval: float = attrs.field(default=60.0, validator=positive_number)
    connect: BackendFactory | None = None

    def with_backend(self, connect: BackendFactory) -> Middleware:
        """Return this Heartbeat beating through ``connect`` unless it has its own."""
        return self if self.connect is not None else attrs.evolve(self, connect=connect)

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain while a background thread refreshes the job's lock."""
        if job.locked_by is None or self.connect is None:
            return call_next(job)
        done = threading.Event()
        beat = threading.Thread(
            target=self._beat, args=(job, done), name=f"djmw heartbeat job {job.id}", daemon=True
        )
        beat.start()
        try:
            return call_next(job)
        finally:
            done.set()
            beat.join(_JOIN_SECONDS)
            if beat.is_alive():
                # A late beat is harmless: it only matches while this worker holds the row.
                logger.warning(
                    "%s heartbeat still writing %.0f s after the job ended; leaving it",
                    job_prefix(job),
                    _JOIN_SECONDS,
                )

    def _beat(self, job: Job, done: threading.Event) -> None:
        backend: Backend | None = None
        try:
            while not done.wait(self.interval):
                try:
                    if backend is None:
                        backend = self._connect(job)
                    if not backend.touch(job):
                        logger.warning(
                            "%s heartbeat: the row is no longer locked by %s (its lock expired "
                            "and another worker took it, or the row is gone); beats stop",
                            job_prefix(job),
                            job.locked_by,
                        )
                        return
                except Exception as exc:  # logged; the job must never see it
                    logger.error("%s heartbeat failed: %s", job_prefix(job), exc)
        finally:
            if backend is not None:
                with contextlib.suppress(Exception):
                    backend.close()

    def _connect(self, job: Job) -> Backend:
        if self.connect is None:  # pragma: no cover - __call__ runs no beat without it
            msg = "Heartbeat: no connect factory"
            raise RuntimeError(msg)
        backend = self.connect()
        try:
            # Also learns the column precision, so beats stamp locked_at as the worker does.
            backend.check_schema()
        except BaseException:
            backend.close()
            raise
        return backend
