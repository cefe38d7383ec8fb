"""Row text as the dashboard shows it: every character visible, long values cut.

HTML escaping (Jinja's autoescape, on for every template) keeps row text from becoming
markup; this module keeps it from misleading the reader. Control characters (NUL, ESC,
C1), format characters (right-to-left overrides and other bidi marks, zero-width
characters), line and paragraph separators, surrogates, private-use and unassigned code
points are shown as ``\\xNN`` / ``\\uNNNN`` escapes, as ``djmw jobs`` shows them in a
terminal, so a hostile handler or last_error cannot reorder or hide text on the page.
The result is still plain text: the templates escape it.
"""

from __future__ import annotations

from datetime import datetime

from djmw.admin import human
from djmw.admin.escapes import escape_char

#: How much of one block (a last_error, a handler) a page shows at most.
BLOCK_CHARS = 65_536


def visible(text: object, limit: int | None = 120) -> str:
    """One line of row text (None is ``-``): escaped, at most ``limit`` characters."""
    if text is None:
        return "-"
    value = text if isinstance(text, str) else str(text)
    cut = limit is not None and len(value) > limit
    if cut and limit is not None:
        value = value[: limit - 1]
    shown = "".join(escape_char(char) for char in value)
    return shown + "…" if cut else shown


def block(text: object, limit: int = BLOCK_CHARS) -> str:
    """A multi-line value (a last_error, a handler): lines kept, everything else escaped,
    at most ``limit`` characters, with a note saying how long the whole value is."""
    if text is None:
        return "-"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    value = text if isinstance(text, str) else str(text)
    shown = "".join(escape_char(char, keep_newlines=True) for char in value[:limit])
    if len(value) > limit:
        shown += f"\n… (cut: {len(value):,} characters in all)"
    return shown


def when(value: datetime | None) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM:SS`` (UTC, as the table holds it), or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def relative(value: datetime | None, now: datetime) -> str:
    """``4 min ago`` / ``in 3 h`` / ``-``."""
    if value is None:
        return "-"
    seconds = (value - now).total_seconds()
    return f"in {human(seconds)}" if seconds > 0 else f"{human(seconds)} ago"


def age(seconds: float | None) -> str:
    """A duration in seconds as ``12 s`` / ``4 min`` / ``-``."""
    return "-" if seconds is None else human(seconds)
