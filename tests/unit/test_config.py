"""TOML configs: a bad one fails at start naming the problem and the fix; a good one runs.

Each bad config is a real TOML file read by ``djmw.load_config``; the worker it builds
is then prepared, so an error may come from either step (both happen before any job
runs). The same files go through the ``djmw work`` command, which must exit non-zero
with ``djmw: <message>`` on standard error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import attrs
import config_handlers
import pytest

from djmw import ConfigurationError, DjmwError, load_config
from djmw.backends import open_backend
from djmw.cli import main
from djmw.middleware import (
    CountAttempts,
    DecodeYAML,
    EnforceTimeout,
    LogOutcome,
    MarkFailed,
    RunHooks,
    ScheduleRetry,
)
from djmw.testing import ManualClock

T0 = datetime(2026, 1, 1, 12, 0, 0)


@attrs.frozen(kw_only=True)
class Case:
    """One bad config and what its error message must say.

    Attributes:
        id: the test id.
        toml: the lines of the ``[worker]`` table (after database and name).
        problem: strings the message must contain to name the problem.
        fix: strings the message must contain to name the fix.
    """

    id: str
    toml: str
    problem: tuple[str, ...]
    fix: tuple[str, ...]


CASES = [
    Case(
        id="unknown_middleware_name",
        toml='middlewares = ["DecodeYAML", "RunHooks", "Nope", "MarkFailed"]',
        problem=("middlewares[2]", "'Nope'", "unknown middleware name"),
        fix=("built-ins are", "DecodeYAML", "ScheduleRetry", "dotted path"),
    ),
    Case(
        id="option_of_the_wrong_type",
        toml='middlewares = ["DecodeYAML", { use = "ScheduleRetry", max_attempts = "x" }]',
        problem=("middlewares[1]", "ScheduleRetry", "max_attempts", "'x'"),
        fix=("must be an integer >= 1",),
    ),
    Case(
        id="unknown_option",
        toml='middlewares = ["DecodeYAML", { use = "ScheduleRetry", max_attemps = 3 }]',
        problem=("middlewares[1]", "ScheduleRetry", "max_attemps"),
        fix=("max_attempts", "backoff"),
    ),
    Case(
        id="dotted_path_does_not_import",
        toml='middlewares = ["DecodeYAML", "RunHooks", "LogOutcome", '
        '{ use = "no_such_package.audit:Audit" }]',
        problem=("middlewares[3]", "no_such_package.audit", "cannot import"),
        fix=("sys.path",),
    ),
    Case(
        id="middleware_entry_without_use",
        toml="middlewares = [{ max_attempts = 3 }]",
        problem=("middlewares[0]", "max_attempts"),
        fix=("a table with a 'use' key",),
    ),
    Case(
        id="middlewares_not_a_list",
        toml='middlewares = "DecodeYAML"',
        problem=("middlewares", "'DecodeYAML'"),
        fix=("must be a list",),
    ),
    Case(
        id="negative_sleep_delay",
        toml="sleep_delay = -1",
        problem=("sleep_delay", "-1"),
        fix=("must be a positive number",),
    ),
    Case(
        id="queues_not_a_list",
        toml="queues = 5",
        problem=("queues", "got 5"),
        fix=("must be a list of queue names",),
    ),
    Case(
        id="queues_of_numbers",
        toml="queues = [1, 2]",
        problem=("queues", "[1, 2]"),
        fix=("must be a list of queue names",),
    ),
    Case(
        id="unknown_worker_setting",
        toml="sleep_dealy = 1",
        problem=("unknown setting", "sleep_dealy"),
        fix=("known:", "'sleep_delay'"),
    ),
    Case(
        id="handlers_not_a_handlers",
        toml='handlers = "config_handlers:not_handlers"',
        problem=("worker.handlers", "got dict"),
        fix=("must name a djmw.Handlers",),
    ),
    Case(
        id="handlers_do_not_import",
        toml='handlers = "no_such_package.jobs:handlers"',
        problem=("worker.handlers", "no_such_package.jobs", "cannot import"),
        fix=("sys.path",),
    ),
    Case(
        id="bad_table_name",
        toml='table = "delayed_jobs; DROP"',
        problem=("'delayed_jobs; DROP'", "not a valid table name"),
        fix=("use letters, digits, _ and $",),
    ),
    Case(
        id="bad_url_scheme",
        toml='database = "oracle://app@db.internal/app"',
        problem=("oracle://app@db.internal/app", "scheme"),
        fix=("mysql://", "sqlite:///"),
    ),
    Case(
        id="not_toml",
        toml="middlewares = [DecodeYAML]",
        problem=("not valid TOML",),
        fix=("line 4, column 16",),
    ),
]

#: Option values of the wrong type, which must fail at start rather than job after job.
ACCEPTED = [
    pytest.param(
        'middlewares = [{ use = "DecodeYAML", limits = { max_byte = 1000 } }]',
        id="decode_limits_with_an_unknown_key",
    ),
    pytest.param(
        'middlewares = ["DecodeYAML", { use = "LogOutcome", logger = 5 }]',
        id="logger_as_a_number",
    ),
    pytest.param(
        'exit_on_complete = "yes"',
        id="exit_on_complete_as_a_string",
    ),
    pytest.param(
        "name = 5",
        id="name_as_an_integer",
    ),
    pytest.param(
        "backend_options = { busy_timeuot = 3 }",
        id="unknown_backend_option",
    ),
]


@pytest.fixture(autouse=True)
def _restore_djmw_logger() -> Iterator[None]:
    # djmw.cli.main configures the "djmw" logger for a process; put it back after a test.
    logger = logging.getLogger("djmw")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def database(tmp_path: Path) -> str:
    """An SQLite URL whose delayed_jobs table exists."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    backend = open_backend(url)
    backend.create_schema()
    backend.close()
    return url


