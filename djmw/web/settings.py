"""The dashboard's settings: which table, read-only or not, and who may open it.

``WebSettings`` is built from keyword arguments (``djmw.web.app(...)``), the ``[web]``
table of a TOML config file and the environment (``DJMW_WEB_TOKEN``, ``DJMW_WEB_USER``,
``DJMW_WEB_PASSWORD``, ``DJMW_WEB_SECRET``), in that order of precedence. It sits below
the dashboard's app and above nothing but ``djmw.validation``: reading settings opens no
connection.

A token and a password are secrets: they are kept out of ``repr`` and out of every
message, a bad one is named but never shown.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from djmw.backends import DatabaseUrl
from djmw.errors import ConfigurationError
from djmw.validation import boolean, positive_int, positive_number, string

#: The environment variables the dashboard reads its credentials from.
ENV_TOKEN = "DJMW_WEB_TOKEN"  # noqa: S105 - the variable's name, not a token
ENV_USER = "DJMW_WEB_USER"
ENV_PASSWORD = "DJMW_WEB_PASSWORD"  # noqa: S105 - the variable's name, not a password
ENV_SECRET = "DJMW_WEB_SECRET"  # noqa: S105 - the variable's name, not a secret

#: Keys of the ``[web]`` config table.
CONFIG_KEYS = frozenset(
    {
        "database",
        "table",
        "max_run_time",
        "read_only",
        "token",
        "user",
        "password",
        "secret",
        "host",
        "port",
        "handlers",
        "refresh",
        "page_size",
    }
)


def _secret(instance: object, attribute: Any, value: object) -> None:
    # Never echo the value: it is a credential.
    if value is not None and (not isinstance(value, str) or not value.strip()):
        msg = f"{type(instance).__name__}: {attribute.name} must be non-empty text (not shown)."
        raise ConfigurationError(msg)


def _database(instance: object, attribute: Any, value: object) -> None:
    if value is not None and not isinstance(value, str | DatabaseUrl):
        msg = f"WebSettings: database must be a URL, got a {type(value).__name__}."
        raise ConfigurationError(msg)


@attrs.frozen(kw_only=True)
class WebSettings:
    """How one dashboard reads its table and whom it lets in.

    Attributes:
        database: the database URL (``$DATABASE_URL`` when None).
        table: the delayed_jobs table.
        max_run_time: the workers' max_run_time in seconds: a lock younger than this
            is held by a live worker, and no action touches that row.
        read_only: show no action and refuse every POST.
        token: a bearer token (``Authorization: Bearer``, or typed into the login page).
        user / password: HTTP basic-auth credentials (both or neither).
        secret: the key CSRF tokens are signed with; random per process when None (set
            it when several processes serve one dashboard).
        handlers: a ``djmw.Handlers`` (or container of names): the job page then says
            whether a perform function is registered for the job.
        refresh: seconds between live refreshes of the overview, and how old its counts
            may get before they are read again.
        page_size: rows per list page.
        failures_newest: the failures page groups at most this many broken rows, the
            newest first, and says so when older ones exist.
        summary_wait: seconds a page waits for counts being read before it shows the
            previous ones (or "counting...") and lets the live refresh bring them.
        connections: database connections the dashboard uses at most (one per thread
            that reads for it).

    Limits: credentials are compared in constant time but sent in clear: serve the
    dashboard behind TLS when it leaves the host.
    """

    database: str | DatabaseUrl | None = attrs.field(default=None, validator=_database)
    table: str = attrs.field(default="delayed_jobs", validator=string)
    max_run_time: float = attrs.field(default=4 * 3600.0, validator=positive_number)
    read_only: bool = attrs.field(default=False, validator=boolean)
    token: str | None = attrs.field(default=None, repr=False, validator=_secret)
    user: str | None = attrs.field(default=None, validator=_secret)
    password: str | None = attrs.field(default=None, repr=False, validator=_secret)
    secret: str | None = attrs.field(default=None, repr=False, validator=_secret)
    handlers: object = None
    refresh: float = attrs.field(default=5.0, validator=positive_number)
    page_size: int = attrs.field(default=50, validator=positive_int)
    failures_newest: int = attrs.field(default=10_000, validator=positive_int)
    summary_wait: float = attrs.field(default=0.1, validator=positive_number)
    connections: int = attrs.field(default=4, validator=positive_int)

    def __attrs_post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            msg = (
                "WebSettings: basic authentication needs both user and password "
                f"({ENV_USER} and {ENV_PASSWORD}, or user and password in [web])."
            )
            raise ConfigurationError(msg)

    @property
    def authenticated(self) -> bool:
        """True when a token or a basic-auth user and password is set."""
        return self.token is not None or self.user is not None


def from_sources(
    overrides: Mapping[str, Any] | None = None,
    *,
    config: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[WebSettings, dict[str, Any]]:
    """Settings from ``overrides`` (None values ignored), the config file's ``[web]``
    table, then the environment; also the config table's ``host`` and ``port``.

    Raises ConfigurationError naming a bad file, table or key (never a secret's value).
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for key, env in (
        ("token", ENV_TOKEN),
        ("user", ENV_USER),
        ("password", ENV_PASSWORD),
        ("secret", ENV_SECRET),
    ):
        if environ.get(env):
            values[key] = environ[env]
    server: dict[str, Any] = {}
    if config is not None:
        table = _web_table(config)
        for key in ("host", "port"):
            if key in table:
                server[key] = table.pop(key)
        values.update(table)
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    if isinstance(values.get("handlers"), str):
        from djmw.config import import_object  # noqa: PLC0415 - only a dotted path needs it

        values["handlers"] = import_object(values["handlers"], "handlers")
    return WebSettings(**values), server


def _web_table(path: str | Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read config file {str(path)!r}: {exc.strerror or exc}."
        raise ConfigurationError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"config file {str(path)!r} is not valid TOML: {exc}."
        raise ConfigurationError(msg) from None
    table = data.get("web", {})
    if not isinstance(table, dict):
        msg = f"config file {str(path)!r}: [web] must be a table."
        raise ConfigurationError(msg)
    unknown = sorted(set(table) - CONFIG_KEYS)
    if unknown:
        msg = (
            f"config file {str(path)!r}: unknown [web] key {unknown[0]!r}; known keys are "
            f"{', '.join(sorted(CONFIG_KEYS))}."
        )
        raise ConfigurationError(msg)
    if "database" not in table and isinstance(data.get("worker"), dict):
        database = data["worker"].get("database")
        if database is not None:
            table["database"] = database
    return dict(table)


def is_loopback(host: str) -> bool:
    """True when ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_bind(host: str, settings: WebSettings) -> None:
    """Refuse to listen beyond this machine without authentication."""
    if is_loopback(host) or settings.authenticated:
        return
    msg = (
        f"refusing to serve the dashboard on {host!r} without authentication: set a token "
        f"({ENV_TOKEN}, or token in the [web] table of --config) or a basic-auth user and "
        f"password ({ENV_USER} and {ENV_PASSWORD}), or bind 127.0.0.1."
    )
    raise ConfigurationError(msg)
