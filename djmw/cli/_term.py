"""Terminal output for text that comes from job rows: escaped, cut, laid out in columns.

A row is written by anyone who can enqueue a job, so nothing in it may drive the
terminal: control characters (ESC, NUL, BEL, C1), format characters (right-to-left and
other bidi marks, zero-width characters), line and paragraph separators, surrogates,
private-use and unassigned code points are all shown as ``\\xNN``/``\\uNNNN`` escapes;
a long value is cut at a width and ends with ``…``. ``--json`` output is safe by itself
(``json.dumps`` escapes everything outside printable ASCII).
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence
from datetime import datetime

from djmw.admin.escapes import escape_char

#: How much of one block (a last_error, a handler) ``block`` prints at most.
BLOCK_CHARS = 20_000


def _width(piece: str) -> int:
    if len(piece) > 1:  # an escape: ASCII
        return len(piece)
    if unicodedata.combining(piece):
        return 0
    return 2 if unicodedata.east_asian_width(piece) in ("W", "F") else 1


def clean(text: object, limit: int | None = 80) -> str:
    """``text`` (None shows as ``-``) escaped; at most ``limit`` columns wide."""
    if text is None:
        return "-"
    value = text if isinstance(text, str) else str(text)
    # Never walk a 10 MB value for one cell.
    capped = limit is not None and len(value) > limit * 4 + 8
    if capped and limit is not None:
        value = value[: limit * 4 + 8]
    pieces = [escape_char(char) for char in value]
    if limit is None:
        return "".join(pieces)
    widths = [_width(piece) for piece in pieces]
    if not capped and sum(widths) <= limit:
        return "".join(pieces)
    out: list[str] = []
    used = 0
    for piece, width in zip(pieces, widths, strict=True):
        if used + width > limit - 1:
            break
        out.append(piece)
        used += width
    return "".join(out) + "…"


def display_width(text: str) -> int:
    """Columns ``text`` (already clean) takes on a terminal."""
    return sum(_width(char) for char in text)


def block(text: str | None, indent: str = "    ", max_chars: int = BLOCK_CHARS) -> str:
    """A multi-line value (a last_error, a payload), each line escaped and indented."""
    if text is None:
        return f"{indent}-"
    shown = text[:max_chars]
    lines = [indent + clean(line, None) for line in shown.split("\n")]
    if len(text) > max_chars:
        lines.append(f"{indent}… ({len(text)} characters in all; --json has the whole text)")
    return "\n".join(lines)


def when(value: datetime | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS``, or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest (clean) cell; ``right`` lists right-aligned ones."""
    widths = [display_width(h) for h in headers]
    for row in rows:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], display_width(cell))
    lines = []
    for row in [list(headers), *[list(r) for r in rows]]:
        cells = []
        for column, cell in enumerate(row):
            pad = " " * (widths[column] - display_width(cell))
            cells.append(pad + cell if column in right else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class Refused(Exception):
    """A destructive command was not confirmed."""


def confirm(question: str, *, yes: bool) -> None:
    """Ask ``question``; raise Refused unless answered yes (or ``yes`` is already given).

    Without a terminal on standard input nothing can be asked: refuse, pointing to
    ``--yes``.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        msg = f"{question} Not confirmed: standard input is not a terminal; pass --yes."
        raise Refused(msg)
    print(f"{question} [y/N] ", end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        msg = "Not confirmed; nothing was changed."
        raise Refused(msg)
