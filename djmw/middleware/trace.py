"""Trace: one OpenTelemetry consumer span per job, shaped like Ruby's delayed_job spans.

Needs the ``otel`` extra (``pip install "djmw[otel]"``, opentelemetry-api); without an
SDK configured it does nothing. opentelemetry is imported when the first ``Trace`` is
built, never by ``import djmw``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import attrs

from djmw.chain import CallNext
from djmw.errors import ConfigurationError, error_message
from djmw.job import Job
from djmw.outcome import Outcome, Rescheduled, Succeeded, error_class_name
from djmw.tracecontext import trace_carrier


def import_otel() -> tuple[Any, Any]:
    """Return ``(opentelemetry.trace, opentelemetry.propagate)`` or raise naming the extra."""
    try:
        from opentelemetry import propagate, trace  # noqa: PLC0415 - an optional extra
    except ImportError as exc:
        msg = 'tracing needs opentelemetry-api: pip install "djmw[otel]".'
        raise ConfigurationError(msg) from exc
    return trace, propagate


def _nanos(moment: datetime) -> int:
    # Rows hold naive UTC (the default timezone); a "local" worker's events shift by its offset.
    return int(moment.replace(tzinfo=UTC).timestamp() * 1_000_000_000)


@attrs.frozen(kw_only=True)
class Trace:
    """Run each job inside a consumer span named ``<queue> process``.

    The span matches opentelemetry-ruby-contrib's delayed_job instrumentation, so Ruby
    and Python runs of one queue look alike: kind CONSUMER; ``messaging.system`` =
    ``delayed_job``; ``messaging.destination`` (and ``messaging.destination.name``) = the
    queue, ``default`` for NULL; ``messaging.destination_kind`` = ``queue``;
    ``messaging.operation`` = ``process``; ``messaging.message_id`` (and
    ``messaging.message.id``) = the row id; ``messaging.delayed_job.name``,
    ``.priority``, ``.attempts`` (prior failed attempts) and ``.locked_by``; events
    ``run_at`` and ``locked_at``. A failed attempt sets status ERROR and records the
    exception; ``djmw.outcome`` says ``succeeded``, ``rescheduled`` or ``failed``.

    When the handler carries trace context (``djmw.tracecontext``: a djmw
    enqueue stores it), the span continues that trace; otherwise it starts a new one.

    Where: right inside DecodeYAML (the job's name is known) and outside LogOutcome, so
    that every line a job logs happens inside its span.

    Args:
        tracer_provider: the provider to trace to; None = the global one. With no SDK
            installed (or none set globally), every job runs without a span.
    """

    tracer_provider: Any = None
    _api: tuple[Any, Any] = attrs.field(init=False, repr=False)
    _tracer: Any = attrs.field(init=False, repr=False)
    #: [monotonic time of the next look at the global provider, whether it is a no-op]
    _global: list[Any] = attrs.field(init=False, repr=False, factory=lambda: [0.0, True])

    def __attrs_post_init__(self) -> None:
        trace, propagate = import_otel()
        object.__setattr__(self, "_api", (trace, propagate))
        tracer = trace.get_tracer("djmw", tracer_provider=self.tracer_provider)
        object.__setattr__(self, "_tracer", tracer)

    def _disabled(self) -> bool:
        if self.tracer_provider is not None:
            return False
        state = self._global
        now = time.monotonic()
        if now >= state[0]:  # an SDK set up later is seen within a second
            trace = self._api[0]
            state[1] = isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
            state[0] = now + 1.0
        return bool(state[1])

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain inside the job's span."""
        if self._disabled():
            return call_next(job)
        trace, propagate = self._api
        carrier = trace_carrier(job.handler)
        parent = propagate.extract(carrier) if carrier else None
        queue = job.queue or "default"
        attributes = {
            "messaging.system": "delayed_job",
            "messaging.destination": queue,
            "messaging.destination.name": queue,
            "messaging.destination_kind": "queue",
            "messaging.operation": "process",
            "messaging.message_id": str(job.id),
            "messaging.message.id": str(job.id),
            "messaging.delayed_job.name": job.display_name,
            "messaging.delayed_job.priority": job.priority if job.priority is not None else 0,
            "messaging.delayed_job.attempts": job.attempts,
        }
        if job.locked_by is not None:
            attributes["messaging.delayed_job.locked_by"] = job.locked_by
        with self._tracer.start_as_current_span(
            f"{queue} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:
            if job.run_at is not None:
                span.add_event("run_at", timestamp=_nanos(job.run_at))
            if job.locked_at is not None:
                span.add_event("locked_at", timestamp=_nanos(job.locked_at))
            outcome = call_next(job)
            if isinstance(outcome, Succeeded):
                span.set_attribute("djmw.outcome", "succeeded")
            else:
                kind = "rescheduled" if isinstance(outcome, Rescheduled) else "failed"
                span.set_attribute("djmw.outcome", kind)
                span.record_exception(outcome.error)
                span.set_status(
                    trace.Status(
                        trace.StatusCode.ERROR,
                        f"{error_class_name(outcome.error)}: {error_message(outcome.error)}",
                    )
                )
            return outcome
