"""Observability: probe state, JSON logs, trace context, the queue monitor, HTTP servers.

Nothing here is imported by ``import djmw``, and no module of this package imports an
optional extra (prometheus_client, opentelemetry) at import time: each does so when it
is first used, and says which extra to install when it is missing.

- ``health``: the probe state a worker's loop updates (any layer may import it).
- ``jsonlog``: ``--log-format json``, one JSON object per log line.
- ``tracecontext``: where a djmw enqueue stores W3C trace context in the handler YAML.
- ``monitor``: the queue gauges, computed by one process per interval (leader lock).
- ``server``: the ``/metrics`` and ``/status`` HTTP servers.
- ``command``: wiring for ``djmw work --metrics-port/--probe-port/--log-format``.
"""
