"""Observability middlewares and helpers, over the in-memory backend with a manual clock.

Metrics are read back from a private prometheus_client registry, spans from the
OpenTelemetry SDK's in-memory exporter, Sentry events from a transport the test
provides, JSON log lines from a stream; probes are asked over HTTP.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sentry_sdk
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

import djmw
from djmw import Handlers, Job, Worker, default_middlewares
from djmw.health import Health
from djmw.middleware import Metrics, ReportErrors, Trace
from djmw.observe.jsonlog import JsonFormatter
from djmw.observe.monitor import QueueMonitor
from djmw.observe.server import ObserveServer, WorkerProbes
from djmw.testing import InMemoryBackend, ManualClock
from djmw.tracecontext import trace_carrier, with_trace_context
from recipes.sentry_on_failure import sentry_middlewares

ROOT = Path(__file__).resolve().parents[2]
OK = "--- !ruby/struct:OkJob\nn: 1\n"
FAIL = "--- !ruby/struct:FailJob\nn: 1\n"


def ok(job: Job) -> None:
    return None


def fail(job: Job) -> None:
    msg = "planned failure"
    raise ValueError(msg)


HANDLERS = Handlers({"OkJob": ok, "FailJob": fail})


def worker_with(backend: InMemoryBackend, clock: ManualClock, *extra: Any) -> Worker:
    """A worker whose chain is the default one with ``extra`` right inside DecodeYAML."""
    chain = default_middlewares(HANDLERS)
    chain[1:1] = extra
    return Worker(
        handlers=HANDLERS, backend=backend.factory(), clock=clock, middlewares=chain, name="w"
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_metrics_count_runs_failures_exhaustion_and_times() -> None:
    """After 3 successes, 2 rescheduled attempts and 1 used-up job, the counters hold
    exactly those numbers per job name and queue, and queue time is start minus run_at."""
    registry = CollectorRegistry()
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    for _ in range(3):
        backend.enqueue(OK, queue="a")
    backend.enqueue(FAIL, queue="b")
    backend.enqueue(FAIL, queue="b")
    clock.advance(30)
    worker = worker_with(backend, clock, Metrics(registry=registry))
    assert worker.work_off(10) == (3, 2)
    ok_labels = {"job_name": "OkJob", "queue_name": "a"}
    fail_labels = {"job_name": "FailJob", "queue_name": "b"}
    assert sample(registry, "delayed_jobs_total", **ok_labels) == 3
    assert sample(registry, "delayed_failed_jobs_total", **ok_labels) == 0
    assert sample(registry, "delayed_jobs_total", **fail_labels) == 2
    assert sample(registry, "delayed_failed_jobs_total", **fail_labels) == 2
    assert sample(registry, "delayed_jobs_max_attempts_reached_total", **fail_labels) == 0
    assert sample(registry, "djmw_job_duration_seconds_count", **ok_labels) == 3
    assert sample(registry, "djmw_job_queue_time_seconds_sum", **ok_labels) == 90.0
    assert sample(registry, "djmw_job_queue_time_seconds_bucket", le="30.0", **ok_labels) == 3
    assert sample(registry, "djmw_job_queue_time_seconds_bucket", le="10.0", **ok_labels) == 0
    total = sample(registry, "delayed_job_duration_seconds", **ok_labels)
    assert total is not None
    assert total == pytest.approx(sample(registry, "djmw_job_duration_seconds_sum", **ok_labels))
    # exhaustion: a job on its last attempt
    job_id = backend.enqueue(FAIL, queue="b")
    backend.rows[job_id] = attrs.evolve(backend.rows[job_id], attempts=24)
    assert worker.work_off(1) == (0, 1)
    assert sample(registry, "delayed_jobs_max_attempts_reached_total", **fail_labels) == 1
    assert sample(registry, "delayed_failed_jobs_total", **fail_labels) == 3


def test_metrics_share_one_set_of_series_per_registry() -> None:
    """Two Metrics on one registry (one per worker thread) count into the same series."""
    registry = CollectorRegistry()
    first, second = Metrics(registry=registry), Metrics(registry=registry)
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    backend.enqueue(OK)
    backend.enqueue(OK)
    worker_with(backend, clock, first).work_off(1)
    worker_with(backend, clock, second).work_off(1)
    assert sample(registry, "delayed_jobs_total", job_name="OkJob", queue_name="") == 2


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """An SDK tracer provider exporting to memory (not installed globally)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_trace_emits_the_ruby_shaped_consumer_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """One CONSUMER span per job named '<queue> process' with delayed_job's attributes;
    a failed attempt has status ERROR and the exception recorded."""
    provider, exporter = spans
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    ok_id = backend.enqueue(OK, queue="mail", priority=3)
    fail_id = backend.enqueue(FAIL)
    worker = worker_with(backend, clock, Trace(tracer_provider=provider))
    assert worker.work_off(2) == (1, 1)
    done = {span.name: span for span in exporter.get_finished_spans()}
    assert set(done) == {"mail process", "default process"}
    good, bad = done["mail process"], done["default process"]
    assert good.kind == trace.SpanKind.CONSUMER
    assert dict(good.attributes or {}) == {
        "messaging.system": "delayed_job",
        "messaging.destination": "mail",
        "messaging.destination.name": "mail",
        "messaging.destination_kind": "queue",
        "messaging.operation": "process",
        "messaging.message_id": str(ok_id),
        "messaging.message.id": str(ok_id),
        "messaging.delayed_job.name": "OkJob",
        "messaging.delayed_job.priority": 3,
        "messaging.delayed_job.attempts": 0,
        "messaging.delayed_job.locked_by": "w",
        "djmw.outcome": "succeeded",
    }
    assert [event.name for event in good.events] == ["run_at", "locked_at"]
    assert good.status.status_code == trace.StatusCode.UNSET
    assert good.parent is None
    assert bad.attributes is not None
    assert bad.attributes["messaging.message_id"] == str(fail_id)
    assert bad.attributes["djmw.outcome"] == "rescheduled"
    assert bad.status.status_code == trace.StatusCode.ERROR
    assert bad.status.description == "ValueError: planned failure"
    exception = [event for event in bad.events if event.name == "exception"]
    assert len(exception) == 1
    assert exception[0].attributes is not None
    assert exception[0].attributes["exception.type"] == "ValueError"


