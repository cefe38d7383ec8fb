"""What the operations API returns: rows with their decoded name and state, and results.

Each value has ``to_dict()``, the stable JSON shape of ``djmw jobs ... --json`` (times
as ISO 8601 text in the table's time zone, naive as stored). Rows are named by the
worker's own decoder (``djmw.ruby.payload.decode_handler``), and an undecodable row by
the name the worker's log line gives it, with the reason.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import datetime

import attrs

from djmw.admin.plain import to_plain
from djmw.admin.scope import State
from djmw.errors import PayloadDecodeError
from djmw.job import Job
from djmw.middleware.decode import fallback_name
from djmw.ruby.payload import DecodeLimits, Payload, decode_handler


def iso(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 text, or None."""
    return value.isoformat() if value is not None else None


def first_line(text: str | None) -> str | None:
    """The first line of ``text`` (a last_error's message), or None."""
    if text is None:
        return None
    return text.split("\n", 1)[0]


@attrs.frozen(kw_only=True)
class Decoding:
    """A handler as the worker's DecodeYAML sees it.

    Attributes:
        name: the display name, or the fallback name of an undecodable handler.
        payload: the decoded payload, or None.
        error: why the handler cannot be decoded (``Job failed to load: ...``), or None.
    """

    name: str
    payload: Payload | None = None
    error: str | None = None


#: The worker's default decode limits.
DEFAULT_LIMITS = DecodeLimits()


def decode(handler: str | bytes | None, limits: DecodeLimits = DEFAULT_LIMITS) -> Decoding:
    """Decode ``handler`` as the worker does; never raises for a bad row."""
    raw = handler.encode("utf-8", "surrogatepass") if isinstance(handler, str) else handler
    if raw is None or len(raw) > 4096:
        return _decode(raw, limits)
    return _decode_small(raw, limits)


@functools.lru_cache(maxsize=4096)
def _decode_small(raw: bytes, limits: DecodeLimits) -> Decoding:
    # Rows without arguments share one handler text: decode it once.
    return _decode(raw, limits)


def _decode(raw: bytes | None, limits: DecodeLimits) -> Decoding:
    try:
        decoded = decode_handler(raw, limits=limits)
    except PayloadDecodeError as exc:
        return Decoding(name=fallback_name(raw), error=str(exc))
    return Decoding(name=decoded.name, payload=decoded.payload)


@attrs.frozen(kw_only=True)
class JobRow:
    """One delayed_jobs row with its state and decoded name.

    Attributes:
        job: the row's columns (``handler`` as raw bytes, ``last_error`` whole).
        state: ``ready``, ``scheduled``, ``running``, ``failed`` or ``stuck``.
        decoding: the decoded name and payload, or why it cannot be decoded.
    """

    job: Job
    state: State
    decoding: Decoding

    @property
    def id(self) -> int:
        """The row id."""
        return self.job.id

    @property
    def name(self) -> str:
        """The decoded job name (the worker's fallback name when undecodable)."""
        return self.decoding.name

    @property
    def error(self) -> str | None:
        """The first line of last_error (the message), or None."""
        return first_line(self.job.last_error)

    def to_dict(self) -> dict[str, object]:
        """The row as ``djmw jobs list --json`` prints it."""
        job = self.job
        return {
            "id": job.id,
            "name": self.name,
            "state": self.state,
            "queue": job.queue,
            "priority": job.priority,
            "attempts": job.attempts,
            "run_at": iso(job.run_at),
            "locked_at": iso(job.locked_at),
            "locked_by": job.locked_by,
            "failed_at": iso(job.failed_at),
            "created_at": iso(job.created_at),
            "updated_at": iso(job.updated_at),
            "error": self.error,
            "undecodable": self.decoding.error,
        }


@attrs.frozen(kw_only=True)
class Page:
    """One page of ``Jobs.list``: keyset pagination by id.

    Attributes:
        rows: the rows, by id ascending.
        next_after: pass it as ``after`` for the next page; None on the last page.
    """

    rows: Sequence[JobRow]
    next_after: int | None

    def to_dict(self) -> dict[str, object]:
        """``{"rows": [...], "count": n, "next_after": id|null}``."""
        return {
            "rows": [row.to_dict() for row in self.rows],
            "count": len(self.rows),
            "next_after": self.next_after,
        }


@attrs.frozen(kw_only=True)
class JobDetail:
    """``Jobs.show``: a row, its payload as a perform function sees it, and why it is
    or is not runnable now.

    Attributes:
        row: the row.
        why: sentences saying what will happen to it (``scheduled in 4 min``,
            ``locked by host:x pid:1 for 12 s``, ``undecodable: ...``).
        registered: whether the given handlers have a perform function for it (None
            when no handlers were given).
    """

    row: JobRow
    why: Sequence[str]
    registered: bool | None = None

    def to_dict(self) -> dict[str, object]:
        """The row's keys, plus handler, last_error, payload, why and registered."""
        handler = self.row.job.handler
        text = handler.decode("utf-8", "replace") if isinstance(handler, bytes) else handler
        return {
            **self.row.to_dict(),
            "handler": text,
            "handler_sha1": hashlib.sha1(  # noqa: S324 - a fingerprint, not security
                handler if isinstance(handler, bytes) else (handler or "").encode()
            ).hexdigest(),
            "last_error": self.row.job.last_error,
            "payload": to_plain(self.row.decoding.payload),
            "why": list(self.why),
            "registered": self.registered,
        }


@attrs.frozen(kw_only=True)
class Change:
    """What a retry, delete or prune did (or, in a dry run, would do).

    Attributes:
        action: ``retry``, ``delete`` or ``prune``.
        dry_run: True when nothing was written.
        count: rows the database changed (in a dry run: rows that would change).
        ids: the rows selected and written to, ascending; a row a worker claimed
            between the selection and the write is left alone (then ``count`` is
            smaller than ``len(ids)``).
        held: rows asked for by id that a live worker holds, left alone.
        rows: in a dry run, the rows that would change; empty otherwise.
    """

    action: str
    dry_run: bool
    count: int
    ids: Sequence[int]
    held: Sequence[JobRow] = ()
    rows: Sequence[JobRow] = ()

    def to_dict(self) -> dict[str, object]:
        """``{"action", "dry_run", "count", "ids", "held": [rows], "rows": [rows]}``."""
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "count": self.count,
            "ids": list(self.ids),
            "held": [row.to_dict() for row in self.held],
            "rows": [row.to_dict() for row in self.rows],
        }
