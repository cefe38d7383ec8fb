"""Worker: a delayed_job worker's settings and lifecycle; the loop itself is ``djmw.loop``."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Literal

import attrs

from djmw._clock import Clock, local_now, utc_now
from djmw._signal_safe import run_off_handler
from djmw.admin.durations import parse_duration
from djmw.admin.prune import Pruner
from djmw.backends import (
    Backend,
    ReserveRequest,
    open_backend,
    parse_url,
    registry_table_for,
)
from djmw.chain import Middleware, compose
from djmw.errors import ConfigurationError, DjmwError, ReserveErrorsExceeded
from djmw.handlers import Handlers
from djmw.health import Health
from djmw.job import Job
from djmw.logs import LOGGER_NAME
from djmw.loop import Loop, LoopSettings, Status
from djmw.middleware import LogOutcome, bind_backend, check_chain, default_middlewares
from djmw.middleware.registered import with_registration_check
from djmw.registry import RegistrySettings, WorkerRegistry
from djmw.rescue import CrashAccounting
from djmw.validation import (
    boolean,
    integer,
    middleware_list,
    one_of,
    optional,
    positive_int,
    positive_number,
    queue_list,
    string,
)

BackendFactory = Callable[[], Backend]


def default_worker_name(prefix: str = "") -> str:
    """Return delayed_job's default worker name: ``<prefix>host:<hostname> pid:<pid>``."""
    try:
        return f"{prefix}host:{socket.gethostname()} pid:{os.getpid()}"
    except OSError:  # pragma: no cover - delayed_job's fallback when the lookup fails
        return f"{prefix}pid:{os.getpid()}"


def _redacted(url: object) -> str:
    if not isinstance(url, str):
        return repr(url)
    try:
        return repr(parse_url(url).redacted)
    except DjmwError:
        return "'<unparseable URL>'"


def _name(instance: object, attribute: Any, value: object) -> None:
    if not isinstance(value, str) or not value:
        msg = f"Worker: name must be a non-empty string, got {value!r}."
        raise ConfigurationError(msg)
    if len(value.encode()) > 255:
        msg = f"Worker: name must fit locked_by (255 bytes), got {len(value)} characters."
        raise ConfigurationError(msg)


def _handlers(instance: object, attribute: Any, value: object) -> None:
    if not isinstance(value, Handlers):
        msg = f"Worker: handlers must be a djmw.Handlers, got {type(value).__name__}."
        raise ConfigurationError(msg)


#: Why a worker without perform functions refuses to start, and how to give it some.
NO_HANDLERS = (
    "Worker: no perform functions are registered (handlers is empty), so this worker "
    "has nothing to run. Give it a djmw.Handlers with at least one registered job name: "
    '`djmw work --handlers myapp.jobs:handlers`, `handlers = "myapp.jobs:handlers"` in '
    "the config file's [worker] table, or `Worker(handlers=handlers)` after "
    '`@handlers.register("NewsletterJob")`.'
)


@contextlib.contextmanager
def _ctrl_c_stops(loop: Loop) -> Iterator[None]:
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    presses = 0

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        # Counted here, acted on in another thread: stop() and interrupt() take locks the
        # loop (this same main thread) may hold at this very bytecode.
        nonlocal presses
        presses += 1
        hard = presses > 1 or loop.stopping  # is_set() takes no lock
        run_off_handler(loop.interrupt if hard else loop.stop)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_handlers(handlers: Handlers) -> None:
    if not len(handlers):
        raise ConfigurationError(NO_HANDLERS)


def _optional_duration(value: object) -> float | None:
    if value is None:
        return None
    return parse_duration(value, "Worker: prune_failed_after")