def write_config(tmp_path: Path, database: str, body: str) -> Path:
    """Write a ``[worker]`` config: ``body`` after a database and a name it does not set."""
    path = tmp_path / "djmw.toml"
    defaults = {"database": f'"{database}"', "name": '"config-test"'}
    lines = ["[worker]"]
    lines += [f"{key} = {value}" for key, value in defaults.items() if f"{key} =" not in body]
    path.write_text("\n".join([*lines, body]) + "\n", encoding="utf-8")
    return path


def start(path: Path) -> None:
    """Do what ``djmw work`` does before its loop: load the config, prepare the worker."""
    worker = load_config(path)
    worker.prepare()
    worker.close()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_config_fails_at_start_naming_the_problem(
    case: Case, tmp_path: Path, database: str
) -> None:
    """Each bad config raises ConfigurationError at start, and the message names the problem."""
    path = write_config(tmp_path, database, case.toml)
    with pytest.raises(ConfigurationError) as info:
        start(path)
    message = str(info.value)
    for text in case.problem:
        assert text in message


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[case.id for case in CASES],
)
def test_bad_config_message_names_the_fix(case: Case, tmp_path: Path, database: str) -> None:
    """Each bad config's message also says what to do about it."""
    path = write_config(tmp_path, database, case.toml)
    with pytest.raises(ConfigurationError) as info:
        start(path)
    message = str(info.value)
    for text in case.fix:
        assert text in message


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_cli_exits_non_zero_with_the_message(
    case: Case, tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``djmw work --config`` exits non-zero and prints ``djmw: <message>`` on stderr."""
    path = write_config(tmp_path, database, case.toml)
    with pytest.raises(ConfigurationError) as info:
        start(path)
    assert main(["work", "--config", str(path)]) != 0
    err = capsys.readouterr().err
    assert err == f"djmw: {info.value}\n"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["--sleep-delay", "-1"], "sleep_delay must be a positive number"),
        (["--table", "delayed_jobs; DROP"], "not a valid table name"),
        (["--handlers", "config_handlers:not_handlers"], "must name a djmw.Handlers"),
        (["--handlers", "no_such_package.jobs:handlers"], "cannot import module"),
        (["--database", "oracle://app@db/app"], "the scheme must be"),
    ],
    ids=["sleep_delay", "table", "handlers_type", "handlers_import", "scheme"],
)
def test_cli_options_are_checked_at_start(
    arguments: list[str], problem: str, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad ``djmw work`` options exit non-zero with ``djmw: <message>`` on stderr."""
    if "--database" not in arguments:
        arguments = ["--database", database, *arguments]
    assert main(["work", "--name", "cli-test", *arguments]) != 0
    err = capsys.readouterr().err
    assert err.startswith("djmw: ")
    assert problem in err
    assert err.count("\n") == 1


def test_missing_config_file_names_the_path(tmp_path: Path) -> None:
    """A config path that does not exist fails with ConfigurationError naming the path."""
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigurationError, match="cannot read config file") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("body", ACCEPTED)
def test_wrong_settings_fail_at_start(body: str, tmp_path: Path, database: str) -> None:
    """Option values of the wrong type fail at start, not job after job."""
    path = write_config(tmp_path, database, body)
    with pytest.raises(DjmwError):
        start(path)


