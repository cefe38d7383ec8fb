"""The running loop of one worker: reserve a job, run the chain, write the outcome, repeat.

``Worker`` holds the settings and the public lifecycle; it builds one ``Loop`` when it
starts and delegates to it. The loop owns the running state: the connection, the stop
flag, the job in flight and the ids it gave back. It is delayed_job's ``work_off`` and
``start`` loop, with djmw additions: a finished job's outcome is written together with
the next claim (``Backend.finish_and_reserve``), one round trip for both; with
``prefetch`` it claims several rows at once (``djmw.prefetch``); and an idle worker
sleeps only until the next run_at it knows of, if that comes before ``sleep_delay``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

import attrs

from djmw._interrupt import drain_pending, raise_in_thread
from djmw.backends import Backend, ReserveRequest
from djmw.chain import CallNext
from djmw.errors import (
    BackendError,
    DjmwError,
    JobNotRegistered,
    OutcomeNotRecorded,
    ReserveErrorsExceeded,
    WorkerShutdown,
)
from djmw.health import Health
from djmw.job import Job
from djmw.logs import job_prefix, worker_prefix
from djmw.outcome import Outcome, Succeeded, error_text
from djmw.prefetch import Prefetch
from djmw.registry import WorkerRegistry
from djmw.rescue import CrashAccounting

Status = Literal["new", "running", "sleeping", "stopped", "crashed", "done"]

#: How many given-back or crashed job ids a worker remembers and skips.
GIVE_BACK_MEMORY = 500


@attrs.frozen
class Finished:
    """A job that ran, with the outcome still to be written (with the next claim)."""

    job: Job
    outcome: Outcome


@attrs.frozen
class JobRun:
    """What running one reserved job gave.

    Attributes:
        verdict: ``succeeded`` or ``failed`` (the chain's outcome, or an error that
            escaped the chain, row unlocked), or ``given_back`` (class-aware: not ours,
            row unlocked with attempts unchanged).
        finished: the outcome to write, or None when the row was already unlocked.
    """

    verdict: Literal["succeeded", "failed", "given_back"]
    finished: Finished | None = None


@attrs.frozen(kw_only=True)
class LoopSettings:
    """The part of a Worker's settings the loop reads on every turn."""

    name: str
    request: Callable[[frozenset[int]], ReserveRequest]
    batch_size: int
    sleep_delay: float
    exit_on_complete: bool
    max_reserve_errors: int
    logger: logging.Logger
    health: Health = attrs.field(factory=Health)
    #: Called with the worker's connection before each batch (the Pruner); errors are
    #: logged, never fatal.
    between_batches: Callable[[Backend], object] | None = None
    prefetch: int = 1


