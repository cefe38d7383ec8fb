"""DecodeYAML: turn the ``handler`` YAML into the job's name and typed payload."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from djmw.chain import CallNext
from djmw.errors import ConfigurationError, PayloadDecodeError
from djmw.job import Job
from djmw.outcome import Outcome
from djmw.ruby.payload import UNKNOWN_JOB, DecodeLimits, decode_handler, tag_name


def fallback_name(handler: str | bytes | None) -> str:
    """Name an undecodable job as delayed_job does: the first ``!ruby/<word>:<Name>`` tag.

    delayed_job crashes when there is no such tag; djmw falls back to ``<unknown job>``.
    """
    return tag_name(handler) or UNKNOWN_JOB


def _as_limits(value: object) -> DecodeLimits:
    if isinstance(value, DecodeLimits):
        return value
    if isinstance(value, Mapping):
        try:
            return DecodeLimits(**value)
        except (TypeError, ValueError, ConfigurationError) as exc:
            msg = f"DecodeYAML: bad limits {dict(value)!r}: {exc}; keys are {_LIMIT_KEYS}."
            raise ConfigurationError(msg) from exc
    msg = f"DecodeYAML: limits must be a DecodeLimits or a table with keys {_LIMIT_KEYS}, got {value!r}."
    raise ConfigurationError(msg)


_LIMIT_KEYS = "max_bytes, max_depth, max_nodes, max_aliases"


@attrs.frozen(kw_only=True)
class DecodeYAML:
    """Parse the handler with djmw's safe Ruby-YAML loader; set ``job.name`` and ``job.payload``.

    Where: first (outermost) in the default chain, so that every later layer, logging
    included, sees the job's name and payload.

    An undecodable handler does not stop the chain here: the job goes inward with
    ``load_error`` set and a fallback name, and the error is raised where the perform
    function would run. Logging and MarkFailed then treat it as delayed_job treats a
    DeserializationError: failed at once, attempts unchanged, ``last_error`` beginning
    ``Job failed to load:``.

    Args:
        limits: size, depth, node and alias limits for hostile handlers.

    Note:
        Nothing from a row ever builds an arbitrary Python object: unknown Ruby classes
        become inspectable values (``djmw.ruby.values.RubyObject``), unknown YAML tags fail.
    """

    limits: DecodeLimits = attrs.field(factory=DecodeLimits, converter=_as_limits)

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Decode the handler, then run the rest of the chain."""
        try:
            decoded = decode_handler(job.handler, limits=self.limits)
        except PayloadDecodeError as exc:
            exc.job_id = job.id
            return call_next(attrs.evolve(job, name=fallback_name(job.handler), load_error=exc))
        return call_next(attrs.evolve(job, name=decoded.name, payload=decoded.payload))
