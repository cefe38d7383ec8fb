"""Crash accounting: a job whose worker died is charged a failed attempt, through the chain.

delayed_job never counts an attempt for a job whose worker died (kill -9, the OOM killer,
a segfault): the lock is cleared and the job runs again, forever if it is what kills the
worker (delayed_job issue 415). djmw charges the attempt instead. The worker that finds
the dead worker's row (the same name restarting, or any worker through the registry,
``djmw.registry``) runs the job's failure path: the worker's own chain with the handler
replaced by one that raises ``WorkerDied``. So everything that decides a failed attempt
decides this one, as for a job that raised: the handler's ``config(job)``
(``max_attempts``, ``reschedule_at``, ``destroy_failed``), ``ScheduleRetry``'s
``max_attempts`` and backoff, ``MarkFailed``, the ``failure(job)`` hooks, and your own
middlewares.

Where: below the loop and the registry, above the middlewares and the backends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from djmw._clock import Clock
from djmw.backends import Backend
from djmw.chain import CallNext, Middleware, compose
from djmw.errors import WorkerDied
from djmw.job import Job
from djmw.logs import job_prefix, worker_prefix
from djmw.middleware import (
    DecodeYAML,
    EnforceTimeout,
    Heartbeat,
    LogOutcome,
    OnlyRegistered,
    ScheduleRetry,
    delayed_job_backoff,
)
from djmw.outcome import Failed, Outcome, Rescheduled, error_text

#: Middlewares that concern a running handler only; a crashed attempt runs nothing.
#: LogOutcome would log RUNNING: the rescue logs its own lines.
SKIPPED = (EnforceTimeout, Heartbeat, OnlyRegistered, LogOutcome)


def running_and_waiting(held: Sequence[Job]) -> tuple[Job | None, list[Job]]:
    """Split the rows a dead worker held into the one it was running and the rest.

    ``held`` is in reserve order (``Backend.locked_jobs``). A worker holds one row, or,
    with ``prefetch=K``, up to K claimed together: the running one had its locked_at
    refreshed when it started, the waiting ones keep the claim's. So the running row is
    the first of those with the latest locked_at (on whole-second columns a row started
    in the claim's second ties with the rows behind it, and runs first of them). The
    rest never started: they are given back, attempts unchanged. Limits: a row whose
    outcome could not be written stays locked too; it is given back like a waiting one
    (it runs again, as after delayed_job's lock expiry).
    """
    if not held:
        return None, []
    latest = max(job.locked_at or datetime.min for job in held)
    running = next(job for job in held if (job.locked_at or datetime.min) == latest)
    return running, [job for job in held if job is not running]


def failure_path(middlewares: Sequence[Middleware]) -> list[Middleware]:
    """Return the chain a crashed attempt goes through: ``middlewares`` minus ``SKIPPED``."""
    return [m for m in middlewares if not isinstance(m, SKIPPED)]


def _fixed_clock(at: datetime) -> Clock:
    def clock() -> datetime:
        return at

    return clock


@attrs.frozen(kw_only=True)
class _LogCrash:
    """The rescue's log lines, in LogOutcome's words, without RUNNING (nothing runs).

    Sits right inside DecodeYAML, so it names the job as LogOutcome would.
    """

    rescuer: str
    dead: str
    died_at: datetime
    logger: logging.Logger

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        prefix = job_prefix(attrs.evolve(job, locked_by=self.rescuer))
        self.logger.info(
            "%s was left locked by worker %s, which died (last seen %s): charging the attempt",
            prefix,
            self.dead,
            self.died_at.isoformat(sep=" ", timespec="seconds"),
        )
        outcome = call_next(job)
        if isinstance(outcome, Rescheduled | Failed):
            self.logger.error(
                "%s FAILED (%d prior attempts) with %s: %s",
                prefix,
                job.attempts,
                type(outcome.error).__name__,
                outcome.error,
            )
        if isinstance(outcome, Failed) and outcome.exhausted:
            self.logger.error(
                "%s FAILED permanently because of %d consecutive failures",
                prefix,
                outcome.attempts,
            )
        elif isinstance(outcome, Failed):
            self.logger.error("%s FAILED permanently with %s", prefix, outcome.error)
        return outcome


@attrs.frozen(kw_only=True)
class CrashAccounting:
    """Charge a failed attempt to a job whose worker died, and write its outcome.

    Args:
        middlewares: the worker's chain, bound to its connection factory; the crashed
            attempt goes through ``failure_path(middlewares)``.
        name: the rescuing worker's name (its log lines and the lock it writes under).
        logger: where the rescue's lines go; LogOutcome's logger when the chain has one.

    How max_attempts and the backoff are known for a job that is not run: the job goes
    through the worker's own chain, so the handler's ``config(job)`` applies when this
    worker has the job's handler (DecodeYAML then RunHooks), then ScheduleRetry's
    ``max_attempts`` (default 25) and backoff (default attempts⁴ + 5 s). A job whose
    handler this worker does not have gets the chain's defaults. If the chain raises
    instead of returning an outcome (a chain without CountAttempts, a broken
    middleware), the attempt is still charged, with the first ScheduleRetry's settings or
    delayed_job's (25, attempts⁴ + 5 s): a crash is never free.

    The failure time: inside the chain ``job.clock()`` returns ``died_at``, the dead
    worker's last sign of life (its last heartbeat or the lock, whichever is later), so
    the next run is due ``backoff(attempts)`` after the crash, as after any failure, not
    after its detection. A job whose backoff has passed by then runs again at once.
    """

    middlewares: tuple[Middleware, ...]
    name: str
    logger: logging.Logger

    def outcome(self, job: Job, dead: str, died_at: datetime) -> Outcome:
        """Run the crashed attempt of ``job`` through the failure path; return its outcome."""
        error = WorkerDied(dead, job_id=job.id)

        def crashed(job: Job) -> object:
            raise error

        path = failure_path(self.middlewares)
        inside_decode = next((i + 1 for i, m in enumerate(path) if isinstance(m, DecodeYAML)), 0)
        log = _LogCrash(rescuer=self.name, dead=dead, died_at=died_at, logger=self.logger)
        path.insert(inside_decode, log)
        chain = compose(path, crashed)
        at_crash = attrs.evolve(job, clock=_fixed_clock(died_at))
        try:
            outcome = chain(at_crash)
        except Exception as exc:  # the crash must be charged whatever the chain does
            self.logger.error(
                "%s the failure path raised %s: %s; charging the attempt with the default "
                "schedule\n%s",
                job_prefix(job),
                type(exc).__name__,
                exc,
                error_text(exc),
            )
            outcome = self._default(job, error, died_at)
        if isinstance(outcome, Rescheduled | Failed) and outcome.error is error:
            error.with_traceback(None)  # a crash has no backtrace: last_error is the message
        return outcome

    def _default(self, job: Job, error: WorkerDied, died_at: datetime) -> Outcome:
        retry = next((m for m in self.middlewares if isinstance(m, ScheduleRetry)), None)
        max_attempts = retry.max_attempts if retry is not None else 25
        attempts = job.attempts + 1
        if attempts >= max_attempts:
            return Failed(attempts=attempts, error=error, exhausted=True)
        delay = retry.backoff(attempts) if retry is not None else delayed_job_backoff(attempts)
        step = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
        return Rescheduled(run_at=died_at + step, attempts=attempts, error=error)

    def charge(self, backend: Backend, job: Job, dead: str, died_at: datetime) -> Outcome:
        """Charge ``job`` (locked by this worker now) for ``dead``'s crash; write the outcome.

        The write is guarded by ``job.locked_by`` like every outcome; a lost lock is
        logged by the backend and the outcome dropped.
        """
        outcome = self.outcome(job, dead, died_at)
        backend.apply(job, outcome)
        return outcome

    def recover_own(self, backend: Backend, last_seen: datetime | None) -> int:
        """Charge the row this worker's name was running at start; return how many (0 or 1).

        The rows were left by an earlier incarnation of this worker that died: the name is
        unique among live workers. ``last_seen`` is that incarnation's last heartbeat,
        when the registry knows it. Rows it had claimed ahead and not started
        (``running_and_waiting``) are unlocked with attempts unchanged.
        """
        running, waiting = running_and_waiting(backend.locked_jobs(self.name))
        self.give_back(backend, waiting, self.name)
        if running is None:
            return 0
        seen = [t for t in (last_seen, running.locked_at) if t is not None]
        now = backend.clock()
        died_at = min(max(seen), now) if seen else now
        self.charge(backend, running, self.name, died_at)
        return 1

    def give_back(self, backend: Backend, waiting: Sequence[Job], dead: str) -> None:
        """Unlock rows ``dead`` claimed ahead and never started, attempts unchanged."""
        for job in waiting:
            backend.unlock(job)
        if waiting:
            self.logger.info(
                "%s Gave back %d jobs that worker %s had claimed ahead and not started, "
                "attempts unchanged",
                worker_prefix(self.name),
                len(waiting),
                dead,
            )
