"""Row text made safe to show a person: each character visible as itself or as an escape.

A row is written by anyone who can enqueue a job, so nothing in it may drive a terminal
or mislead a reader: control characters (ESC, NUL, BEL, C1), format characters
(right-to-left and other bidi marks, zero-width characters), line and paragraph
separators, surrogates, private-use and unassigned code points become ``\\xNN`` /
``\\uNNNN`` / ``\\UNNNNNNNN`` escapes. Used by the command line (``djmw.cli._term``) and
the dashboard (``djmw.web.text``), so both show a row the same way. HTML escaping is not
its job: the dashboard's templates do that.
"""

from __future__ import annotations

import unicodedata

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x00": "\\0", "\x1b": "\\e"}
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def escape_char(char: str, *, keep_newlines: bool = False) -> str:
    """Return ``char`` if it is safe to show, else its escape (``\\n`` too, unless
    ``keep_newlines``)."""
    if char == "\n" and keep_newlines:
        return char
    if char in _ESCAPES:
        return _ESCAPES[char]
    if unicodedata.category(char) not in _UNSAFE:
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