class Loop:
    """One worker's running state and loop; made by ``Worker.prepare()``.

    Args:
        settings: what the loop reads from the worker.
        backend: the worker's connection (this loop closes it when it ends).
        chain: the composed middleware chain.
        crash: charges the rows this worker's name still holds at start (an earlier
            incarnation died running them); None unlocks them uncharged.
        registry: the worker registry (started with the loop, polled for dead workers
            before each batch, stopped at the end); None runs without it.

    Limits: one thread runs the loop; ``stop`` and ``interrupt`` may be called from any.
    """

    def __init__(
        self,
        settings: LoopSettings,
        backend: Backend,
        chain: CallNext,
        *,
        crash: CrashAccounting | None = None,
        registry: WorkerRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.backend: Backend | None = backend
        self.chain = chain
        self.crash = crash
        self.registry = registry
        self.status: Status = "new"
        self.error: BaseException | None = None
        self.current_job: Job | None = None
        self.interrupted = False
        #: Jobs this loop ran, by verdict, over all its batches.
        self.succeeded = 0
        self.failed = 0
        self._stop = threading.Event()
        self._reserve_errors = 0
        #: The last reserve's error, None after a reserve that worked: an empty batch
        #: caused by an error is not an empty queue.
        self.reserve_error: BaseException | None = None
        self._given_back: dict[int, None] = {}
        self._job_thread: int | None = None
        self._job_lock = threading.Lock()
        self._prefetch = (
            Prefetch(settings.prefetch, settings.logger) if settings.prefetch > 1 else None
        )

    @property
    def _prefix(self) -> str:
        return worker_prefix(self.settings.name)

    @property
    def _db(self) -> Backend:
        if self.backend is None:
            msg = "the worker's connection is closed; make a new Worker to run again."
            raise DjmwError(msg)
        return self.backend

    # -- control, from any thread ---------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop after the current job; wakes the loop from its idle sleep."""
        if not self._stop.is_set():
            self.settings.logger.info("%s Exiting...", self._prefix)
        self._stop.set()

    def interrupt(self) -> bool:
        """Stop, and raise WorkerShutdown in the running job; True if a job was running."""
        self.stop()
        with self._job_lock:
            self.interrupted = True
            if self._job_thread is None:
                return False
            raise_in_thread(self._job_thread, WorkerShutdown)
            return True

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        """Run until stopped, done (exit_on_complete) or crashed; closes the connection.

        Every way out logs one line saying why: ``Exiting...`` (stopped), ``No more jobs
        available. Exiting`` (done), ``Exiting: interrupted by a hard shutdown``, or
        ``Exiting: ...`` with the error that crashed it (status ``crashed``, ``error`` set).
        """
        log, prefix = self.settings.logger, self._prefix
        log.info("%s Starting job worker", prefix)
        self.status = "running"
        self.settings.health.loop_started()
        try:
            self.recover_at_start()
            while not self._stop.is_set():
                if self.registry is not None:
                    self.registry.poll(self._db)
                self._between_batches()
                started = time.monotonic()
                succeeded, failed = self.batch(self.settings.batch_size, keep_prefetched=True)
                self.succeeded += succeeded
                self.failed += failed
                count = succeeded + failed
                if count:
                    rate = count / max(time.monotonic() - started, 1e-9)
                    log.info(
                        "%s %d jobs processed at %.4f j/s, %d failed", prefix, count, rate, failed
                    )
                    continue
                if self.settings.exit_on_complete and self.reserve_error is None:
                    log.info("%s No more jobs available. Exiting", prefix)
                    self.status = "done"
                    return
                self.status = "sleeping"
                self._db.wait_for_jobs(self.idle_delay(), self._stop)
                if self.status == "sleeping":
                    self.status = "running"
            self.status = "stopped"
        except WorkerShutdown:
            self.status = "stopped"
            log.info("%s Exiting: interrupted by a hard shutdown", prefix)
        except ReserveErrorsExceeded as exc:
            self.status, self.error = "crashed", exc
            log.error("%s Exiting: %s", prefix, exc)
            raise
        except BaseException as exc:
            self.status, self.error = "crashed", exc
            log.error(
                "%s Exiting: the worker crashed with %s: %s\n%s",
                prefix,
                type(exc).__name__,
                exc,
                error_text(exc),
            )
            raise
        finally:
            self.settings.health.loop_ended()
            self.close()

    def close(self, *, clear_locks: bool = True) -> None:
        """Clear this worker's locks (unless told not to) and close the connection."""
        if self.backend is None:
            return
        self.give_back_prefetched()
        cleared = self.clear_locks() if clear_locks else True
        if self.registry is not None:
            # A worker whose locks could not be cleared stays registered: once its
            # heartbeat is old, another worker rescues them.
            self.registry.stop(self.backend, unregister=cleared)
        backend, self.backend = self.backend, None
        try:
            backend.close()
        except Exception as exc:  # closing must not hide why the loop ended
            self.settings.logger.error("%s Could not close the connection: %s", self._prefix, exc)

    def clear_locks(self) -> bool:
        """delayed_job's ClearLocks for this worker's name; logs instead of raising.

        Returns False when the locks could not be cleared.
        """
        try:
            self._db.clear_locks(self.settings.name)
        except Exception as exc:  # a broken database is reported by the reserve that follows
            self.settings.logger.error("%s Could not clear locks: %s", self._prefix, exc)
            return False
        return True

    def recover_at_start(self) -> None:
        """Register, charge the rows this worker's name still holds (its earlier
        incarnation died running them), then clear the rest (failed rows), as ClearLocks.

        Logs instead of raising, like ``clear_locks``.
        """
        last_seen = None
        if self.registry is not None:
            last_seen = self.registry.start(self._db, lambda: self.current_job)
        if self.crash is not None:
            try:
                self.crash.recover_own(self._db, last_seen)
            except DjmwError as exc:
                self.settings.logger.error(
                    "%s Could not charge the jobs an earlier run left locked: %s",
                    self._prefix,
                    exc,
                )
        self.clear_locks()

    def _between_batches(self) -> None:
        task = self.settings.between_batches
        if task is None:
            return
        try:
            task(self._db)
        except Exception as exc:  # housekeeping must never stop the worker
            self.settings.logger.error("%s Housekeeping failed: %s", self._prefix, exc)

    def give_back_prefetched(self) -> None:
        """Unlock the rows claimed ahead and not started, attempts unchanged; logs errors."""
        if self._prefetch is None or not len(self._prefetch):
            return
        try:
            count = self._prefetch.give_back(self._db)
        except DjmwError as exc:
            self.settings.logger.error(
                "%s Could not give back prefetched jobs: %s", self._prefix, exc
            )
            return
        self.settings.logger.info(
            "%s Gave back %d prefetched jobs, attempts unchanged", self._prefix, count
        )

    def idle_delay(self) -> float:
        """How long to sleep when idle: ``sleep_delay``, or until the earliest future
        run_at the table holds for this worker, if that comes sooner."""
        delay = self.settings.sleep_delay
        try:
            request = self._request()
            upcoming = self._db.next_run_at(request)
        except (BackendError, OSError) as exc:
            self.settings.logger.debug("%s next run_at unknown: %s", self._prefix, exc)
            return delay
        if upcoming is None:
            return delay
        # A millisecond past run_at, so that the row is due when the loop wakes.
        return min(delay, max((upcoming - request.now).total_seconds(), 0.0) + 0.001)

    def batch(self, num: int, *, keep_prefetched: bool = False) -> tuple[int, int]:
        """Run up to ``num`` jobs; return ``(succeeded, failed)``.

        With prefetch, rows claimed ahead and not started are given back at the end
        unless ``keep_prefetched`` (the running loop keeps them for its next batch).
        """
        succeeded = failed = 0
        finished: Finished | None = None
        try:
            for _ in range(num):
                if self._stop.is_set():
                    break
                job, finished = self._reserve(finished), None
                if job is None:
                    break
                run = self._run_one(job)
                finished = run.finished
                if run.verdict == "succeeded":
                    succeeded += 1
                elif run.verdict == "failed":
                    failed += 1
        finally:
            if finished is not None:
                self._finish(finished)
            if not keep_prefetched:
                self.give_back_prefetched()
        return succeeded, failed

    def _request(self) -> ReserveRequest:
        return self.settings.request(frozenset(self._given_back))

    def _reserve(self, finished: Finished | None = None) -> Job | None:
        """Claim the next job; ``finished``'s outcome is written in the same transaction."""
        try:
            if self._prefetch is not None:
                finish = None if finished is None else (finished.job, finished.outcome)
                job = self._prefetch.take(self._db, self._request, finish)
            elif finished is None:
                job = self._db.reserve(self._request())
            else:
                job = self._db.finish_and_reserve(finished.job, finished.outcome, self._request())
        except OutcomeNotRecorded as exc:
            if finished is not None:
                self._not_recorded(finished.job, exc)
            return self._reserve()
        except (BackendError, OSError) as exc:
            self.settings.health.reserved(ok=False)
            self.reserve_error = exc
            self._reserve_errors += 1
            self.settings.logger.info("%s Error while reserving job: %s", self._prefix, exc)
            if self._reserve_errors >= self.settings.max_reserve_errors:
                msg = (
                    f"{self._reserve_errors} consecutive reserve errors; the last was: {exc}. "
                    "Check the database, then restart the worker."
                )
                raise ReserveErrorsExceeded(msg) from exc
            return None
        self._reserve_errors = 0
        self.settings.health.reserved(ok=True, busy=job is not None)
        self.reserve_error = None
        return job

    def _run_chain(self, job: Job) -> Outcome:
        with self._job_lock:
            if self.interrupted:
                raise WorkerShutdown
            self.current_job, self._job_thread = job, threading.get_ident()
        try:
            return self.chain(job)
        finally:
            with self._job_lock:
                if self.interrupted and self._job_thread is not None:
                    drain_pending()  # cancel one not yet delivered (we are the job thread)
                self.current_job, self._job_thread = None, None

    def _skip(self, job_id: int) -> None:
        self._given_back[job_id] = None
        if len(self._given_back) > GIVE_BACK_MEMORY:
            del self._given_back[next(iter(self._given_back))]

    def _run_one(self, job: Job) -> JobRun:
        try:
            outcome = self._run_chain(job)
        except WorkerShutdown:
            self.settings.logger.info(
                "%s interrupted by shutdown; unlocking it, attempts unchanged", job_prefix(job)
            )
            self._db.unlock(job)
            raise
        except JobNotRegistered as exc:
            self.settings.logger.debug("%s %s", self._prefix, exc)
            self._db.unlock(job)
            self._skip(job.id)
            return JobRun("given_back")
        except BaseException as exc:
            # Escaped the whole chain: a bug or an infrastructure error, not the job's fault
            # (the handler's own SystemExit and the like are failed attempts: JobAborted).
            self.settings.logger.error(
                "%s escaped the middleware chain with %s: %s; unlocking it, attempts unchanged\n%s",
                job_prefix(job),
                type(exc).__name__,
                exc,
                error_text(exc),
            )
            self._db.unlock(job)
            # Skip it for a while: the same bug would otherwise take it again at once.
            self._skip(job.id)
            return JobRun("failed")
        verdict: Literal["succeeded", "failed"] = (
            "succeeded" if isinstance(outcome, Succeeded) else "failed"
        )
        return JobRun(verdict, Finished(job, outcome))

    def _finish(self, finished: Finished) -> None:
        """Write a finished job's outcome on its own (no next job to claim with it)."""
        try:
            self._db.apply(finished.job, finished.outcome)
        except Exception as exc:  # the worker must outlive any row it cannot write
            self._not_recorded(finished.job, exc)

    def _not_recorded(self, job: Job, exc: BaseException) -> None:
        self.settings.logger.error(
            "%s outcome could not be recorded: %s: %s; the row stays locked by this "
            "worker and runs again when a worker of this name reserves after a restart, "
            "or any worker after max_run_time.",
            job_prefix(job),
            type(exc).__name__,
            exc,
        )
        self._skip(job.id)
