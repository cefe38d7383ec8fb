"""The ``djmw`` command: ``work``, ``schema``, ``demo``; ``jobs``, ``enqueue``, ``check``
(``djmw.cli.jobs``); ``web`` (``djmw.cli.web``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from djmw import __version__
from djmw.backends import open_backend, parse_url
from djmw.cli.jobs import register as register_jobs_commands
from djmw.cli.pool import WorkerPool, worker_names
from djmw.cli.supervisor import Supervisor
from djmw.cli.web import register as register_web_command
from djmw.config import load_config, worker_from_mapping
from djmw.errors import ConfigurationError, DjmwError
from djmw.logs import DelayedJobFormatter, LineHandler
from djmw.observe import command as observe
from djmw.worker import Worker, default_worker_name


def configure_logging(level: int = logging.INFO) -> None:
    """Log as delayed_job does: ``<%FT%T%z>: [Worker(<name>)] ...`` on standard output.

    Lines are flushed in the background within 0.2 s (at once from WARNING up): a
    flush per line would be a system call per log line, two per job.
    """
    handler = LineHandler(sys.stdout)
    handler.setFormatter(DelayedJobFormatter())
    root = logging.getLogger("djmw")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _work(args: argparse.Namespace) -> int:
    if args.processes > 1 and args.process_index is None:
        with observe.fleet(args, lambda: _build_worker(args, "djmw queue monitor")) as extra:
            return Supervisor([*_child_args(args.argv), *extra], args.processes).run()
    base = args.name
    if base and args.process_index is not None:
        base = f"{base}.{args.process_index}"
    names = worker_names(base, args.threads, default_worker_name)
    workers = [_build_worker(args, name) for name in names]
    with observe.in_process(args, workers):
        return WorkerPool(workers, grace=args.grace).run()


def _build_worker(args: argparse.Namespace, name: str) -> Worker:
    overrides = {
        "database": args.database,
        "queues": args.queues,
        "min_priority": args.min_priority,
        "max_priority": args.max_priority,
        "sleep_delay": args.sleep_delay,
        "name": name,
        "exit_on_complete": True if args.exit_on_complete else None,
        "max_run_time": args.max_run_time,
        "table": args.table,
        "handlers": args.handlers,
        "max_reserve_errors": args.max_reserve_errors,
        "prefetch": args.prefetch,
    }
    if args.config:
        return load_config(args.config, **overrides)
    return worker_from_mapping({}, **overrides)


def _child_args(argv: Sequence[str]) -> list[str]:
    """Drop ``--processes N`` (both spellings) from the parent's arguments."""
    child: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--processes":
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        child.append(arg)
    return child


def _schema(args: argparse.Namespace) -> int:
    url = parse_url(args.database)
    if (args.notify or args.remove_notify) and url.dialect != "postgresql":
        msg = (
            f"--notify and --remove-notify need PostgreSQL (LISTEN/NOTIFY); {url.redacted} "
            "is not a PostgreSQL URL."
        )
        raise ConfigurationError(msg)
    backend = open_backend(url, table=args.table)
    try:
        backend.create_schema()
        backend.check_schema()
        print(f"table {args.table!r} is ready")
        if args.notify or args.remove_notify:
            from djmw.backends.postgresql import PostgresqlBackend  # noqa: PLC0415

            assert isinstance(backend, PostgresqlBackend)  # noqa: S101 - the dialect says so
            if args.notify:
                backend.install_notify()
                print(f"notify trigger installed: channel {backend.channel!r}")
            else:
                backend.remove_notify()
                print("notify trigger removed: workers poll every sleep_delay")
    finally:
        backend.close()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from djmw.cli.demo import run_demo  # noqa: PLC0415 - only the demo needs it

    for line in run_demo(args.database):
        print(line)
    return 0


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    top = argparse.ArgumentParser(prog="djmw", description="Run delayed_job jobs in Python.")
    top.add_argument("--version", action="version", version=f"djmw {__version__}")
    commands = top.add_subparsers(dest="command", required=True)

    work = commands.add_parser("work", help="run a worker until stopped (TERM/INT)")
    work.add_argument("--config", help="a TOML config file (see djmw.config)")
    work.add_argument("--database", help="database URL (default $DATABASE_URL)")
    work.add_argument("--handlers", help="dotted path of a djmw.Handlers, e.g. myapp.jobs:handlers")
    work.add_argument("--queues", help="comma-separated queues (default: all)")
    work.add_argument("--min-priority", type=int)
    work.add_argument("--max-priority", type=int)
    work.add_argument("--sleep-delay", type=float)
    work.add_argument("--max-run-time", type=float)
    work.add_argument("--name", help="worker name (default host:<host> pid:<pid>)")
    work.add_argument("--table")
    work.add_argument("--exit-on-complete", action="store_true")
    work.add_argument(
        "--processes", type=_positive_int, default=1, help="worker processes (default 1)"
    )
    work.add_argument(
        "--threads", type=_positive_int, default=1, help="worker threads per process (default 1)"
    )
    work.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds running jobs get to finish after TERM/INT (default 30)",
    )
    work.add_argument(
        "--max-reserve-errors",
        type=_positive_int,
        help="consecutive reserve errors before exiting (default 10)",
    )
    work.add_argument(
        "--prefetch",
        type=_positive_int,
        help="rows claimed per transaction (default 1); a crash leaves up to this many locked",
    )
    work.add_argument("--process-index", type=int, help=argparse.SUPPRESS)
    observe.add_arguments(work)
    work.set_defaults(run=_work)

    schema = commands.add_parser("schema", help="create the delayed_jobs table")
    schema.add_argument("--database", help="database URL (default $DATABASE_URL)")
    schema.add_argument("--table", default="delayed_jobs")
    notify = schema.add_mutually_exclusive_group()
    notify.add_argument(
        "--notify",
        action="store_true",
        help="PostgreSQL: install the trigger that wakes idle workers when a job is ready",
    )
    notify.add_argument(
        "--remove-notify", action="store_true", help="PostgreSQL: remove that trigger"
    )
    schema.set_defaults(run=_schema)

    demo = commands.add_parser("demo", help="run a worker over demo jobs in an SQLite file")
    demo.add_argument("--database", default="sqlite:///demo.db")
    demo.set_defaults(run=_demo)
    register_jobs_commands(commands)
    register_web_command(commands)
    return top


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``djmw`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    configure_logging()
    observe.configure_log_format(args)
    try:
        return int(args.run(args))
    except DjmwError as exc:
        print(f"djmw: {exc}", file=sys.stderr)
        return 2
