"""``djmw web``: serve the dashboard (``djmw.web``) with uvicorn.

Binds 127.0.0.1:8080 by default; refuses any address beyond this machine unless a token
or a basic-auth user and password is set (``DJMW_WEB_TOKEN``, ``DJMW_WEB_USER`` and
``DJMW_WEB_PASSWORD``, or the ``[web]`` table of ``--config``). The web extra is imported
only when the command runs, so ``djmw`` works without it.
"""

from __future__ import annotations

import argparse
from typing import Any

from djmw.errors import ConfigurationError


def register(commands: Any) -> None:
    """Add ``web`` to the ``djmw`` command's subparsers."""
    web = commands.add_parser("web", help="serve the dashboard in a browser")
    web.add_argument("--database", help="database URL (default $DATABASE_URL)")
    web.add_argument("--table", help="the delayed_jobs table (default delayed_jobs)")
    web.add_argument(
        "--max-run-time", type=float, help="the workers' max_run_time in seconds (default 4 h)"
    )
    web.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    web.add_argument("--port", type=int, help="port (default 8080)")
    web.add_argument("--read-only", action="store_true", default=None, help="no actions: only look")
    web.add_argument("--config", help="a TOML file with a [web] table")
    web.add_argument(
        "--handlers", help="dotted path of a djmw.Handlers, to say if one is registered"
    )
    web.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the bind and the table, then serve until interrupted."""
    try:
        import uvicorn  # noqa: PLC0415 - the optional web extra

        from djmw.web import Dashboard, check_bind  # noqa: PLC0415
        from djmw.web.settings import from_sources  # noqa: PLC0415
    except ImportError as exc:
        msg = f"djmw web needs the web extra: pip install 'djmw[web]' ({exc.name} is missing)."
        raise ConfigurationError(msg) from None
    overrides = {
        "database": args.database,
        "table": args.table,
        "max_run_time": args.max_run_time,
        "read_only": args.read_only,
        "handlers": args.handlers,
    }
    settings, server = from_sources(overrides, config=args.config)
    host = args.host or server.get("host") or "127.0.0.1"
    port = args.port or server.get("port") or 8080
    if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
        msg = "[web] host must be text and port an integer."
        raise ConfigurationError(msg)
    check_bind(host, settings)
    dashboard = Dashboard(settings)
    print(f"djmw dashboard on http://{host}:{port}/ ({dashboard.database}); Ctrl-C stops it")
    uvicorn.run(dashboard, host=host, port=port, log_level="warning", lifespan="on")
    return 0