def test_trace_continues_the_context_a_djmw_enqueue_stored(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """djmw.enqueue inside a span stores its context as comment lines; the job's span is
    a child of that span, in the same trace. A handler without them starts a new trace."""
    provider, exporter = spans
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("web request") as request_span:
        job_id = djmw.enqueue(backend, OK)
    handler = backend.rows[job_id].handler
    assert isinstance(handler, str)
    assert handler.startswith(OK)
    assert handler[len(OK) :].startswith("# traceparent: 00-")
    assert set(trace_carrier(handler)) == {"traceparent"}
    plain_id = djmw.enqueue(backend, OK)  # no span active: nothing stored
    assert backend.rows[plain_id].handler == OK
    worker = worker_with(backend, clock, Trace(tracer_provider=provider))
    assert worker.work_off(2) == (2, 0)
    by_id = {
        span.attributes["messaging.message_id"]: span
        for span in exporter.get_finished_spans()
        if span.attributes and "messaging.message_id" in span.attributes
    }
    parent = request_span.get_span_context()
    child = by_id[str(job_id)]
    assert child.context is not None
    assert child.context.trace_id == parent.trace_id
    assert child.parent is not None
    assert child.parent.span_id == parent.span_id
    orphan = by_id[str(plain_id)]
    assert orphan.parent is None
    assert orphan.context is not None
    assert orphan.context.trace_id != parent.trace_id


def test_trace_context_lines_are_comments_only() -> None:
    """The stored lines change nothing the decoder sees: same name and fields."""
    carrier = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "k=v"}
    marked = with_trace_context(OK, carrier)
    assert marked.endswith("# tracestate: k=v\n")
    assert trace_carrier(marked) == carrier
    assert with_trace_context(OK, {"traceparent": "bad\nvalue"}) == OK
    seen: list[object] = []
    backend = InMemoryBackend(clock=ManualClock())
    backend.enqueue(marked, queue="q")
    Worker(
        handlers=Handlers({"OkJob": lambda job: seen.append(job.payload)}),
        backend=backend.factory(),
        name="w",
    ).work_off(1)
    assert seen == [djmw.StructJob(class_name="OkJob", fields={"n": 1})]


