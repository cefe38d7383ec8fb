"""``djmw work``'s observability options: ``--metrics-port``, ``--probe-port``, ``--log-format``.

``add_arguments`` adds the options; ``in_process`` serves them for the workers of this
process; ``fleet`` serves them for ``--processes N`` from the supervisor: one
``/metrics`` for the whole fleet (prometheus_client's multiprocess mode, its directory
cleaned at start) and probes that ask every child. The children are told where to
write by ``--fleet-state DIR`` (added here to their arguments); they serve nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from djmw.chain import Middleware
from djmw.errors import ConfigurationError
from djmw.logs import LOGGER_NAME
from djmw.middleware import DecodeYAML, Metrics, default_middlewares
from djmw.middleware.metrics import import_prometheus
from djmw.observe.jsonlog import use_json_logs
from djmw.observe.monitor import QueueMonitor
from djmw.observe.server import FleetProbes, ObserveServer, Probes, WorkerProbes, health_file
from djmw.observe.server import write_health as _write_health
from djmw.worker import Worker

logger = logging.getLogger(LOGGER_NAME)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def add_arguments(work: argparse.ArgumentParser) -> None:
    """Add the observability options to the ``work`` command."""
    group = work.add_argument_group("observability")
    group.add_argument("--metrics-port", type=_port, help="serve Prometheus /metrics on PORT")
    group.add_argument(
        "--probe-port",
        type=_port,
        help="serve /status, /status/started and /status/connected on PORT",
    )
    group.add_argument(
        "--http-host",
        default="127.0.0.1",
        help="address the metrics and probe servers bind (default 127.0.0.1; 0.0.0.0 in a pod)",
    )
    group.add_argument(
        "--connected-within",
        type=_positive_float,
        default=60.0,
        help="/status/connected fails when no reserve worked for this many seconds (default 60)",
    )
    group.add_argument(
        "--queue-stats-interval",
        type=float,
        default=30.0,
        help="seconds between two computations of the queue gauges (default 30; 0 = none)",
    )
    group.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text: delayed_job's lines (default); json: one JSON object per line",
    )
    group.add_argument("--fleet-state", help=argparse.SUPPRESS)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        msg = f"must be a port number (0-65535), got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        msg = f"must be above 0, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def configure_log_format(args: argparse.Namespace) -> None:
    """Switch the ``djmw`` logger to JSON lines when ``--log-format json`` was given."""
    if getattr(args, "log_format", "text") == "json":
        use_json_logs(logging.getLogger(LOGGER_NAME))


def with_metrics(middlewares: Sequence[Middleware]) -> list[Middleware]:
    """Return the chain with a ``Metrics`` right inside DecodeYAML, unless it has one."""
    chain = list(middlewares)
    if any(isinstance(m, Metrics) for m in chain):
        return chain
    index = next((i + 1 for i, m in enumerate(chain) if isinstance(m, DecodeYAML)), 0)
    chain.insert(index, Metrics())
    return chain


def _add_metrics(workers: Sequence[Worker]) -> None:
    for worker in workers:
        chain = worker.middlewares
        worker.middlewares = tuple(
            with_metrics(chain if chain is not None else default_middlewares(worker.handlers))
        )


@contextlib.contextmanager
def in_process(args: argparse.Namespace, workers: Sequence[Worker]) -> Iterator[None]:
    """Serve metrics and probes for ``workers`` (this process) while the block runs.

    In a fleet child (``--fleet-state``) nothing is served: metrics go to the fleet's
    multiprocess directory and health to a file the supervisor reads.
    """
    metrics_port, probe_port = args.metrics_port, args.probe_port
    if metrics_port is None and probe_port is None:
        yield
        return
    if metrics_port is not None:
        import_prometheus()
        _add_metrics(workers)
    probes = WorkerProbes([w.health for w in workers], args.connected_within)
    with contextlib.ExitStack() as stack:
        if args.fleet_state is not None:
            if probe_port is not None:
                index = args.process_index or 0
                _start_health_writer(stack, health_file(args.fleet_state, index), probes)
        else:
            registry = None
            if metrics_port is not None:
                registry = import_prometheus().REGISTRY
                _start_monitor(stack, args, workers[0].connect, workers[0].clock, registry)
            _serve(stack, args, probes if probe_port is not None else None, registry)
        yield


@contextlib.contextmanager
def fleet(args: argparse.Namespace, settings: Callable[[], Worker]) -> Iterator[list[str]]:
    """Serve one ``/metrics`` and the probes for ``--processes N`` from the supervisor.

    Yields the arguments to add to every child's command line. ``settings`` builds a
    Worker (never started) whose connection and clock the queue monitor uses.
    """
    if args.metrics_port is None and args.probe_port is None:
        yield []
        return
    with contextlib.ExitStack() as stack:
        state = Path(tempfile.mkdtemp(prefix="djmw-fleet-"))
        stack.callback(shutil.rmtree, state, True)
        registry = None
        if args.metrics_port is not None:
            registry = _multiprocess_registry(stack, state)
            worker = settings()
            _start_monitor(stack, args, worker.connect, worker.clock, registry)
        probes = FleetProbes(state, args.processes) if args.probe_port is not None else None
        _serve(stack, args, probes, registry)
        yield ["--fleet-state", str(state)]


def _multiprocess_registry(stack: contextlib.ExitStack, state: Path) -> Any:
    """Point the children at a clean multiprocess directory; return the fleet's registry."""
    given = os.environ.get(MULTIPROC_ENV)
    directory = Path(given) if given else state / "metrics"
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):  # a previous run's counters must not count
        leftover.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    if given is None:
        stack.callback(os.environ.pop, MULTIPROC_ENV, None)
    prometheus = import_prometheus()
    from prometheus_client import multiprocess  # noqa: PLC0415 - with the extra only

    registry = prometheus.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry


