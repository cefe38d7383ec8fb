"""Trace context in the handler YAML: where a djmw enqueue leaves it for the worker.

delayed_job's columns have no room for W3C trace context, so djmw keeps it in the one
column it controls the text of, as YAML comment lines at the end of the handler::

    --- !ruby/struct:NewsletterJob
    text: hi
    # traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
    # tracestate: congo=t61rcWkgMzE

Comments are dropped by every YAML parser: Ruby's Psych loads the job exactly as
before, djmw's decoder too, and the payload (a Struct's members, an object's instance
variables) gains no field. delayed_job never rewrites the handler of a row it
reschedules or fails, so the lines stay for every retry. A job enqueued by Ruby has no
such lines; its span starts a new trace.

No module of opentelemetry is imported here unless the application imported it first.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

#: The carrier keys kept in the handler (the W3C Trace Context headers).
KEYS = ("traceparent", "tracestate")

_LINE = re.compile(rb"^# (traceparent|tracestate): ([\x21-\x7e][\x20-\x7e]*)$", re.MULTILINE)
_SEARCH_TAIL = 4096


def with_trace_context(handler: str, carrier: Mapping[str, str] | None = None) -> str:
    """Return ``handler`` with the trace context appended as comment lines.

    ``carrier`` defaults to the current OpenTelemetry context, injected by the global
    propagator, when the application has imported opentelemetry and a span is active;
    otherwise (or with an empty carrier) ``handler`` comes back unchanged. Values that are
    not printable ASCII on one line are left out.
    """
    if carrier is None:
        carrier = current_carrier()
    lines = [
        f"# {key}: {value}"
        for key in KEYS
        if (value := carrier.get(key)) and value.isascii() and value.isprintable()
    ]
    if not lines:
        return handler
    separator = "" if handler.endswith("\n") else "\n"
    return handler + separator + "\n".join(lines) + "\n"


def current_carrier() -> dict[str, str]:
    """Return the current OpenTelemetry context as W3C headers, or {} without opentelemetry."""
    if "opentelemetry.propagate" not in sys.modules and "opentelemetry.trace" not in sys.modules:
        return {}
    from opentelemetry import propagate  # noqa: PLC0415 - only when the application uses it

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {key: carrier[key] for key in KEYS if key in carrier}


def trace_carrier(handler: str | bytes | None) -> dict[str, str]:
    """Return the trace context stored at the end of ``handler`` ({} when there is none)."""
    if not handler:
        return {}
    raw = handler.encode("utf-8", "replace") if isinstance(handler, str) else handler
    tail = raw[-_SEARCH_TAIL:]
    if b"# trace" not in tail:
        return {}
    return {m.group(1).decode(): m.group(2).decode() for m in _LINE.finditer(tail)}
