"""Metrics: prometheus_exporter's delayed_job series, plus duration and queue-time histograms.

Needs the ``prometheus`` extra (``pip install "djmw[prometheus]"``); prometheus_client is
imported when the first ``Metrics`` is built, never by ``import djmw``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import attrs

from djmw._clock import seconds_since
from djmw.chain import CallNext
from djmw.errors import ConfigurationError
from djmw.job import Job
from djmw.outcome import Failed, Outcome, Succeeded

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Job run times, in seconds: milliseconds up to the 4-hour default max_run_time.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    1800,
    3600,
    14400,
)
#: Seconds between run_at and the start of the run.
QUEUE_TIME_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)

LABELS = ("job_name", "queue_name")


def import_prometheus() -> Any:
    """Return the prometheus_client module, or raise ConfigurationError naming the extra."""
    try:
        import prometheus_client  # noqa: PLC0415 - an optional extra, loaded on first use
    except ImportError as exc:
        msg = 'metrics need prometheus_client: pip install "djmw[prometheus]".'
        raise ConfigurationError(msg) from exc
    return prometheus_client


@attrs.define(eq=False)
class _Series:
    """The metric families of one registry, and their children by (job_name, queue_name)."""

    jobs: Any
    failed: Any
    exhausted: Any
    duration_total: Any
    duration: Any
    queue_time: Any
    children: dict[tuple[str, str], tuple[Any, ...]] = attrs.field(factory=dict)

    def child(self, key: tuple[str, str]) -> tuple[Any, ...]:
        """Return the labelled children for ``key`` (``.labels`` once per key)."""
        found = self.children.get(key)
        if found is None:
            found = tuple(
                family.labels(*key)
                for family in (
                    self.jobs,
                    self.failed,
                    self.exhausted,
                    self.duration_total,
                    self.duration,
                    self.queue_time,
                )
            )
            self.children[key] = found
        return found


_SERIES: dict[int, _Series] = {}
_SERIES_LOCK = threading.Lock()


def _series(registry: CollectorRegistry | None) -> _Series:
    """One set of families per registry: every worker thread's Metrics shares it."""
    prometheus = import_prometheus()
    target = prometheus.REGISTRY if registry is None else registry
    with _SERIES_LOCK:
        found = _SERIES.get(id(target))
        if found is not None:
            return found
        found = _Series(
            jobs=prometheus.Counter(
                "delayed_jobs_total",
                "Total number of delayed jobs executed.",
                LABELS,
                registry=target,
            ),
            failed=prometheus.Counter(
                "delayed_failed_jobs_total",
                "Total number failed delayed jobs executed.",
                LABELS,
                registry=target,
            ),
            exhausted=prometheus.Counter(
                "delayed_jobs_max_attempts_reached_total",
                "Total number of delayed jobs that reached max attempts.",
                LABELS,
                registry=target,
            ),
            # prometheus_exporter's counter of seconds; a Counter here would be exposed as
            # ``..._seconds_total``, so it is a gauge that only grows (summed across processes).
            duration_total=prometheus.Gauge(
                "delayed_job_duration_seconds",
                "Total time spent in delayed jobs.",
                LABELS,
                registry=target,
                multiprocess_mode="sum",
            ),
            duration=prometheus.Histogram(
                "djmw_job_duration_seconds",
                "How long one run of a job took (the inner chain, hooks included).",
                LABELS,
                registry=target,
                buckets=DURATION_BUCKETS,
            ),
            queue_time=prometheus.Histogram(
                "djmw_job_queue_time_seconds",
                "Seconds from the job's run_at to the start of its run.",
                LABELS,
                registry=target,
                buckets=QUEUE_TIME_BUCKETS,
            ),
        )
        _SERIES[id(target)] = found
        return found


@attrs.frozen(kw_only=True)
class Metrics:
    """Count every run of a job as prometheus_exporter's delayed_job collector does.

    Series, labelled ``job_name`` (delayed_job's display name, ``<unknown job>`` for an
    undecodable handler) and ``queue_name`` (``""`` for the NULL queue):

    - ``delayed_jobs_total``: every run; ``delayed_failed_jobs_total``: every run that
      did not succeed (a rescheduled or failed attempt); ``delayed_jobs_max_attempts_reached_total``:
      runs that used up their retries; ``delayed_job_duration_seconds``: seconds spent,
      summed (a gauge that only grows, so that its name stays prometheus_exporter's);
    - ``djmw_job_duration_seconds`` (histogram): the run's duration;
    - ``djmw_job_queue_time_seconds`` (histogram): start of the run minus ``run_at``.

    Where: right inside DecodeYAML (so the job's name is known), outside MarkFailed
    (so it sees the final outcome). ``djmw work --metrics-port`` inserts it there when
    the chain lacks it. The queue gauges are not per job: see ``djmw.observe.monitor``.

    Args:
        registry: a ``prometheus_client.CollectorRegistry``; None = the default one.

    Limits: writes only to prometheus_client (memory, or its multiprocess directory
    when ``PROMETHEUS_MULTIPROC_DIR`` is set before prometheus_client is imported).
    Every distinct job name is a label value: keep job names bounded.
    """

    registry: CollectorRegistry | None = None
    _series: _Series = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_series", _series(self.registry))

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain and record the run."""
        run_at = job.run_at
        queue_time = seconds_since(run_at, job.clock) if run_at is not None else None
        started = time.perf_counter()
        try:
            outcome = call_next(job)
        except Exception:  # escaped the chain: the worker unlocks the row; still a failed run
            self._record(job, None, time.perf_counter() - started, queue_time)
            raise
        self._record(job, outcome, time.perf_counter() - started, queue_time)
        return outcome

    def _record(
        self, job: Job, outcome: Outcome | None, elapsed: float, queue_time: float | None
    ) -> None:
        jobs, failed, exhausted, total, duration, queued = self._series.child(
            (job.name or "<unknown job>", job.queue or "")
        )
        jobs.inc()
        if type(outcome) is not Succeeded:
            failed.inc()
            if isinstance(outcome, Failed) and outcome.exhausted:
                exhausted.inc()
        total.inc(elapsed)
        duration.observe(elapsed)
        if queue_time is not None:
            queued.observe(queue_time if queue_time > 0 else 0.0)
