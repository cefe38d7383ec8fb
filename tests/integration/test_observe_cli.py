"""`djmw work` with --metrics-port, --probe-port and --log-format json, as real processes.

Metrics are scraped over HTTP and parsed with prometheus_client's parser; probes are
asked over HTTP while a TCP proxy in front of MariaDB is cut and restored, so that only
this test's worker loses its database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import djmw
from djmw.backends import open_backend

ROOT = Path(__file__).resolve().parents[2]
OK = "--- !ruby/struct:OkJob\nn: 1\n"
FAIL = "--- !ruby/struct:FailJob\nn: 1\n"
EXHAUST = "--- !ruby/struct:ExhaustJob\nn: 1\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def djmw_work(
    url: str, log: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "djmw", "work", "--database", url]
    command += ["--handlers", "tests.observe_handlers:handlers", "--sleep-delay", "0.1", *args]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=environment, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""
    except OSError:
        return 0, ""


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by (name, labels); {} while nothing answers."""
    status, text = get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total_runs(port: int) -> float:
    return sum(v for (name, _), v in scrape(port).items() if name == "delayed_jobs_total")


def test_metrics_and_json_logs_from_a_real_worker(tmp_path: Path) -> None:
    """After 5 successes, 2 rescheduled and 1 used-up job, /metrics holds exactly those
    counts, the queue gauges describe the table left behind, and every log line is JSON
    with the job's fields."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    backend = open_backend(url)
    backend.create_schema()
    for _ in range(5):
        backend.enqueue(OK, queue="a")
    backend.enqueue(FAIL, queue="b", priority=2)
    backend.enqueue(FAIL, queue="b", priority=2)
    backend.enqueue(EXHAUST)
    backend.close()
    port, log = free_port(), tmp_path / "worker.log"
    proc = djmw_work(
        url,
        log,
        "--metrics-port",
        str(port),
        "--queue-stats-interval",
        "0.2",
        "--log-format",
        "json",
    )
    try:
        wait_for(lambda: total_runs(port) == 8, 60, "8 runs in /metrics")

        def settled() -> bool:
            samples = scrape(port)
            return value(samples, "delayed_job_count", queue_name="b", priority="2") == 2 and (
                value(samples, "delayed_job_count", queue_name="a", priority="0") is None
            )

        wait_for(settled, 30, "the queue gauges to show the final table")
        samples = scrape(port)
    finally:
        assert stop(proc) == 0
    counts = {
        (name, labels["job_name"], labels["queue_name"]): samples[(name, frozenset(labels.items()))]
        for (name, frozen) in samples
        if name.startswith("delayed_") and name.endswith("_total")
        for labels in [dict(frozen)]
    }
    assert counts == {
        ("delayed_jobs_total", "OkJob", "a"): 5,
        ("delayed_jobs_total", "FailJob", "b"): 2,
        ("delayed_jobs_total", "ExhaustJob", ""): 1,
        ("delayed_failed_jobs_total", "OkJob", "a"): 0,
        ("delayed_failed_jobs_total", "FailJob", "b"): 2,
        ("delayed_failed_jobs_total", "ExhaustJob", ""): 1,
        ("delayed_jobs_max_attempts_reached_total", "OkJob", "a"): 0,
        ("delayed_jobs_max_attempts_reached_total", "FailJob", "b"): 0,
        ("delayed_jobs_max_attempts_reached_total", "ExhaustJob", ""): 1,
    }
    assert value(samples, "djmw_job_duration_seconds_count", job_name="OkJob", queue_name="a") == 5
    assert (
        value(samples, "djmw_job_queue_time_seconds_count", job_name="FailJob", queue_name="b") == 2
    )
    assert (
        value(samples, "delayed_job_duration_seconds", job_name="OkJob", queue_name="a") or 0
    ) > 0
    assert value(samples, "djmw_queue_monitor_leader") == 1
    b = {"queue_name": "b", "priority": "2"}
    assert value(samples, "delayed_jobs_enqueued", **b) == 2
    assert value(samples, "delayed_jobs_pending", **b) == 0  # attempts 1 now
    assert value(samples, "delayed_job_future_count", **b) == 2  # rescheduled 6 s ahead
    assert value(samples, "delayed_job_erroring_count", **b) == 2
    assert value(samples, "delayed_job_workable_count", **b) == 0
    failed = {"queue_name": "", "priority": "0"}
    assert value(samples, "delayed_jobs_failed", **failed) == 1
    assert value(samples, "delayed_job_failed_count", **failed) == 1

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    done = [line for line in lines if line.get("outcome") is not None]
    assert sorted(
        (line["job_name"], line["outcome"])
        for line in done
        if "prior attempts" in line["message"] or "COMPLETED" in line["message"]
    ) == [
        ("ExhaustJob", "failed"),
        ("FailJob", "rescheduled"),
        ("FailJob", "rescheduled"),
        *[("OkJob", "succeeded")] * 5,
    ]
    ok_line = next(line for line in done if line["outcome"] == "succeeded")
    assert ok_line["level"] == "info"
    assert ok_line["queue"] == "a"
    assert ok_line["attempts"] == 0
    assert ok_line["error_class"] is None
    assert ok_line["worker"].startswith("host:")
    assert ok_line["duration_s"] >= 0
    assert ok_line["queue_time_s"] >= 0
    fail_line = next(line for line in done if line["outcome"] == "rescheduled")
    assert (fail_line["level"], fail_line["error_class"], fail_line["queue"]) == (
        "error",
        "ValueError",
        "b",
    )
    assert any(
        line.get("logger") == "djmw.jobs" and line["message"].startswith("ok job") for line in lines
    )


@pytest.mark.mysql
def test_one_metrics_endpoint_for_two_processes(mysql_url: str, tmp_path: Path) -> None:
    """--processes 2: the supervisor's /metrics counts every child's runs exactly, and the
    multiprocess directory is cleaned at start, so a second run counts only its own."""
    backend = open_backend(mysql_url)
    backend.create_schema()
    directory = tmp_path / "prom"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}

    def run(jobs: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        for _ in range(jobs):
            backend.enqueue(OK, queue="a")
        port, log = free_port(), tmp_path / f"fleet-{jobs}.log"
        proc = djmw_work(
            mysql_url,
            log,
            "--processes",
            "2",
            "--metrics-port",
            str(port),
            "--queue-stats-interval",
            "0.2",
            env=env,
        )
        try:
            wait_for(lambda: total_runs(port) >= jobs, 120, f"{jobs} runs in /metrics")
            # Both children must have their signal handlers before the test stops them.
            wait_for(lambda: log.read_text().count("Starting job worker") == 2, 60, "two workers")
            wait_for(
                lambda: value(scrape(port), "djmw_queue_monitor_leader") == 1, 30, "the monitor"
            )
            return scrape(port)
        finally:
            assert stop(proc) == 0

    first = run(30)
    assert value(first, "delayed_jobs_total", job_name="OkJob", queue_name="a") == 30
    assert list(directory.glob("counter_*.db"))  # the children wrote there
    backend.enqueue(FAIL)
    second = run(12)
    assert value(second, "delayed_jobs_total", job_name="OkJob", queue_name="a") == 12
    assert value(second, "delayed_jobs_total", job_name="FailJob", queue_name="") == 1
    assert value(second, "djmw_job_duration_seconds_count", job_name="OkJob", queue_name="a") == 12
    assert value(second, "delayed_jobs_enqueued", queue_name="", priority="0") == 1
    backend.close()


class Proxy:
    """A TCP proxy to MariaDB on its own port, which the test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        if self._listener is not None:
            with contextlib.suppress(OSError):  # shutdown wakes the accepting thread
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A proxy in front of the test MariaDB server."""
    proxy = Proxy(("127.0.0.1", 3306))
    proxy.start()
    yield proxy
    proxy.cut()


@pytest.mark.mysql
def test_probes_follow_the_database(mysql_url: str, proxy: Proxy, tmp_path: Path) -> None:
    """/status/connected answers 200 while reserves work, 503 while the database is
    unreachable, and 200 again once it is back; /status and /status/started stay 200."""
    backend = open_backend(mysql_url)
    backend.create_schema()
    backend.close()
    proxied = mysql_url.replace("127.0.0.1:3306", f"127.0.0.1:{proxy.port}")
    port, log = free_port(), tmp_path / "worker.log"
    base = f"http://127.0.0.1:{port}"
    proc = djmw_work(
        proxied,
        log,
        "--probe-port",
        str(port),
        "--max-reserve-errors",
        "100000",
        "--sleep-delay",
        "0.2",
    )
    try:

        def codes() -> tuple[int, int, int]:
            return (
                get(f"{base}/status")[0],
                get(f"{base}/status/started")[0],
                get(f"{base}/status/connected")[0],
            )

        wait_for(lambda: codes() == (200, 200, 200), 60, "the worker to start and reserve")
        proxy.cut()
        wait_for(lambda: codes()[2] == 503, 60, "/status/connected to fail")
        assert codes() == (200, 200, 503)
        proxy.start()
        wait_for(lambda: codes()[2] == 200, 60, "/status/connected to recover")
        assert codes() == (200, 200, 200)
        djmw.enqueue(mysql_url, OK)
        wait_for(lambda: "COMPLETED" in log.read_text(), 30, "a job to run after the outage")
    finally:
        assert stop(proc) == 0
    assert "Error while reserving job" in log.read_text()
