"""The ``djmw`` command: ``work``, ``schema``, ``demo``; ``jobs``, ``enqueue``, ``check``
(``djmw.cli.jobs``); ``web`` (``djmw.cli.web``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from djmw import __version__
from djmw.backends import open_backend, parse_url, registry_table_for
from djmw.backends.mysql import MysqlBackend
from djmw.cli.jobs import register as register_jobs_commands
from djmw.cli.pool import ControlChannel, WorkerPool, worker_names
from djmw.cli.redact import Redactor
from djmw.cli.supervisor import Supervisor
from djmw.cli.web import register as register_web_command
from djmw.config import load_config, worker_from_mapping
from djmw.errors import ConfigurationError, DjmwError
from djmw.logs import DelayedJobFormatter, LineHandler
from djmw.observe import command as observe
from djmw.worker import Worker, default_worker_name


def configure_logging(level: int = logging.INFO, *, redactor: Redactor | None = None) -> None:
    """Log as delayed_job does: ``<%FT%T%z>: [Worker(<name>)] ...`` on standard output.

    ``redactor`` removes known passwords from every line. Lines are flushed in the
    background within 0.2 s (at once from WARNING up): a flush per line would be a system
    call per log line, two per job.
    """
    handler = LineHandler(sys.stdout)
    handler.setFormatter(DelayedJobFormatter())
    if redactor is not None:
        handler.addFilter(redactor)
    root = logging.getLogger("djmw")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _work(args: argparse.Namespace) -> int:
    if args.processes > 1 and args.process_index is None:
        # Check the whole configuration (database, table, handlers) once, here, so that a
        # mistake fails at start instead of crashing every child in turn.
        check = _build_worker(args, default_worker_name("djmw.check "))
        check.prepare()
        check.close(clear_locks=False)
        with observe.fleet(args, lambda: _build_worker(args, "djmw queue monitor")) as extra:
            supervisor = Supervisor(
                [*_child_args(args.argv), *extra],
                args.processes,
                max_crashes=args.max_crashes,
                crash_window=args.crash_window,
            )
            return supervisor.run()
    base = args.name
    if base and args.process_index is not None:
        base = f"{base}.{args.process_index}"
    names = worker_names(base, args.threads, default_worker_name)
    workers = [_build_worker(args, name) for name in names]
    control = None
    if args.control_fd is not None:
        control = ControlChannel(socket.socket(fileno=args.control_fd))
    with observe.in_process(args, workers):
        return WorkerPool(workers, grace=args.grace, control=control).run()


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
        "unknown_jobs": args.unknown_jobs,
        "prefetch": args.prefetch,
        **_registry_overrides(args),
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
    if args.name_index and url.dialect != "mysql":
        msg = (
            f"--name-index is for MariaDB; on {url.redacted} class-aware claims filter on "
            "the handler text."
        )
        raise ConfigurationError(msg)
    backend = open_backend(url, table=args.table)
    registry = args.registry_table or registry_table_for(args.table)
    try:
        backend.create_schema()
        if args.name_index:
            assert isinstance(backend, MysqlBackend)  # noqa: S101 - the dialect says so
            backend.create_name_index()
        backend.check_schema()
        extra = " with the job-name index" if args.name_index else ""
        print(f"table {args.table!r} is ready{extra}")
        backend.create_registry(registry)
        backend.check_registry(registry)
        print(f"worker registry table {registry!r} is ready")
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

    for line in run_demo(args.database, force=args.force):
        print(line)
    return 0


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    top = argparse.ArgumentParser(prog="djmw", description="Run delayed_job jobs in Python.")
    top.add_argument("--version", action="version", version=f"djmw {__version__}")
    commands = top.add_subparsers(dest="command", required=True)

    work = commands.add_parser(
        "work",
        help="run workers until stopped (TERM/INT: graceful; twice: hard; QUIT: at once)",
        description="Run delayed_job workers over the table until stopped. The first TERM "
        "or INT (Ctrl-C) lets running jobs finish; a second one interrupts them, unlocking "
        "their rows; QUIT unlocks them at once.",
    )
    work.add_argument("--config", help="a TOML config file with a [worker] table (see djmw.config)")
    work.add_argument(
        "--database",
        help="database URL: mysql://user:pass@host:3306/db, mysql2://..., mariadb://... or "
        "sqlite:///relative.db, sqlite:////abs/path.db (default $DATABASE_URL); an SQLite "
        "file must exist (create it with `djmw schema`)",
    )
    work.add_argument(
        "--handlers",
        help="dotted path of a djmw.Handlers, e.g. myapp.jobs:handlers (the current "
        "directory is importable)",
    )
    work.add_argument(
        "--queues", help="comma-separated queues to work (default: every queue, NULL included)"
    )
    work.add_argument(
        "--min-priority", type=int, help="only jobs with priority >= N (inclusive; 0 counts)"
    )
    work.add_argument(
        "--max-priority", type=int, help="only jobs with priority <= N (inclusive; 0 counts)"
    )
    work.add_argument(
        "--sleep-delay", type=float, help="seconds to sleep when no job is ready (default 5)"
    )
    work.add_argument(
        "--max-run-time",
        type=float,
        help="seconds a job may run, and after which another worker takes its lock "
        "(default 14400, 4 h)",
    )
    work.add_argument(
        "--name",
        help="worker name written to locked_by (default host:<host> pid:<pid>; with "
        "--threads or --processes, <name>.<i>); must be unique among live workers",
    )
    work.add_argument(
        "--table",
        help="the delayed_jobs table's name, ActiveRecord's prefix included (default delayed_jobs)",
    )
    work.add_argument(
        "--exit-on-complete",
        action="store_true",
        help="exit when no job is ready (exit 1 if the queue could not be read)",
    )
    work.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        help="worker processes under a supervisor that restarts crashed ones (default 1)",
    )
    work.add_argument(
        "--threads", type=_positive_int, default=1, help="worker threads per process (default 1)"
    )
    work.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds running jobs get to finish after the first TERM/INT (default 30)",
    )
    work.add_argument(
        "--max-reserve-errors",
        type=_positive_int,
        help="consecutive reserve errors before exiting (default 10)",
    )
    work.add_argument(
        "--unknown-jobs",
        choices=("skip", "fail"),
        help="rows whose job has no perform function here: skip (default) leaves them for "
        "other workers, untouched; fail fails them at once, as delayed_job does",
    )
    work.add_argument(
        "--prefetch",
        type=_positive_int,
        help="rows claimed per transaction (default 1); a crash leaves up to this many "
        "locked, until the orphan rescue releases them",
    )
    work.add_argument(
        "--max-crashes",
        type=_positive_int,
        default=10,
        help="with --processes: give up, stopping the fleet and exiting 1, after this many "
        "worker process crashes within --crash-window (default 10)",
    )
    work.add_argument(
        "--crash-window",
        type=float,
        default=300.0,
        help="with --processes: seconds over which crashes are counted (default 300)",
    )
    _add_logging_options(work)
    work.add_argument("--process-index", type=int, help=argparse.SUPPRESS)
    _add_registry_options(work)
    work.add_argument("--control-fd", type=int, help=argparse.SUPPRESS)
    observe.add_arguments(work)
    work.set_defaults(run=_work)

    schema = commands.add_parser(
        "schema",
        help="create the delayed_jobs table and the worker registry table (only those missing; "
        "for SQLite, the database file too)",
    )
    schema.add_argument(
        "--registry-table",
        help="the worker registry table (default delayed_workers beside delayed_jobs)",
    )
    schema.add_argument(
        "--database",
        help="database URL (default $DATABASE_URL); an SQLite file is created if missing",
    )
    schema.add_argument(
        "--table", default="delayed_jobs", help="the table's name (default delayed_jobs)"
    )
    schema.add_argument(
        "--name-index",
        action="store_true",
        help="MariaDB: also add the djmw_name_key virtual column and its index, so that "
        "class-aware claims stay fast however many other jobs wait (to an existing table too)",
    )
    notify = schema.add_mutually_exclusive_group()
    notify.add_argument(
        "--notify",
        action="store_true",
        help="PostgreSQL: install the trigger that wakes idle workers when a job is ready",
    )
    notify.add_argument(
        "--remove-notify", action="store_true", help="PostgreSQL: remove that trigger"
    )
    _add_logging_options(schema)
    schema.set_defaults(run=_schema)

    demo = commands.add_parser("demo", help="run a worker over demo jobs in an SQLite file")
    demo.add_argument(
        "--database",
        default="sqlite:///demo.db",
        help="the SQLite file to create (default sqlite:///demo.db); an existing file is "
        "replaced only if an earlier demo made it, or with --force",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="replace the file even if it is not a demo database",
    )
    _add_logging_options(demo)
    demo.set_defaults(run=_demo)
    register_jobs_commands(commands)
    register_web_command(commands)
    return top


def _add_registry_options(work: argparse.ArgumentParser) -> None:
    """The worker registry's options of ``djmw work`` (see djmw.registry)."""
    work.add_argument(
        "--no-registry",
        action="store_true",
        help="do not record workers in the registry table nor rescue dead workers' jobs",
    )
    work.add_argument(
        "--registry-table",
        help="the worker registry table (default delayed_workers beside delayed_jobs)",
    )
    work.add_argument(
        "--heartbeat-interval",
        type=_positive_float,
        help="seconds between a worker's registry heartbeats (default 15)",
    )
    work.add_argument(
        "--dead-worker-timeout",
        type=_positive_float,
        help="a worker whose heartbeat is older than this many seconds is dead; its jobs "
        "are rescued and charged an attempt (default 60)",
    )


