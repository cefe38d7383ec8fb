"""Job: a frozen mirror of one ``delayed_jobs`` row, plus what the chain learns about it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import attrs

from djmw._clock import Clock, utc_now
from djmw.errors import PayloadDecodeError

#: A per-job schedule: ``(failure_time, attempts_after_increment) -> run_at``, the equivalent
#: of a Ruby payload's ``reschedule_at(time, attempts)``.
RescheduleAt = Callable[[datetime, int], datetime]


@attrs.frozen(kw_only=True)
class Job:
    """One reserved delayed_job row as it travels through the middleware chain.

    The column attributes carry the exact ``delayed_jobs`` column names and the values read
    at reserve time; they never change while the job runs. Middlewares pass changes inward
    with ``attrs.evolve``: DecodeYAML fills ``name`` and ``payload``, RunHooks fills the
    per-job overrides. Only the backend writes rows, once, from the chain's Outcome.

    Attributes:
        handler: the YAML text of the ``handler`` column (bytes when read raw from the
            database, so that invalid UTF-8 becomes a clear job failure, not a crash).
        name: delayed_job's display name (``NewsletterJob``, ``User#activate!``,
            ``User.cleanup``, an ActiveJob ``job_class``); the key perform functions are
            registered under. None until DecodeYAML ran.
        payload: the decoded handler (see ``djmw.ruby.payload``). None until DecodeYAML ran.
        load_error: why the handler could not be decoded; raised where the perform
            function would run, so logging and failure marking see it like delayed_job's
            DeserializationError.
        max_attempts / max_run_time / destroy_failed / reschedule_at: per-job overrides of
            the worker defaults (None = use the middleware's setting). ``max_run_time`` can
            only lower the worker's limit.
        worker_max_run_time: the worker-wide max_run_time in seconds; also the lock expiry.
        clock: the worker's clock (naive UTC by default); middlewares read "now" from it.
        timed_out: True once EnforceTimeout's limit has passed; long handlers poll it.
    """

    id: int
    handler: str | bytes | None
    priority: int | None = 0
    attempts: int = 0
    last_error: str | None = None
    run_at: datetime | None = None
    locked_at: datetime | None = None
    locked_by: str | None = None
    failed_at: datetime | None = None
    queue: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    name: str | None = None
    payload: object = None
    load_error: PayloadDecodeError | None = None

    max_attempts: int | None = None
    max_run_time: float | None = None
    destroy_failed: bool | None = None
    reschedule_at: RescheduleAt | None = None

    worker_max_run_time: float = 4 * 3600.0
    clock: Clock = attrs.field(default=utc_now, eq=False, repr=False)
    timeout_event: threading.Event = attrs.field(factory=threading.Event, eq=False, repr=False)

    @property
    def timed_out(self) -> bool:
        """True once the job's time limit has passed (the cooperative timeout flag)."""
        return self.timeout_event.is_set()

    @property
    def display_name(self) -> str:
        """The name used in log lines: ``name``, or a fallback for undecodable handlers."""
        return self.name if self.name is not None else "<unknown job>"