def _start_monitor(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    connect: Callable[[], Any],
    clock: Callable[[], Any],
    registry: Any,
) -> None:
    if args.queue_stats_interval <= 0:
        return
    monitor = QueueMonitor(connect=connect, clock=clock, interval=args.queue_stats_interval)
    registry.register(monitor)
    stack.callback(registry.unregister, monitor)
    monitor.start()
    stack.callback(monitor.stop)


def _serve(
    stack: contextlib.ExitStack, args: argparse.Namespace, probes: Probes | None, registry: Any
) -> None:
    """Start one server per distinct port (one for both when the ports are equal)."""
    ports: dict[int, dict[str, Any]] = {}
    if args.probe_port is not None and probes is not None:
        ports.setdefault(args.probe_port, {})["probes"] = probes
    if args.metrics_port is not None and registry is not None:
        ports.setdefault(args.metrics_port, {})["registry"] = registry
    for port, roles in ports.items():
        try:
            server = ObserveServer(host=args.http_host, port=port, **roles).start()
        except OSError as exc:
            msg = f"cannot serve on {args.http_host}:{port}: {exc}"
            raise ConfigurationError(msg) from exc
        stack.callback(server.stop)
        logger.info(
            "Serving %s on http://%s:%d",
            " and ".join(
                name
                for name, role in (("/status", "probes"), ("/metrics", "registry"))
                if role in roles
            ),
            args.http_host,
            server.port,
        )


def _start_health_writer(stack: contextlib.ExitStack, path: Path, probes: Probes) -> None:
    stop = threading.Event()

    def run() -> None:
        while True:
            try:
                _write_health(path, probes)
            except OSError as exc:
                logger.warning("could not write the health file %s: %s", path, exc)
            if stop.wait(1.0):
                return

    thread = threading.Thread(target=run, name="djmw health writer", daemon=True)
    thread.start()
    stack.callback(thread.join, 2.0)
    stack.callback(stop.set)
