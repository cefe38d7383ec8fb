"""Database URLs: ``mysql://``, ``mysql2://`` (Rails style), ``postgresql://``, ``sqlite:///path``."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import attrs

from djmw.errors import ConfigurationError

_MYSQL_SCHEMES = {"mysql", "mysql2", "mysql+pymysql", "mariadb", "trilogy"}
_SQLITE_SCHEMES = {"sqlite", "sqlite3"}
_POSTGRESQL_SCHEMES = {"postgres", "postgresql", "postgis", "postgresql+psycopg"}
#: Query parameters whose values are secrets: never shown by ``redacted``.
_SECRET_PARAMS = {"password", "sslpassword"}


@attrs.frozen(kw_only=True)
class DatabaseUrl:
    """A parsed database URL. Its repr and ``redacted`` never show the password.

    Forms: ``mysql://user:pass@host:3306/db`` (also ``mysql2://``, ``mariadb://``,
    ``mysql+pymysql://``; ``?socket=/run/mysqld/mysqld.sock`` for a unix socket);
    ``postgresql://user:pass@host:5432/db?sslmode=require`` (also ``postgres://`` and
    Rails' ``postgis://``; every query parameter is passed to libpq as a connection
    parameter, so ``?host=/var/run/postgresql`` selects a unix socket); and
    ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``, ``sqlite3:path.db``.
    """

    dialect: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    database: str | None = None
    socket: str | None = None
    path: str | None = None
    #: PostgreSQL: the URL's query parameters, in order (libpq connection parameters).
    params: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)

    @property
    def redacted(self) -> str:
        """The URL with the password replaced by ``***``, safe for logs and errors."""
        if self.dialect == "sqlite":
            return f"sqlite:///{self.path}"
        auth = self.user or ""
        if self.password:
            auth += ":***"
        host = f"{self.host or ''}:{self.port}" if self.port else (self.host or "")
        query = "&".join(
            f"{key}={'***' if key.lower() in _SECRET_PARAMS else value}"
            for key, value in self.params
        )
        text = f"{self.dialect}://{auth}@{host}/{self.database or ''}"
        return f"{text}?{query}" if query else text


def parse_url(url: str | None) -> DatabaseUrl:
    """Parse ``url`` (or ``$DATABASE_URL`` when None); ConfigurationError if it is bad."""
    if url is None:
        url = os.environ.get("DATABASE_URL")
        if not url:
            msg = "no database given: pass database=... or set DATABASE_URL."
            raise ConfigurationError(msg)
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme in _SQLITE_SCHEMES:
        path = (
            rest[3:]
            if rest.startswith("///")
            else rest.lstrip("/")
            if rest.startswith("//")
            else rest
        )
        if not path:
            msg = "bad database URL: sqlite needs a file path, as in sqlite:///jobs.db."
            raise ConfigurationError(msg)
        return DatabaseUrl(dialect="sqlite", path=unquote(path))
    if scheme in _MYSQL_SCHEMES or scheme in _POSTGRESQL_SCHEMES:
        dialect = "mysql" if scheme in _MYSQL_SCHEMES else "postgresql"
        problem: str | None = None
        try:
            parts = urlsplit(url)
            port = parts.port
            if "@" not in parts.netloc and "@" in parts.path + parts.query + parts.fragment:
                problem = "the user name or password holds a '/', '?' or '#'"
        except ValueError as exc:
            # A password holding '/', '?' or '#' is read as the port, and urlsplit's
            # message quotes it: report it redacted, and chain nothing.
            problem = _redact(str(exc), url)
        if problem is not None:
            msg = f"bad database URL {_safe(url)}: {problem}."
            if _userinfo(url):
                msg = msg[:-1] + "; percent-encode '/', '?', '#' and '@' in the user and password."
            raise ConfigurationError(msg)
        database = unquote(parts.path.lstrip("/")) or None
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if dialect == "postgresql":
            return DatabaseUrl(
                dialect=dialect,
                host=parts.hostname,
                port=port,
                user=user,
                password=password,
                database=database,
                params=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            )
        query = parse_qs(parts.query)
        return DatabaseUrl(
            dialect=dialect,
            host=parts.hostname,
            port=port,
            user=user,
            password=password,
            database=database,
            socket=next(iter(query.get("socket") or query.get("unix_socket") or []), None),
        )
    msg = (
        f"bad database URL {_safe(url)}: the scheme must be mysql://, mysql2://, mariadb://, "
        "postgresql://, postgres://, postgis:// or sqlite:///."
    )
    raise ConfigurationError(msg)


def _userinfo(url: str) -> str:
    # Everything between "://" and the last "@", even where urlsplit reads part of it as
    # the port or the path.
    _, separator, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    return userinfo if separator and at else ""


def _safe(url: str) -> str:
    # Never echo a password back in an error message.
    userinfo = _userinfo(url)
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        return repr(url.replace(f"{userinfo}@", f"{user}:***@", 1))
    return repr(url)


def _redact(text: str, url: str) -> str:
    userinfo = _userinfo(url)
    password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    # urlsplit quotes the password up to its first '/', '?' or '#' as the port.
    before_delimiter = re.split(r"[/?#]", password, maxsplit=1)[0]
    for secret in sorted({password, unquote(password), before_delimiter} - {""}, key=len)[::-1]:
        text = text.replace(secret, "***")
    return text
