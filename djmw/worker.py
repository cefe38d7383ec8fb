"""Worker: delayed_job's loop. Reserve a job, run the chain, apply the outcome, repeat."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import attrs

from djmw._clock import Clock, local_now, utc_now
from djmw._interrupt import raise_in_thread
from djmw.backends import Backend, ReserveRequest, open_backend, parse_url
from djmw.chain import CallNext, Middleware, compose
from djmw.errors import BackendError, ConfigurationError, DjmwError, OutcomeNotRecorded
from djmw.handlers import Handlers
from djmw.middleware import DecodeYAML, default_middlewares
from djmw.middleware.log import LOGGER_NAME, job_prefix
from djmw.middleware.registered import JobNotRegistered, OnlyRegistered
from djmw.outcome import Succeeded, error_text

Status = Literal["new", "running", "sleeping", "stopped", "crashed", "done"]
BackendFactory = Callable[[], Backend]

#: How many given-back or crashed job ids a worker remembers and skips.
_GIVE_BACK_MEMORY = 500


def default_worker_name(prefix: str = "") -> str:
    """Return delayed_job's default worker name: ``<prefix>host:<hostname> pid:<pid>``."""
    try:
        return f"{prefix}host:{socket.gethostname()} pid:{os.getpid()}"
    except OSError:  # pragma: no cover - delayed_job's fallback when the lookup fails
        return f"{prefix}pid:{os.getpid()}"


class ReserveErrorsExceeded(BackendError):
    """Too many consecutive reserve errors (delayed_job's FatalBackendError)."""


class WorkerShutdown(BaseException):
    """Raised into a running job by ``Worker.interrupt()`` at a hard shutdown.

    A BaseException, so that no middleware (they catch Exception) turns it into a failed
    attempt: the worker unlocks the row with attempts unchanged.
    """


