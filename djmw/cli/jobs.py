"""``djmw jobs list|show|retry|delete|prune|stats|failures``, ``djmw enqueue``, ``djmw check``.

Thin layers over ``djmw.admin.Jobs``: each command opens the table (``--database``, or
``$DATABASE_URL``), calls one method and prints its result, as a table for people or, with
``--json``, as one JSON document with stable keys for scripts. Text from rows is escaped
and cut (``djmw.cli._term``). Destructive commands ask first unless ``--yes``, list what
they would change with ``--dry-run``, and every command ends with a count.

Exit status: 0 done; 1 an unknown id, a refused confirmation, or ``check`` finding a
problem; 2 bad input or configuration (a bad URL, a missing table).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from djmw.admin import Change, JobFilter, JobRow, Jobs, human, parse_duration, parse_time
from djmw.admin.enqueue import KINDS
from djmw.admin.scope import StateFilter
from djmw.cli._term import Refused, block, clean, confirm, table, when
from djmw.errors import ConfigurationError, JobNotFound

Command = Callable[[argparse.Namespace], int]


# -- arguments ------------------------------------------------------------------------
def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"must be an integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", help="database URL (default $DATABASE_URL)")
    parser.add_argument("--table", default="delayed_jobs", help="the delayed_jobs table")
    parser.add_argument(
        "--max-run-time",
        type=_duration,
        default=4 * 3600.0,
        help="the workers' max_run_time: locks younger than this are live (default 4h)",
    )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _filter_options(parser: argparse.ArgumentParser, *, state: bool = True) -> None:
    if state:
        parser.add_argument(
            "--state",
            choices=["ready", "scheduled", "running", "failed", "stuck", "all"],
            default=None,
            help="ready: a worker would claim it now; scheduled: run_at in the future; "
            "running: locked, lock not expired; failed: failed_at set; stuck: run_at NULL",
        )
    parser.add_argument(
        "--queue",
        action="append",
        dest="queues",
        metavar="Q",
        help="only this queue (repeatable); '' is the NULL queue",
    )
    parser.add_argument("--name", help="glob over the decoded job name, e.g. 'Reports::*'")
    parser.add_argument(
        "--older-than",
        type=_duration,
        metavar="AGE",
        help="failed, or due, longer ago than this (90s, 5m, 2h, 30d)",
    )
    parser.add_argument("--error", metavar="TEXT", help="only rows whose last_error contains TEXT")


def _write_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="list the rows it would change, change none"
    )
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def register(commands: Any) -> None:
    """Add ``jobs``, ``enqueue`` and ``check`` to the ``djmw`` command's subparsers."""
    jobs = commands.add_parser("jobs", help="see, retry, delete and prune job rows")
    sub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="list rows, by id")
    _connection_options(listing)
    _filter_options(listing)
    listing.add_argument("--limit", type=_positive_int, default=50, help="rows (default 50)")
    listing.add_argument("--after", type=int, metavar="ID", help="rows after this id")
    _json_option(listing)
    listing.set_defaults(run=_list)

    show = sub.add_parser("show", help="one row, its payload, and why it runs or not")
    show.add_argument("id", type=int)
    _connection_options(show)
    show.add_argument("--handlers", help="dotted path of a djmw.Handlers, to check the name")
    _json_option(show)
    show.set_defaults(run=_show)

    retry = sub.add_parser("retry", help="run rows again now (failed_at NULL, attempts 0)")
    retry.add_argument("ids", type=int, nargs="*", metavar="ID")
    retry.add_argument("--failed", action="store_true", help="every failed row (with filters)")
    _filter_options(retry)
    retry.add_argument("--keep-attempts", action="store_true", help="leave attempts as they are")
    _connection_options(retry)
    _write_options(retry)
    _json_option(retry)
    retry.set_defaults(run=_retry)

    delete = sub.add_parser("delete", help="delete rows")
    delete.add_argument("ids", type=int, nargs="*", metavar="ID")
    _filter_options(delete)
    _connection_options(delete)
    _write_options(delete)
    _json_option(delete)
    delete.set_defaults(run=_delete)

    prune = sub.add_parser("prune", help="delete old failed rows in small batches")
    prune.add_argument(
        "--failed-older-than", type=_duration, required=True, metavar="AGE", help="e.g. 30d"
    )
    prune.add_argument(
        "--batch", type=_positive_int, default=1000, help="rows per transaction (default 1000)"
    )
    _connection_options(prune)
    _write_options(prune)
    _json_option(prune)
    prune.set_defaults(run=_prune)

    stats = sub.add_parser("stats", help="rows per state per queue, name or state")
    stats.add_argument("--by", choices=["queue", "name", "state"], default="queue")
    _filter_options(stats, state=False)
    _connection_options(stats)
    _json_option(stats)
    stats.set_defaults(run=_stats)

    failures = sub.add_parser("failures", help="failed and erroring rows, grouped")
    _filter_options(failures, state=False)
    _connection_options(failures)
    _json_option(failures)
    failures.set_defaults(run=_failures)

    enqueue = commands.add_parser("enqueue", help="write a job row a Ruby worker can run")
    enqueue.add_argument("name", help="the job name: NewsletterJob, ReportJob, User.cleanup")
    enqueue.add_argument("--args", type=_json_value, help="JSON arguments (see --kind)")
    enqueue.add_argument("--kind", choices=KINDS, default="struct")
    enqueue.add_argument("--queue", help="the queue (default NULL)")
    enqueue.add_argument("--priority", type=int, default=0)
    enqueue.add_argument("--run-at", metavar="TIME", help="ISO time (UTC), now, or +5m")
    enqueue.add_argument("--record-id", help="the record of a Class#method job")
    _connection_options(enqueue)
    _json_option(enqueue)
    enqueue.set_defaults(run=_enqueue)

    check = commands.add_parser("check", help="exit 1 if ready jobs wait too long or jobs failed")
    check.add_argument(
        "--max-age", type=_duration, default=300.0, help="seconds past run_at (default 300)"
    )
    check.add_argument("--queue", action="append", dest="queues", metavar="Q")
    check.add_argument("--ignore-failed", action="store_true", help="failed rows are fine")
    _connection_options(check)
    _json_option(check)
    check.set_defaults(run=_check)


