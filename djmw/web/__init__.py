"""The djmw dashboard: see and act on delayed_jobs rows in a browser.

``app(database=..., read_only=...)`` returns an ASGI app (a ``Dashboard``) that
``djmw web`` serves with uvicorn, and that a Starlette or FastAPI application can mount
under a path prefix::

    from fastapi import FastAPI
    import djmw.web

    dashboard = djmw.web.app(database="mysql2://app:secret@db1/app", read_only=True)
    api = FastAPI()
    api.mount("/jobs", dashboard)          # and dashboard.close() when the app stops

It is the top layer beside ``djmw.cli``: every read and write goes through the
operations API (``djmw.admin.Jobs``), so states, names and the live-worker guard are the
worker's own. Needs the ``djmw[web]`` extra (starlette, jinja2, uvicorn); static assets
ship in the package, with no build step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from djmw.backends import DatabaseUrl
from djmw.web.app import Dashboard
from djmw.web.settings import WebSettings, check_bind, from_sources, is_loopback

__all__ = ["app", "Dashboard", "WebSettings", "check_bind", "is_loopback"]


def app(
    database: str | DatabaseUrl | None = None,
    *,
    read_only: bool = False,
    config: str | Path | None = None,
    **options: Any,
) -> Dashboard:
    """Build the dashboard over one delayed_jobs table.

    Args:
        database: the database URL (``$DATABASE_URL`` when None and the config file
            names none).
        read_only: show no action and refuse every POST.
        config: a TOML file whose ``[web]`` table gives any ``WebSettings`` option
            (``token``, ``user``, ``password``, ``read_only``, ...; ``database`` falls back
            to ``[worker].database``).
        options: any other ``WebSettings`` option (``table``, ``max_run_time``,
            ``token``, ``user``, ``password``, ``secret``, ``handlers``, ``refresh``, ...).
            Credentials not given here or in the file come from ``DJMW_WEB_TOKEN``,
            ``DJMW_WEB_USER`` and ``DJMW_WEB_PASSWORD``.

    Raises:
        ConfigurationError / BackendError: a bad option, URL, unreachable database or
            missing table (with the same messages as ``djmw work``, never a password).
    """
    settings, _server = from_sources(
        {"database": database, "read_only": read_only or None, **options}, config=config
    )
    return Dashboard(settings)
