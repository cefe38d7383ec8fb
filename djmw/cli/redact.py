"""Keep passwords out of the command's output: a logging filter and a text scrubber.

Every code path that reports a database URL already shows it redacted
(``DatabaseUrl.redacted``); this is the command's second line of defence, for text that
comes from elsewhere (a driver's message, a traceback). It knows the passwords of the
URLs the command was given: ``--database``, ``$DATABASE_URL`` and the config file's
``database``.

Limits: a password is scrubbed wherever it appears only when it has at least
``MIN_BARE_SECRET`` characters; a shorter one (``djmw``, ``secret``) would garble every
line holding that word, so it is scrubbed only where it follows a user name, as
``user:<password>@`` in a URL. The code paths above never print it anyway.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

from djmw.backends.url import url_secrets

#: Shorter passwords are scrubbed only in a URL's ``user:<password>@``.
MIN_BARE_SECRET = 8


class Redactor(logging.Filter):
    """Replace known passwords by ``***`` in log records and in text.

    Args:
        secrets: the texts to hide.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    @classmethod
    def for_urls(cls, *urls: str | None) -> Redactor:
        """A Redactor for the passwords of ``urls`` (None entries are skipped)."""
        redactor = cls()
        for url in urls:
            if url:
                redactor.add(url_secrets(url))
        return redactor

    def add(self, secrets: Iterable[str]) -> None:
        """Hide ``secrets`` too."""
        found = {*self.secrets, *(s for s in secrets if s)}
        self.secrets = sorted(found, key=len, reverse=True)

    def add_config(self, path: str | None) -> None:
        """Hide the password of the ``database`` in the config file at ``path``, if any."""
        if not path:
            return
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # the command reports the unreadable file itself
        worker = data.get("worker", data)
        database = worker.get("database") if isinstance(worker, dict) else None
        if isinstance(database, str):
            self.add(url_secrets(database))

    def redact(self, text: str) -> str:
        """Return ``text`` with every known password replaced by ``***``."""
        for secret in self.secrets:
            if len(secret) >= MIN_BARE_SECRET:
                text = text.replace(secret, "***")
            else:
                text = re.sub(rf"(:){re.escape(secret)}(@)", r"\1***\2", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record's message and traceback; always keep the record."""
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
