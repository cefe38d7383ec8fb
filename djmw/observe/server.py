"""The HTTP endpoints: ``/metrics`` and the probes ``/status``, ``/status/started``, ``/status/connected``.

One stdlib ``ThreadingHTTPServer`` per port, in a daemon thread, bound to 127.0.0.1
unless told otherwise. Each probe answers 200 or 503 with a one-word body; ``/metrics``
answers prometheus_client's text format for a registry.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import attrs

from djmw.health import Health
from djmw.middleware.metrics import import_prometheus

#: How fresh a child's health file must be (the child rewrites it every second).
STATE_MAX_AGE = 5.0


class Probes(Protocol):
    """What the probe endpoints ask: is the loop running, is the database reachable."""

    def started(self) -> bool:
        """True when every worker's loop runs."""
        ...

    def connected(self) -> bool:
        """True when every worker's last reserve worked, recently enough."""
        ...


@attrs.frozen
class WorkerProbes:
    """The probes of the workers of this process (``--threads N`` gives N)."""

    healths: Sequence[Health]
    within: float = 60.0

    def started(self) -> bool:
        """True when every worker's loop runs."""
        return bool(self.healths) and all(h.started for h in self.healths)

    def connected(self) -> bool:
        """True when every worker reserved successfully within ``within`` seconds."""
        return bool(self.healths) and all(h.connected(self.within) for h in self.healths)


def health_file(state_dir: str | Path, index: int) -> Path:
    """Where child process ``index`` of a fleet writes its health."""
    return Path(state_dir) / f"health-{index}.json"


def write_health(path: Path, probes: Probes) -> None:
    """Write ``probes``' answers to ``path`` atomically (for the supervisor's probes)."""
    data = {
        "pid": os.getpid(),
        "time": time.time(),
        "started": probes.started(),
        "connected": probes.connected(),
    }
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)


@attrs.frozen
class FleetProbes:
    """The probes of ``--processes N``: every child's health file must say yes, and be fresh."""

    state_dir: Path
    processes: int

    def _read(self, index: int) -> dict[str, Any] | None:
        try:
            data = json.loads(health_file(self.state_dir, index).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or time.time() - float(data.get("time", 0)) > STATE_MAX_AGE:
            return None
        return data

    def _all(self, key: str) -> bool:
        states = [self._read(index) for index in range(self.processes)]
        return all(state is not None and state.get(key) is True for state in states)

    def started(self) -> bool:
        """True when every child reports its loops running."""
        return self._all("started")

    def connected(self) -> bool:
        """True when every child reports its database reachable."""
        return self._all("connected")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        probes, registry = self.server.probes, self.server.registry
        if probes is not None and path.startswith("/status"):
            answers = {
                "/status": lambda: True,
                "/status/started": probes.started,
                "/status/connected": probes.connected,
            }
            check = answers.get(path)
            if check is not None:
                ok = check()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"unavailable\n", "text/plain")
                return
        if registry is not None and path == "/metrics":
            exposition = import_prometheus().exposition
            encoder, content_type = exposition.choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, encoder(registry), content_type)
            return
        self._reply(404, b"not found\n", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: probes every few seconds would flood the worker's log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    probes: Probes | None = None
    registry: Any = None


@attrs.define(eq=False)
class ObserveServer:
    """Serve the probes and/or ``/metrics`` on ``host:port`` from a daemon thread.

    Args:
        host: the address to bind (default loopback; ``0.0.0.0`` for a pod's probes).
        port: the port (0 picks a free one; read ``port`` after ``start``).
        probes: answers for ``/status*``, or None to serve no probes.
        registry: a prometheus_client registry for ``/metrics``, or None.
    """

    host: str = "127.0.0.1"
    port: int = 0
    probes: Probes | None = None
    registry: Any = None
    _server: _Server | None = attrs.field(default=None, init=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False)

    def start(self) -> ObserveServer:
        """Bind and serve; raises OSError when the port is taken."""
        server = _Server((self.host, self.port), _Handler)
        server.probes, server.registry = self.probes, self.registry
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"djmw http :{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