def _json_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON ({exc})"
        raise argparse.ArgumentTypeError(msg) from None


# -- helpers ----------------------------------------------------------------------------
def _open(args: argparse.Namespace) -> Jobs:
    return Jobs(args.database, table=args.table, max_run_time=args.max_run_time)


def _filter(args: argparse.Namespace, state: str | None = None) -> JobFilter:
    queues = None
    if args.queues is not None:
        queues = tuple(None if q == "" else q for q in args.queues)
    return JobFilter(
        state=cast(StateFilter, state or getattr(args, "state", None) or "all"),
        queues=queues,
        name=args.name,
        older_than=args.older_than,
        error=args.error,
    )


def _print_json(document: object) -> None:
    print(json.dumps(document, indent=2, sort_keys=False))


def _rows(count: int, noun: str = "row") -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _guarded(run: Command) -> Command:
    """Turn an unknown id or a refusal into a message and exit status 1."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except JobNotFound as exc:
            print(f"djmw: {exc}", file=sys.stderr)
            return 1
        except Refused as exc:
            print(f"djmw: {exc}", file=sys.stderr)
            return 1

    return wrapper


_HEADERS = (
    "id",
    "state",
    "name",
    "queue",
    "pri",
    "att",
    "run_at",
    "locked_by",
    "failed_at",
    "error",
)


def _cells(row: JobRow) -> list[str]:
    job = row.job
    queue = "(none)" if job.queue is None else clean(job.queue, 20)
    name = clean(row.name, 40) + (" (undecodable)" if row.decoding.error else "")
    return [
        str(job.id),
        row.state,
        name,
        queue,
        str(job.priority),
        str(job.attempts),
        when(job.run_at),
        clean(job.locked_by, 30),
        when(job.failed_at),
        clean(row.error, 60),
    ]


def _row_table(rows: Sequence[JobRow]) -> str:
    return table(_HEADERS, [_cells(row) for row in rows], right=(0, 4, 5))


# -- read commands ------------------------------------------------------------------------
@_guarded
def _list(args: argparse.Namespace) -> int:
    with _open(args) as jobs:
        page = jobs.list(_filter(args), limit=args.limit, after=args.after)
    if args.json:
        _print_json(page.to_dict())
        return 0
    if page.rows:
        print(_row_table(page.rows))
    more = (
        f"; more after id {page.next_after} (--after {page.next_after})" if page.next_after else ""
    )
    print(_rows(len(page.rows)) + more)
    return 0


@_guarded
def _show(args: argparse.Namespace) -> int:
    handlers = None
    if args.handlers:
        from djmw.config import import_object  # noqa: PLC0415 - only --handlers needs it

        handlers = import_object(args.handlers, "--handlers")
    with _open(args) as jobs:
        detail = jobs.show(args.id, handlers=handlers)
    if args.json:
        _print_json(detail.to_dict())
        return 0
    row, job = detail.row, detail.row.job
    undecodable = " (undecodable)" if row.decoding.error else ""
    print(f"job {job.id}: {clean(row.name, 120)}{undecodable} [{row.state}]")
    fields = [
        ("why", "\n             ".join(clean(reason, 200) for reason in detail.why)),
        ("queue", "(none)" if job.queue is None else clean(job.queue, 200)),
        ("priority", str(job.priority)),
        ("attempts", str(job.attempts)),
        ("run_at", when(job.run_at)),
        ("locked_at", when(job.locked_at)),
        ("locked_by", clean(job.locked_by, 200)),
        ("failed_at", when(job.failed_at)),
        ("created_at", when(job.created_at)),
        ("updated_at", when(job.updated_at)),
    ]
    for label, value in fields:
        print(f"{label:<12} {value}")
    if row.decoding.payload is not None:
        from djmw.admin.plain import pretty  # noqa: PLC0415 - only show prints payloads

        print("payload")
        print(block(pretty(row.decoding.payload)))
    else:
        handler = job.handler
        text = handler.decode("utf-8", "replace") if isinstance(handler, bytes) else handler
        print("handler")
        print(block(text.rstrip("\n") if text else text, max_chars=4000))
    print("last_error")
    print(block(job.last_error))
    print(_rows(1))
    return 0


@_guarded
def _stats(args: argparse.Namespace) -> int:
    with _open(args) as jobs:
        stats = jobs.stats(by=args.by, jobs=_filter(args))
    if args.json:
        _print_json(stats.to_dict())
        return 0
    headers = [args.by, "ready", "scheduled", "running", "failed", "stuck", "retrying"]
    headers += ["oldest ready", "failed 1h", "failed 24h"]
    lines = []
    for group in [*stats.groups, stats.total]:
        key = "total" if group is stats.total else group.key
        if key is None:
            key = "(none)"
        age = human((stats.now - group.oldest_ready).total_seconds()) if group.oldest_ready else "-"
        lines.append(
            [
                clean(key, 40),
                *(
                    str(group.counts[state])
                    for state in ("ready", "scheduled", "running", "failed", "stuck")
                ),
                str(group.retrying),
                age,
                str(group.failed_last_hour),
                str(group.failed_last_day),
            ]
        )
    print(table(headers, lines, right=(1, 2, 3, 4, 5, 6, 8, 9)))
    if stats.workers:
        print()
        print("running rows per worker")
        workers = [[clean(name, 60), str(count)] for name, count in stats.workers.items()]
        print(table(("locked_by", "rows"), workers, right=(1,)))
    print(_rows(stats.total.total))
    return 0


@_guarded
def _failures(args: argparse.Namespace) -> int:
    with _open(args) as jobs:
        groups = jobs.failures(_filter(args))
    total = sum(group.count for group in groups)
    if args.json:
        _print_json({"groups": [g.to_dict() for g in groups], "count": total})
        return 0
    lines = []
    for group in groups:
        error = clean(group.message, 70)
        if group.error_class:
            error = f"{group.error_class}: {error}"
        lines.append(
            [
                str(group.count),
                str(group.failed),
                str(group.erroring),
                str(group.newest_id),
                clean(group.name, 40),
                error,
            ]
        )
        if group.origin:
            lines.append(["", "", "", "", "", "at " + clean(group.origin, 70)])
    if lines:
        print(
            table(
                ("rows", "failed", "erroring", "newest", "name", "error"), lines, right=(0, 1, 2, 3)
            )
        )
    print(f"{_rows(total)} in {_rows(len(groups), 'group')}")
    return 0


@_guarded
def _check(args: argparse.Namespace) -> int:
    queues = None if args.queues is None else [None if q == "" else q for q in args.queues]
    with _open(args) as jobs:
        result = jobs.check(max_age=args.max_age, queues=queues, ignore_failed=args.ignore_failed)
        now = jobs.clock()
    if args.json:
        _print_json(result.to_dict())
        return 0 if result.ok else 1
    limit = human(args.max_age)
    if result.late:
        print(f"FAIL: {_rows(result.late, 'ready job')} waited more than {limit} past run_at:")
        for row in result.late_rows:
            waited = human((now - row.job.run_at).total_seconds()) if row.job.run_at else "?"
            print(
                f"  {row.id} {clean(row.name, 60)} (queue {clean(row.job.queue, 30)}, waiting {waited})"
            )
        if result.late > len(result.late_rows):
            print(f"  ... and {result.late - len(result.late_rows)} more")
    if result.failed:
        print(f"FAIL: {_rows(result.failed, 'failed job')}:")
        for row in result.failed_rows:
            print(f"  {row.id} {clean(row.name, 60)}: {clean(row.error, 80)}")
        if result.failed > len(result.failed_rows):
            print(f"  ... and {result.failed - len(result.failed_rows)} more")
    if result.ok:
        failed = "" if args.ignore_failed else "; no failed jobs"
        print(f"OK: no ready job waited more than {limit} past run_at{failed}")
    print(f"{_rows(result.late, 'late row')}, {_rows(result.failed, 'failed row')}")
    return 0 if result.ok else 1


# -- write commands ---------------------------------------------------------------------
def _target(args: argparse.Namespace, *, failed: bool = False) -> JobFilter | list[int]:
    filtered = failed or any(
        value is not None
        for value in (args.state, args.queues, args.name, args.older_than, args.error)
    )
    if failed and args.state not in (None, "failed"):
        msg = f"--failed selects failed rows; it cannot be combined with --state {args.state}."
        raise ConfigurationError(msg)
    if args.ids and filtered:
        msg = "give row ids or filters, not both."
        raise ConfigurationError(msg)
    if args.ids:
        return list(args.ids)
    if not filtered:
        msg = "give row ids, or filters (--state, --queue, --name, --older-than, --error); --state all selects every row."
        raise ConfigurationError(msg)
    return _filter(args, "failed" if failed else None)


def _apply(
    args: argparse.Namespace,
    verb: tuple[str, str],
    run: Callable[[Jobs, bool], Change],
    count: Callable[[Jobs], int] | None = None,
    detail: str = "",
) -> int:
    """Dry run, or ask then write; print the rows or the count, and the held rows.

    ``count`` says how many rows a filter selects (cheaper than a dry run on a big
    table); without it the dry run's own count is used.
    """
    present, past = verb
    with _open(args) as jobs:
        if args.dry_run:
            change = run(jobs, True)
        else:
            if count is None:
                preview = run(jobs, True)
                pending, held = preview.count, preview.held
            else:
                pending, held = count(jobs), ()
            if pending:
                confirm(f"{present.capitalize()} {_rows(pending)}{detail}?", yes=args.yes)
                change = run(jobs, False)
            else:
                change = Change(action=present, dry_run=False, count=0, ids=[], held=held)
    if args.json:
        _print_json(change.to_dict())
        return 0
    if change.held:
        print(f"left alone, held by a live worker: {_rows(len(change.held))}")
        print(_row_table(change.held))
    if change.dry_run:
        if change.rows:
            print(_row_table(change.rows))
        print(f"would {present} {_rows(change.count)}{detail} (dry run)")
    else:
        print(f"{past} {_rows(change.count)}{detail}")
    return 0


@_guarded
def _retry(args: argparse.Namespace) -> int:
    target = _target(args, failed=args.failed)

    def run(jobs: Jobs, dry: bool) -> Change:
        return jobs.retry(target, keep_attempts=args.keep_attempts, dry_run=dry)

    return _apply(args, ("retry", "retried"), run, _counter(target))


@_guarded
def _delete(args: argparse.Namespace) -> int:
    target = _target(args)

    def run(jobs: Jobs, dry: bool) -> Change:
        return jobs.delete(target, dry_run=dry)

    return _apply(args, ("delete", "deleted"), run, _counter(target))


def _counter(target: JobFilter | list[int]) -> Callable[[Jobs], int] | None:
    if not isinstance(target, JobFilter):
        return None  # ids: the dry run also finds unknown and held ids
    return lambda jobs: jobs.count(target, guarded=True)


@_guarded
def _prune(args: argparse.Namespace) -> int:
    age = args.failed_older_than

    def run(jobs: Jobs, dry: bool) -> Change:
        return jobs.prune(age, batch=args.batch, dry_run=dry)

    counter = _counter(JobFilter(state="failed", older_than=age))
    detail = f" that failed more than {human(age)} ago"
    return _apply(args, ("prune", "pruned"), run, counter, detail)


@_guarded
def _enqueue(args: argparse.Namespace) -> int:
    with _open(args) as jobs:
        run_at = parse_time(args.run_at, jobs.clock(), "--run-at") if args.run_at else None
        record_id: object = args.record_id
        if isinstance(record_id, str) and record_id.isdigit():
            record_id = int(record_id)
        row = jobs.enqueue(
            args.name,
            args.args,
            kind=args.kind,
            queue=args.queue,
            priority=args.priority,
            run_at=run_at,
            record_id=record_id,
        )
    if args.json:
        _print_json(row.to_dict())
        return 0
    queue = "(none)" if row.job.queue is None else clean(row.job.queue, 60)
    print(
        f"enqueued job {row.id}: {clean(row.name, 80)} (queue {queue}, priority "
        f"{row.job.priority}, run_at {when(row.job.run_at)}, {row.state})"
    )
    print(_rows(1))
    return 0