# -- the happy path ---------------------------------------------------------------------
HAPPY = """\
[worker]
database = "{database}"
name = "config-worker"
handlers = "config_handlers:handlers"
queues = ["default", "mail"]
max_run_time = 60
sleep_delay = 0.5
middlewares = [
  "DecodeYAML",
  {{ use = "config_handlers:Stamp", label = "audit" }},
  "RunHooks",
  "LogOutcome",
  {{ use = "MarkFailed", delete_failed = true }},
  {{ use = "ScheduleRetry", max_attempts = 1 }},
  "CountAttempts",
  {{ use = "EnforceTimeout", mode = "cooperative" }},
]
"""


def test_good_config_builds_the_chain_in_order(tmp_path: Path, database: str) -> None:
    """Built-ins by name, options and a custom middleware by dotted path, in config order."""
    path = tmp_path / "djmw.toml"
    path.write_text(HAPPY.format(database=database), encoding="utf-8")
    worker = load_config(path)
    assert worker.middlewares is not None
    assert [type(m) for m in worker.middlewares] == [
        DecodeYAML,
        config_handlers.Stamp,
        RunHooks,
        LogOutcome,
        MarkFailed,
        ScheduleRetry,
        CountAttempts,
        EnforceTimeout,
    ]
    decode, stamp, hooks, _log, failed, retry, _count, timeout = worker.middlewares
    assert decode == DecodeYAML()
    assert stamp == config_handlers.Stamp(label="audit")
    assert isinstance(hooks, RunHooks)
    assert hooks.handlers is config_handlers.handlers
    assert failed == MarkFailed(delete_failed=True)
    assert retry.max_attempts == 1  # type: ignore[attr-defined]
    assert timeout.mode == "cooperative"  # type: ignore[attr-defined]
    assert worker.handlers is config_handlers.handlers
    assert (worker.name, worker.queues, worker.max_run_time, worker.sleep_delay) == (
        "config-worker",
        ("default", "mail"),
        60,
        0.5,
    )


def test_good_config_runs_jobs_on_sqlite(tmp_path: Path, database: str) -> None:
    """The configured chain runs: the custom middleware sees each job, the options apply."""
    path = tmp_path / "djmw.toml"
    path.write_text(HAPPY.format(database=database), encoding="utf-8")
    clock = ManualClock(T0)
    backend = open_backend(database, clock=clock)
    ok = backend.enqueue("--- !ruby/struct:ConfigJob\nn: 1\n", queue="default")
    backend.enqueue("--- !ruby/struct:ConfigFailJob\nn: 1\n", queue="mail")
    other_queue = backend.enqueue("--- !ruby/struct:ConfigJob\nn: 2\n", queue="other")
    config_handlers.RAN.clear()
    config_handlers.STAMPED.clear()
    worker = load_config(path)
    worker.clock = clock
    try:
        # max_attempts = 1 and delete_failed = true: the failing job is deleted at once.
        assert worker.work_off(10) == (1, 1)
    finally:
        worker.close()
    assert list(config_handlers.RAN) == [ok]
    assert sorted(config_handlers.STAMPED) == [("audit", "ConfigFailJob"), ("audit", "ConfigJob")]
    assert [job.id for job in backend.jobs()] == [other_queue]
    backend.close()


def test_heartbeat_by_name_in_a_config_file(tmp_path: Path) -> None:
    """``"Heartbeat"`` is a built-in name like the others (it was missing once)."""
    path = tmp_path / "djmw.toml"
    path.write_text(
        "[worker]\n"
        f'database = "sqlite:///{tmp_path / "jobs.db"}"\n'
        'handlers = "config_handlers:handlers"\n'
        'middlewares = ["DecodeYAML", "LogOutcome", { use = "Heartbeat", interval = 5 }]\n'
    )
    worker = load_config(path)
    assert worker.middlewares is not None
    heartbeat = worker.middlewares[2]
    assert type(heartbeat).__name__ == "Heartbeat"
    assert heartbeat.interval == 5  # type: ignore[attr-defined]