def _optional_int(name: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            msg = f"Worker: {name} must be an integer or None, got {value!r}."
            raise ConfigurationError(msg)

    return check


def _positive_number(name: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            msg = f"Worker: {name} must be a positive number, got {value!r}."
            raise ConfigurationError(msg)

    return check


def _optional_str(name: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            msg = f"Worker: {name} must be a string, got {value!r}."
            raise ConfigurationError(msg)

    return check


def _boolean(name: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, bool):
            msg = f"Worker: {name} must be true or false, got {value!r}."
            raise ConfigurationError(msg)

    return check


def _redacted(url: object) -> str:
    if not isinstance(url, str):
        return repr(url)
    try:
        return repr(parse_url(url).redacted)
    except DjmwError:
        return "'<unparseable URL>'"


def _queues(value: object) -> tuple[str | None, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [q.strip() for q in value.split(",") if q.strip()]
    if not isinstance(value, list | tuple | set | frozenset) or not all(
        q is None or isinstance(q, str) for q in value
    ):
        msg = (
            f"Worker: queues must be a list of queue names (None = the NULL queue), got {value!r}."
        )
        raise ConfigurationError(msg)
    return tuple(value) or None


def _middlewares(value: object) -> tuple[Middleware, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        msg = f"Worker: middlewares must be a list, got {type(value).__name__}."
        raise ConfigurationError(msg)
    for index, middleware in enumerate(value):
        if not callable(middleware):
            msg = (
                f"Worker: middlewares[{index}] = {middleware!r} is not callable; a middleware "
                "is a function or object called as (job, call_next) -> Outcome."
            )
            raise ConfigurationError(msg)
    return tuple(value)


@attrs.define(kw_only=True, eq=False)
class Worker:
    """A delayed_job worker whose job execution is a chain of middlewares.

    ``start()`` runs the loop in a background thread and returns at once;
    ``work_off(n)`` runs up to n ready jobs in the calling thread; ``run()`` runs the
    loop in the calling thread (the CLI uses it).

    Args:
        database: a URL (``mysql://``, ``mysql2://``, ``sqlite:///path``); None reads
            ``DATABASE_URL``. Ignored when ``backend`` is given.
        handlers: the perform functions, by job name.
        middlewares: the chain, first = outermost; None = ``default_middlewares(handlers)``.
        queues: work only these queues (None = all, NULL included; a None entry = NULL).
        min_priority / max_priority: inclusive bounds; 0 is an active bound.
        name: the worker name stored in ``locked_by``; default ``host:<h> pid:<p>``.
            Must be unique among running workers.
        table: the delayed_jobs table name (ActiveRecord's prefix included).
        max_run_time: seconds (default 4 h): the job time limit and the lock expiry.
        sleep_delay: seconds to sleep after an empty batch (default 5).
        batch_size: jobs per batch before the rate line (default 100).
        exit_on_complete: leave the loop when a batch finds nothing (status ``done``).
        max_reserve_errors: consecutive reserve errors before giving up (default 10).
        on_reserve_errors: ``stop`` (status ``crashed``) or ``raise`` (ReserveErrorsExceeded).
        timezone: ``utc`` (default) or ``local``, as ActiveRecord's default_timezone.
        clock: overrides the clock that ``timezone`` picks (for tests).
        backend: a backend factory (callable returning a Backend) instead of ``database``.
        backend_options: extra options for the backend (e.g. ``reserve_sql``).
        class_aware: reserve only jobs this worker has a perform function for (filtered
            in SQL on the handler text, confirmed after decoding); a job taken by a false
            match is unlocked at once with attempts unchanged. For tables shared with
            Ruby workers. Off by default.
        logger: where worker lines go; default the ``djmw`` logger.
    """

    database: str | None = attrs.field(default=None, repr=_redacted)
    handlers: Handlers = attrs.field(factory=Handlers)
    middlewares: tuple[Middleware, ...] | None = attrs.field(default=None, converter=_middlewares)
    queues: tuple[str | None, ...] | None = attrs.field(default=None, converter=_queues)
    min_priority: int | None = attrs.field(default=None, validator=_optional_int("min_priority"))
    max_priority: int | None = attrs.field(default=None, validator=_optional_int("max_priority"))
    name: str | None = attrs.field(default=None, validator=_optional_str("name"))
    table: str = "delayed_jobs"
    max_run_time: float = attrs.field(
        default=4 * 3600.0, validator=_positive_number("max_run_time")
    )
    sleep_delay: float = attrs.field(default=5.0, validator=_positive_number("sleep_delay"))
    batch_size: int = attrs.field(default=100, validator=_positive_number("batch_size"))
    exit_on_complete: bool = attrs.field(default=False, validator=_boolean("exit_on_complete"))
    max_reserve_errors: int = attrs.field(
        default=10, validator=_positive_number("max_reserve_errors")
    )
    on_reserve_errors: Literal["stop", "raise"] = "stop"
    timezone: Literal["utc", "local"] = "utc"
    clock: Clock | None = None
    backend: BackendFactory | None = None
    backend_options: dict[str, Any] = attrs.field(factory=dict)
    class_aware: bool = attrs.field(default=False, validator=_boolean("class_aware"))
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger(LOGGER_NAME))

    _status: Status = attrs.field(default="new", init=False)
    _stop: threading.Event = attrs.field(factory=threading.Event, init=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False)
    _chain: CallNext | None = attrs.field(default=None, init=False)
    _db: Backend | None = attrs.field(default=None, init=False)
    _reserve_errors: int = attrs.field(default=0, init=False)
    _given_back: dict[int, None] = attrs.field(factory=dict, init=False)
    _current: Any = attrs.field(default=None, init=False)
    _job_thread: int | None = attrs.field(default=None, init=False)
    _job_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _interrupted: bool = attrs.field(default=False, init=False)
    error: BaseException | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.handlers, Handlers):
            msg = f"Worker: handlers must be a djmw.Handlers, got {type(self.handlers).__name__}."
            raise ConfigurationError(msg)
        if self.on_reserve_errors not in ("stop", "raise"):
            msg = f"Worker: on_reserve_errors must be 'stop' or 'raise', got {self.on_reserve_errors!r}."
            raise ConfigurationError(msg)
        if self.timezone not in ("utc", "local"):
            msg = f"Worker: timezone must be 'utc' or 'local', got {self.timezone!r}."
            raise ConfigurationError(msg)
        if self.name is None:
            self.name = default_worker_name()
        if len(self.name.encode()) > 255:
            msg = f"Worker: name must fit locked_by (255 bytes), got {len(self.name)} characters."
            raise ConfigurationError(msg)

    # -- public API ---------------------------------------------------------------------
    @property
    def status(self) -> Status:
        """``new``, ``running``, ``sleeping``, ``stopped``, ``crashed`` or ``done``."""
        return self._status

    @property
    def worker_name(self) -> str:
        """The name this worker writes into ``locked_by``."""
        return self.name or default_worker_name()

    @property
    def now(self) -> Clock:
        """The one clock every timestamp comes from."""
        if self.clock is not None:
            return self.clock
        return local_now if self.timezone == "local" else utc_now

    def prepare(self) -> None:
        """Connect, check the table and compose the chain; raises on bad configuration.

        Called by ``start``, ``run`` and ``work_off``; calling it again does nothing.
        """
        if self._chain is not None:
            return
        middlewares = (
            list(self.middlewares)
            if self.middlewares is not None
            else default_middlewares(self.handlers)
        )
        if self.class_aware:
            middlewares = _with_registration_check(middlewares, self.handlers)
        self._chain = compose(middlewares, self.handlers)
        if self.backend is not None:
            self._db = self.backend()
        else:
            try:
                self._db = open_backend(
                    self.database, table=self.table, clock=self.now, **self.backend_options
                )
            except TypeError as exc:
                msg = (
                    f"Worker: backend_options {sorted(self.backend_options)} are not all known "
                    f"to this database's backend ({exc}); MySQL/MariaDB accepts reserve_sql, "
                    "write_retry_seconds and connect_attempts; SQLite accepts busy_timeout."
                )
                raise ConfigurationError(msg) from exc
        check = getattr(self._db, "check_schema", None)
        if callable(check):
            try:
                check()
            except BaseException:
                self._db.close()
                raise

    def start(self) -> Worker:
        """Prepare, then run the loop in a background thread; returns at once."""
        if self._thread is not None:
            msg = "Worker: start() was already called; make a new Worker to run again."
            raise ConfigurationError(msg)
        self.prepare()
        self._status = "running"
        self._thread = threading.Thread(target=self._run_quietly, name=f"djmw {self.worker_name}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def run(self) -> None:
        """Run the loop in this thread until stopped or (with exit_on_complete) done."""
        self.prepare()
        self._status = "running"
        self._loop()

    def stop(self) -> None:
        """Ask the loop to stop after the current job; wakes it from its idle sleep."""
        if not self._stop.is_set():
            self.logger.info("[Worker(%s)] Exiting...", self.worker_name)
        self._stop.set()

    def interrupt(self) -> bool:
        """Hard shutdown: stop, and raise WorkerShutdown inside the running job, if any.

        The job's row is then unlocked with attempts unchanged. Returns True if a job was
        running. Limits: the exception lands at the job's next Python bytecode, so a job
        blocked in a C call is interrupted only when that call returns; a job running
        under ``EnforceTimeout(mode="process")`` is stopped by killing its child process.
        """
        self.stop()
        with self._job_lock:
            self._interrupted = True
            if self._job_thread is None:
                return False
            raise_in_thread(self._job_thread, WorkerShutdown)
            return True

    @property
    def interrupted(self) -> bool:
        """True once ``interrupt()`` was called (a hard shutdown)."""
        return self._interrupted

    @property
    def current_job(self) -> Any:
        """The job this worker is running now, or None."""
        return self._current

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background thread started by ``start()``."""
        if self._thread is not None:
            self._thread.join(timeout)

    def work_off(self, num: int = 100) -> tuple[int, int]:
        """Run up to ``num`` ready jobs in this thread; return ``(succeeded, failed)``."""
        self.prepare()
        return self._batch(num)

    def close(self, *, clear_locks: bool = True) -> None:
        """Close the connection after ``work_off``; first clear this worker's locks.

        ``clear_locks=False`` leaves the rows as delayed_job's ``work_off`` does (a
        failed row keeps the name of the worker that failed it).
        """
        if self._db is not None:
            if clear_locks:
                self._clear_locks()
            self._db.close()
            self._db = None
            self._chain = None

    # -- the loop -----------------------------------------------------------------------
    def _run_quietly(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # recorded in .error and status; the thread must not print
            self.error = exc

    def _loop(self) -> None:
        self.logger.info("[Worker(%s)] Starting job worker", self.worker_name)
        self._clear_locks()
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                succeeded, failed = self._batch(self.batch_size)
                count = succeeded + failed
                if count:
                    rate = count / max(time.monotonic() - started, 1e-9)
                    self.logger.info(
                        "[Worker(%s)] %d jobs processed at %.4f j/s, %d failed",
                        self.worker_name,
                        count,
                        rate,
                        failed,
                    )
                    continue
                if self.exit_on_complete:
                    self.logger.info(
                        "[Worker(%s)] No more jobs available. Exiting", self.worker_name
                    )
                    self._status = "done"
                    return
                self._status = "sleeping"
                self._stop.wait(self.sleep_delay)
                if self._status == "sleeping":
                    self._status = "running"
            self._status = "stopped"
        except WorkerShutdown:
            self._status = "stopped"
        except ReserveErrorsExceeded as exc:
            self._status = "crashed"
            self.error = exc
            self.logger.error("[Worker(%s)] Exiting: %s", self.worker_name, exc)
            if self.on_reserve_errors == "raise":
                raise
        except BaseException as exc:
            self._status = "crashed"
            self.error = exc
            raise
        finally:
            self._clear_locks()
            if self._db is not None:
                self._db.close()
                self._db = None

    def _clear_locks(self) -> None:
        if self._db is None:
            return
        try:
            self._db.clear_locks(self.worker_name)
        except DjmwError as exc:
            self.logger.error("[Worker(%s)] Could not clear locks: %s", self.worker_name, exc)

    def _request(self) -> ReserveRequest:
        return ReserveRequest(
            worker_name=self.worker_name,
            now=self.now(),
            max_run_time=self.max_run_time,
            queues=self.queues,
            min_priority=self.min_priority,
            max_priority=self.max_priority,
            names=tuple(self.handlers) if self.class_aware else None,
            exclude_ids=frozenset(self._given_back) if self._given_back else frozenset(),
        )

    def _reserve(self, finished: tuple[Any, Any] | None = None) -> Any:
        """Claim the next job; write ``finished``'s outcome first (in the same transaction
        when the backend can: one round trip and one commit for both)."""
        assert self._db is not None  # noqa: S101 - prepare() ran; a programming error otherwise
        combined = getattr(self._db, "finish_and_reserve", None)
        if finished is not None and combined is None:
            self._finish(finished)
        try:
            if finished is not None and combined is not None:
                job = combined(*finished, self._request())
            else:
                job = self._db.reserve(self._request())
        except OutcomeNotRecorded as exc:
            if finished is not None:
                self._not_recorded(finished[0], exc)
            return self._reserve()
        except (BackendError, OSError) as exc:
            self._reserve_errors += 1
            self.logger.info("[Worker(%s)] Error while reserving job: %s", self.worker_name, exc)
            if self._reserve_errors >= self.max_reserve_errors:
                msg = (
                    f"{self._reserve_errors} consecutive reserve errors; the last was: {exc}. "
                    "Check the database, then restart the worker."
                )
                raise ReserveErrorsExceeded(msg) from exc
            return None
        self._reserve_errors = 0
        return job

    def _batch(self, num: int) -> tuple[int, int]:
        succeeded = failed = 0
        finished = None
        try:
            for _ in range(num):
                if self._stop.is_set():
                    break
                job, finished = self._reserve(finished), None
                if job is None:
                    break
                result, finished = self._run_one(job)
                if result is None:
                    continue
                if result:
                    succeeded += 1
                else:
                    failed += 1
        finally:
            if finished is not None:
                self._finish(finished)
        return succeeded, failed

    def _run_chain(self, job: Any) -> Any:
        assert self._chain is not None  # noqa: S101 - prepare() ran
        with self._job_lock:
            if self._interrupted:
                raise WorkerShutdown
            self._current, self._job_thread = job, threading.get_ident()
        try:
            return self._chain(job)
        finally:
            with self._job_lock:
                if self._interrupted and self._job_thread is not None:
                    raise_in_thread(self._job_thread, None)  # cancel one not yet delivered
                self._current, self._job_thread = None, None

    def _skip(self, job_id: int) -> None:
        self._given_back[job_id] = None
        if len(self._given_back) > _GIVE_BACK_MEMORY:
            del self._given_back[next(iter(self._given_back))]

    def _run_one(self, job: Any) -> tuple[bool | None, Any]:
        """Run ``job``; return (success, outcome still to write) — success None = given back."""
        assert self._db is not None  # noqa: S101 - prepare() ran; a programming error otherwise
        if job.worker_max_run_time != self.max_run_time or job.clock is not self.now:
            job = attrs.evolve(job, worker_max_run_time=self.max_run_time, clock=self.now)
        try:
            outcome = self._run_chain(job)
        except WorkerShutdown:
            self.logger.info(
                "%s interrupted by shutdown; unlocking it, attempts unchanged", job_prefix(job)
            )
            self._db.unlock(job)
            raise
        except JobNotRegistered as exc:
            self.logger.debug("[Worker(%s)] %s", self.worker_name, exc)
            self._db.unlock(job)
            self._skip(job.id)
            return None, None
        except Exception as exc:
            # Escaped the whole chain: a bug or an infrastructure error, not the job's fault.
            self.logger.error(
                "%s escaped the middleware chain with %s: %s; unlocking it, attempts unchanged\n%s",
                job_prefix(job),
                type(exc).__name__,
                exc,
                error_text(exc),
            )
            self._db.unlock(job)
            # Skip it for a while: the same bug would otherwise take it again at once.
            self._skip(job.id)
            return False, None
        return isinstance(outcome, Succeeded), (job, outcome)

    def _finish(self, finished: tuple[Any, Any]) -> None:
        """Write a finished job's outcome on its own (no next job to claim with it)."""
        assert self._db is not None  # noqa: S101 - prepare() ran
        job, outcome = finished
        try:
            self._db.apply(job, outcome)
        except Exception as exc:  # the worker must outlive any row it cannot write
            self._not_recorded(job, exc)

    def _not_recorded(self, job: Any, exc: BaseException) -> None:
        self.logger.error(
            "%s outcome could not be recorded: %s: %s; the row stays locked by this "
            "worker and runs again when a worker of this name reserves after a restart, "
            "or any worker after max_run_time.",
            job_prefix(job),
            type(exc).__name__,
            exc,
        )
        self._skip(job.id)


def _with_registration_check(middlewares: list[Middleware], handlers: Handlers) -> list[Middleware]:
    check = OnlyRegistered(handlers=handlers)
    for index, middleware in enumerate(middlewares):
        if isinstance(middleware, DecodeYAML):
            return [*middlewares[: index + 1], check, *middlewares[index + 1 :]]
    return [DecodeYAML(), check, *middlewares]