def _clock_for(worker: Worker) -> Clock:
    return local_now if worker.timezone == "local" else utc_now


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
        prefetch: rows claimed per transaction (default 1: one at a time). With K > 1
            the worker claims up to K ready rows at once, each locked by its name, runs
            them in order, refreshes each one's locked_at as it starts and gives back
            the rows not started at a graceful stop (attempts unchanged). A crash leaves
            up to K rows locked instead of one (``djmw.prefetch``).
        exit_on_complete: leave the loop when a batch finds nothing (status ``done``).
        max_reserve_errors: consecutive reserve errors before giving up (default 10).
        on_reserve_errors: ``stop`` (status ``crashed``) or ``raise`` (ReserveErrorsExceeded).
        timezone: ``utc`` (default) or ``local``, as ActiveRecord's default_timezone.
        clock: the one clock every timestamp comes from; default the one ``timezone``
            picks. With ``backend``, the backend's own clock stamps the rows.
        backend: a backend factory (callable returning a Backend) instead of ``database``.
        backend_options: options for the database's backend, checked by the backend
            (e.g. ``reserve_sql`` for MySQL, ``busy_timeout`` for SQLite).
        unknown_jobs: what to do with rows whose job this worker has no perform function
            for. ``skip`` (the default, class-aware reservation): reserve only jobs named in
            ``handlers`` (filtered in SQL, confirmed after decoding) and leave every other
            row untouched, for Ruby workers or other djmw workers; a false match is
            unlocked at once with attempts unchanged. ``fail``: delayed_job's behaviour,
            take every ready row and fail an unknown one permanently (``Job failed to
            load: no perform function is registered for ...``).
        logger: where worker lines go; default the ``djmw`` logger.
        registry: record this worker in the worker registry table, beat, and rescue the
            jobs of registered workers that died (``djmw.registry``); default True. The
            table must exist (``djmw schema`` creates it): a worker refuses to start
            without it. ``work_off`` neither registers nor rescues.
        registry_table: the registry table; None (default) = ``delayed_workers`` beside
            ``delayed_jobs`` (``<prefix>delayed_workers`` for a prefixed table).
        heartbeat_interval: seconds between registry heartbeats (default 15).
        dead_worker_timeout: a registered worker whose heartbeat is older than this is
            dead; its rows are rescued, the attempt charged (default 60; at least twice
            ``heartbeat_interval``).
        prune_failed_after: delete failed rows older than this (seconds, or ``30d``);
            None (the default) keeps them. Runs between batches, at most once per
            ``prune_interval`` across every worker of the database (``djmw.admin.Pruner``,
            which records its runs in the side table ``djmw_tasks``).
        prune_interval: seconds between two prunes of the whole fleet (default 300).
    """

    database: str | None = attrs.field(default=None, repr=_redacted)
    handlers: Handlers = attrs.field(factory=Handlers, validator=_handlers)
    middlewares: tuple[Middleware, ...] | None = attrs.field(
        default=None, converter=middleware_list
    )
    queues: tuple[str | None, ...] | None = attrs.field(default=None, converter=queue_list)
    min_priority: int | None = attrs.field(default=None, validator=optional(integer))
    max_priority: int | None = attrs.field(default=None, validator=optional(integer))
    name: str = attrs.field(factory=default_worker_name, validator=_name)
    table: str = "delayed_jobs"
    max_run_time: float = attrs.field(default=4 * 3600.0, validator=positive_number)
    sleep_delay: float = attrs.field(default=5.0, validator=positive_number)
    batch_size: int = attrs.field(default=100, validator=positive_int)
    prefetch: int = attrs.field(default=1, validator=positive_int)
    exit_on_complete: bool = attrs.field(default=False, validator=boolean)
    max_reserve_errors: int = attrs.field(default=10, validator=positive_int)
    on_reserve_errors: Literal["stop", "raise"] = attrs.field(
        default="stop", validator=one_of(("stop", "raise"))
    )
    timezone: Literal["utc", "local"] = attrs.field(
        default="utc", validator=one_of(("utc", "local"))
    )
    clock: Clock = attrs.field(default=attrs.Factory(_clock_for, takes_self=True))
    backend: BackendFactory | None = None
    backend_options: dict[str, Any] = attrs.field(factory=dict)
    unknown_jobs: Literal["skip", "fail"] = attrs.field(
        default="skip", validator=one_of(("skip", "fail"))
    )
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger(LOGGER_NAME))
    registry: bool = attrs.field(default=True, validator=boolean)
    registry_table: str | None = attrs.field(default=None, validator=optional(string))
    heartbeat_interval: float = attrs.field(default=15.0, validator=positive_number)
    dead_worker_timeout: float = attrs.field(default=60.0, validator=positive_number)
    prune_failed_after: float | None = attrs.field(default=None, converter=_optional_duration)
    prune_interval: float = attrs.field(default=300.0, validator=positive_number)

    #: What this worker's probes answer; its loop keeps it up to date.
    health: Health = attrs.field(factory=Health, init=False, repr=False)
    _loop: Loop | None = attrs.field(default=None, init=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False)
    _error: BaseException | None = attrs.field(default=None, init=False)
    _final_totals: tuple[int, int] = attrs.field(default=(0, 0), init=False)

    # -- state ------------------------------------------------------------------------------
    @property
    def status(self) -> Status:
        """``new``, ``running``, ``sleeping``, ``stopped``, ``crashed`` or ``done``."""
        return self._loop.status if self._loop is not None else "new"

    @property
    def error(self) -> BaseException | None:
        """Why the loop ended, when it crashed."""
        return self._error or (self._loop.error if self._loop is not None else None)

    @property
    def worker_name(self) -> str:
        """The name this worker writes into ``locked_by`` (the same as ``name``)."""
        return self.name

    @property
    def current_job(self) -> Job | None:
        """The job this worker is running now, or None."""
        return self._loop.current_job if self._loop is not None else None

    @property
    def totals(self) -> tuple[int, int]:
        """Jobs the running loop has run so far: (succeeded, failed)."""
        if self._loop is None:
            return self._final_totals
        return (self._loop.succeeded, self._loop.failed)

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._loop is not None and self._loop.stopping

    @property
    def interrupted(self) -> bool:
        """True once ``interrupt()`` was called (a hard shutdown)."""
        return self._loop is not None and self._loop.interrupted

    @property
    def alive(self) -> bool:
        """True while the background thread started by ``start()`` runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle --------------------------------------------------------------------------
    def connect(self) -> Backend:
        """Open a new connection to this worker's database (what ``backend`` gives, if set)."""
        if self.backend is not None:
            return self.backend()
        # A worker never creates a database: a mistyped SQLite path must fail, not leave
        # an empty file behind.
        return open_backend(
            self.database,
            table=self.table,
            clock=self.clock,
            create=False,
            **self.backend_options,
        )

    def prepare(self) -> None:
        """Connect, check the table and compose the chain; raises on bad configuration.

        Called by ``start``, ``run`` and ``work_off``; calling it again does nothing.
        """
        if self._loop is not None:
            return
        middlewares = (
            list(self.middlewares)
            if self.middlewares is not None
            else default_middlewares(self.handlers)
        )
        if self.unknown_jobs == "skip":
            middlewares = with_registration_check(middlewares, self.handlers)
        check_chain(middlewares)
        bound = bind_backend(middlewares, self.connect)
        chain = compose(bound, self.handlers)
        backend = self.connect()
        between_batches = None
        try:
            backend.check_schema()
            if self.prune_failed_after is not None:
                pruner = Pruner(
                    failed_older_than=self.prune_failed_after,
                    interval=self.prune_interval,
                    clock=self.clock,
                )
                pruner.prepare(backend)
                between_batches = functools.partial(
                    pruner.run, worker_name=self.name, logger=self.logger
                )
            _check_handlers(self.handlers)
            crash, registry = self._recovery(bound, backend)
        except BaseException:
            backend.close()
            raise
        settings = LoopSettings(
            name=self.name,
            request=self._request,
            batch_size=self.batch_size,
            sleep_delay=self.sleep_delay,
            exit_on_complete=self.exit_on_complete,
            max_reserve_errors=self.max_reserve_errors,
            logger=self.logger,
            health=self.health,
            between_batches=between_batches,
            prefetch=self.prefetch,
        )
        self._loop = Loop(settings, backend, chain, crash=crash, registry=registry)

    def _recovery(
        self, bound: list[Middleware], backend: Backend
    ) -> tuple[CrashAccounting, WorkerRegistry | None]:
        """Build crash accounting and, unless disabled, the registry (its table checked)."""
        log = next((m.logger for m in bound if isinstance(m, LogOutcome)), self.logger)
        crash = CrashAccounting(middlewares=tuple(bound), name=self.name, logger=log)
        if not self.registry:
            return crash, None
        settings = RegistrySettings(
            table=self.registry_table or registry_table_for(self.table),
            heartbeat_interval=self.heartbeat_interval,
            dead_worker_timeout=self.dead_worker_timeout,
        )
        backend.check_registry(settings.table)
        registry = WorkerRegistry(
            settings,
            name=self.name,
            queues=self.queues,
            connect=self.connect,
            crash=crash,
            logger=self.logger,
            max_run_time=self.max_run_time,
        )
        return crash, registry

    def _request(self, given_back: frozenset[int]) -> ReserveRequest:
        return ReserveRequest(
            worker_name=self.name,
            now=self.clock(),
            max_run_time=self.max_run_time,
            queues=self.queues,
            min_priority=self.min_priority,
            max_priority=self.max_priority,
            names=tuple(self.handlers) if self.unknown_jobs == "skip" else None,
            exclude_ids=given_back,
        )

    def _prepared(self) -> Loop:
        self.prepare()
        if self._loop is None:  # pragma: no cover - prepare() sets it or raises
            msg = "Worker: prepare() did not build the loop."
            raise DjmwError(msg)
        return self._loop

    def start(self) -> Worker:
        """Prepare, then run the loop in a background thread; returns at once."""
        if self._thread is not None:
            msg = "Worker: start() was already called; make a new Worker to run again."
            raise ConfigurationError(msg)
        loop = self._prepared()
        loop.status = "running"
        self._thread = threading.Thread(target=self._run_quietly, name=f"djmw {self.name}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def run(self) -> None:
        """Run the loop in this thread until stopped or (with exit_on_complete) done.

        In the main thread, while SIGINT has Python's default handler, Ctrl-C stops the
        worker gracefully (the running job finishes) and a second one interrupts the job
        (its row is unlocked, attempts unchanged); the handler is restored on return. So a
        ``KeyboardInterrupt`` reaching a job always comes from the job itself, and is a
        failed attempt like any other exception (``JobAborted``).
        """
        loop = self._prepared()
        try:
            with _ctrl_c_stops(loop):
                loop.run()
        except ReserveErrorsExceeded:
            if self.on_reserve_errors == "raise":
                raise

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception as exc:  # recorded in .error and status; the thread must not print
            self._error = exc

    def stop(self) -> None:
        """Ask the loop to stop after the current job; wakes it from its idle sleep."""
        if self._loop is not None:
            self._loop.stop()

    def interrupt(self) -> bool:
        """Hard shutdown: stop, and raise WorkerShutdown inside the running job, if any.

        The job's row is then unlocked with attempts unchanged. Returns True if a job was
        running. Limits: the exception lands at the job's next Python bytecode, so a job
        blocked in a C call is interrupted only when that call returns; a job running
        under ``EnforceTimeout(mode="process")`` is stopped by killing its child process.
        """
        return self._loop.interrupt() if self._loop is not None else False

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background thread started by ``start()``."""
        if self._thread is not None:
            self._thread.join(timeout)

    def work_off(self, num: int = 100) -> tuple[int, int]:
        """Run up to ``num`` ready jobs in this thread; return ``(succeeded, failed)``."""
        return self._prepared().batch(num)

    def close(self, *, clear_locks: bool = True) -> None:
        """Close the connection after ``work_off``; first clear this worker's locks.

        ``clear_locks=False`` leaves the rows as delayed_job's ``work_off`` does (a
        failed row keeps the name of the worker that failed it).
        """
        if self._loop is not None:
            self._loop.close(clear_locks=clear_locks)
            self._final_totals = (self._loop.succeeded, self._loop.failed)
            self._loop = None