def _registry_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "registry": False if args.no_registry else None,
        "registry_table": args.registry_table,
        "heartbeat_interval": args.heartbeat_interval,
        "dead_worker_timeout": args.dead_worker_timeout,
    }


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        msg = f"must be a positive number of seconds, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_logging_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="the lowest level written to standard output (default INFO)",
    )
    command.add_argument(
        "--quiet",
        action="store_true",
        help="only warnings and errors: no per-job lines (the same as --log-level WARNING)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def command() -> NoReturn:
    """The ``djmw`` console script and ``python -m djmw``: run ``main``, then exit with its
    status.

    Once the command has finished, the shutdown signals are ignored: one arriving then (a
    second Ctrl-C racing the exit) would otherwise kill the process as Python restores
    the default handlers while it shuts down, and replace the exit status with the
    signal's.
    """
    try:
        code: str | int | None = main()
    except SystemExit as exc:  # argparse's --help and --version end here too
        code = exc.code
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``djmw`` command.

    Exit codes: 0 done, 1 a runtime failure (crashed workers, a hard stop, an unexpected
    error), 2 bad configuration or an unusable database at start. No output shows the
    password of a database URL given on the command line, in ``$DATABASE_URL`` or in the
    config file: every line is redacted on its way out.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    # As gunicorn, celery and rq do: `--handlers myapp.jobs:handlers` works from the app's
    # folder with the console script too (``python -m`` puts it first by itself).
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    secrets = Redactor.for_urls(getattr(args, "database", None), os.environ.get("DATABASE_URL"))
    secrets.add_config(getattr(args, "config", None))
    level = (
        logging.WARNING
        if getattr(args, "quiet", False)
        else getattr(logging, getattr(args, "log_level", "INFO"))
    )
    configure_logging(level, redactor=secrets)
    observe.configure_log_format(args)
    try:
        return int(args.run(args))
    except DjmwError as exc:
        print(secrets.redact(f"djmw: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("djmw: interrupted", file=sys.stderr)
        return 130
    except Exception:
        print(secrets.redact(f"djmw: unexpected error\n{traceback.format_exc()}"), file=sys.stderr)
        return 1
