"""Observability: JSON logs, the queue monitor, HTTP servers, and their command wiring.

Nothing here is imported by ``import djmw``, and no module of this package imports an
optional extra (prometheus_client, opentelemetry) at import time: each does so when it
is first used, and says which extra to install when it is missing. This package sits
on top: it imports the worker and the middlewares, and nothing below imports it. The
low-level pieces the loop and the enqueue path use live below it: ``djmw.health`` (the
probe state a worker's loop updates) and ``djmw.tracecontext`` (where a djmw enqueue
stores W3C trace context in the handler YAML).

- ``jsonlog``: ``--log-format json``, one JSON object per log line.
- ``monitor``: the queue gauges, computed by one process per interval (leader lock).
- ``server``: the ``/metrics`` and ``/status`` HTTP servers.
- ``command``: wiring for ``djmw work --metrics-port/--probe-port/--log-format``.
"""