def test_trace_without_an_sdk_runs_the_job_without_a_span() -> None:
    """With no SDK tracer provider set, Trace adds no span: the handler sees none."""
    script = (
        "import djmw\n"
        "from opentelemetry import trace\n"
        "from djmw.middleware import Trace\n"
        "from djmw.testing import make_job, returning\n"
        "seen = []\n"
        "def inner(job):\n"
        "    seen.append(trace.get_current_span().get_span_context().is_valid)\n"
        "    return djmw.Succeeded()\n"
        "assert Trace()(make_job(name='J'), inner) == djmw.Succeeded()\n"
        "print(seen)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[False]"


class CaptureTransport(Transport):
    """A Sentry transport keeping every envelope in memory."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


def test_report_errors_and_the_sentry_recipe_send_tagged_events() -> None:
    """Each failed attempt is one Sentry event tagged with the job's name, id, queue and
    attempts; each run is a queue.process transaction."""
    transport = CaptureTransport()
    sentry_sdk.init(dsn="https://key@sentry.invalid/1", transport=transport, traces_sample_rate=1.0)
    try:
        clock = ManualClock()
        backend = InMemoryBackend(clock=clock)
        fail_id = backend.enqueue(FAIL, queue="b")
        backend.enqueue(OK)
        worker = worker_with(backend, clock, *sentry_middlewares())
        assert worker.work_off(2) == (1, 1)
        sentry_sdk.flush()
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()
    items = [item for envelope in transport.envelopes for item in envelope.items]
    events = [i.payload.json for i in items if i.type == "event" and i.payload.json]
    transactions = [i.payload.json for i in items if i.type == "transaction" and i.payload.json]
    assert len(events) == 1
    event = events[0]
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert event["tags"] == {
        "djmw.job_name": "FailJob",
        "djmw.job_id": str(fail_id),
        "djmw.queue": "b",
        "djmw.attempts": "1",
        "djmw.outcome": "rescheduled",
    }
    assert sorted(t["transaction"] for t in transactions) == ["FailJob", "OkJob"]
    assert {t["contexts"]["trace"]["op"] for t in transactions} == {"queue.process"}


def test_report_errors_survives_a_broken_reporter(caplog: pytest.LogCaptureFixture) -> None:
    """A reporter that raises is logged; the job's outcome is still written."""
    calls: list[dict[str, str]] = []

    def broken(error: BaseException, tags: Any) -> None:
        calls.append(dict(tags))
        msg = "reporter down"
        raise RuntimeError(msg)

    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    job_id = backend.enqueue(FAIL)
    assert worker_with(backend, clock, ReportErrors(reporter=broken)).work_off(1) == (0, 1)
    assert backend.rows[job_id].attempts == 1
    assert calls == [
        {
            "job_name": "FailJob",
            "job_id": str(job_id),
            "queue": "",
            "attempts": "1",
            "outcome": "rescheduled",
        }
    ]
    assert "error reporter failed with RuntimeError: reporter down" in caplog.text
    with pytest.raises(djmw.ConfigurationError, match="reporter must be a callable"):
        ReportErrors(reporter="myapp:report")  # type: ignore[arg-type]


def test_json_log_lines_carry_the_job_fields() -> None:
    """--log-format json: every line parses; job lines hold the job's fields and values."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("djmw.test-json")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    ok_id = backend.enqueue(OK, queue="a")
    fail_id = backend.enqueue(FAIL)
    clock.advance(12.5)
    chain = default_middlewares(HANDLERS)
    chain[2] = djmw.middleware.LogOutcome(logger=logger)
    worker = Worker(
        handlers=HANDLERS, backend=backend.factory(), clock=clock, middlewares=chain, name="w1"
    )
    worker.work_off(2)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 4
    for line in lines:
        assert line["time"].endswith("Z")
        assert line["logger"] == "djmw.test-json"
        assert line["worker"] == "w1"
    running, completed, running_fail, failed = lines
    assert running == {
        "time": running["time"],
        "level": "info",
        "logger": "djmw.test-json",
        "worker": "w1",
        "job_id": ok_id,
        "job_name": "OkJob",
        "queue": "a",
        "attempts": 0,
        "message": f"[Worker(w1)] Job OkJob (id={ok_id}) (queue=a) RUNNING",
    }
    assert completed["outcome"] == "succeeded"
    assert completed["error_class"] is None
    assert completed["queue_time_s"] == 12.5
    assert isinstance(completed["duration_s"], float)
    assert completed["duration_s"] >= 0
    assert list(completed) == [
        "time",
        "level",
        "logger",
        "worker",
        "job_id",
        "job_name",
        "queue",
        "attempts",
        "duration_s",
        "queue_time_s",
        "outcome",
        "error_class",
        "message",
    ]
    assert running_fail["job_id"] == fail_id
    assert failed["level"] == "error"
    assert failed["queue"] is None
    assert failed["outcome"] == "rescheduled"
    assert failed["error_class"] == "ValueError"
    assert failed["message"].endswith("FAILED (0 prior attempts) with ValueError: planned failure")


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_probes_answer_each_state() -> None:
    """/status is 200 while the process serves; /status/started follows the loop;
    /status/connected needs a recent, successful reserve (a running job counts)."""
    health = Health()
    server = ObserveServer(probes=WorkerProbes([health], within=60)).start()
    base = f"http://127.0.0.1:{server.port}"
    try:

        def codes() -> tuple[int, int, int]:
            return (
                get(f"{base}/status"),
                get(f"{base}/status/started"),
                get(f"{base}/status/connected"),
            )

        assert codes() == (200, 503, 503)  # not started yet
        health.loop_started()
        assert codes() == (200, 200, 503)  # no reserve yet
        health.reserved(ok=True)
        assert codes() == (200, 200, 200)
        health.reserved(ok=False)  # the database went away
        assert codes() == (200, 200, 503)
        health.reserved(ok=True, busy=True)  # back, and running a job
        assert codes() == (200, 200, 200)
        health.reserved(ok=True)
        assert health.last_ok is not None
        assert health.connected(60, now=health.last_ok + 61) is False  # too long ago
        health.loop_ended()
        assert codes() == (200, 503, 503)
        assert get(f"{base}/metrics") == 404  # no registry on this server
        assert get(f"{base}/other") == 404
    finally:
        server.stop()


def test_a_real_worker_reports_started_then_stopped() -> None:
    """A worker's own health: started while its loop runs, connected after a reserve."""
    backend = InMemoryBackend(clock=ManualClock())
    worker = Worker(handlers=HANDLERS, backend=backend.factory(), name="w", sleep_delay=0.05)
    probes = WorkerProbes([worker.health])
    assert (probes.started(), probes.connected()) == (False, False)
    worker.start()
    try:
        for _ in range(200):
            if probes.connected():
                break
            worker.join(0.01)
        assert (probes.started(), probes.connected()) == (True, True)
    finally:
        worker.stop()
        worker.join(5)
    assert (probes.started(), probes.connected()) == (False, False)


def test_queue_monitor_exports_the_gauges_of_its_last_poll() -> None:
    """The monitor's collector yields prometheus_exporter's and Betterment's gauges per
    queue and priority, from the rows as they were at the poll."""
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    backend.enqueue(OK, queue="a", priority=1)
    backend.enqueue(OK, queue="a", priority=1, run_at=clock() + timedelta(hours=1))
    failed = backend.enqueue(FAIL, queue="a", priority=1)
    backend.rows[failed] = attrs.evolve(backend.rows[failed], failed_at=clock(), last_error="x")
    clock.advance(90)
    registry = CollectorRegistry()
    monitor = QueueMonitor(connect=backend.factory(), clock=clock, interval=60)
    registry.register(monitor)
    assert registry.get_sample_value("djmw_queue_monitor_leader") == 0
    assert monitor.poll() is True
    labels = {"queue_name": "a", "priority": "1"}
    expected = {
        "delayed_jobs_enqueued": 3,
        "delayed_jobs_pending": 3,
        "delayed_jobs_failed": 1,
        "delayed_job_count": 3,
        "delayed_job_future_count": 1,
        "delayed_job_working_count": 0,
        "delayed_job_workable_count": 1,
        "delayed_job_erroring_count": 0,
        "delayed_job_failed_count": 1,
        "delayed_job_max_lock_age": 0,
        "delayed_job_max_age": 90,
    }
    assert {name: registry.get_sample_value(name, labels) for name in expected} == expected
    assert registry.get_sample_value("djmw_queue_monitor_leader") == 1
