"""Database configuration errors fail at start, clearly, fast, and never show a password.

Unreachable servers, missing or malformed tables and bad URLs fail ``Worker.prepare()``,
``djmw.load_config`` + prepare and ``djmw work`` with a BackendError or
ConfigurationError naming the problem (and, where the message gives one, the fix). The
password of a database URL never appears in a log record, in any exception of the chain
(``str``, ``repr`` and the formatted traceback), or in the command's output.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from djmw import BackendError, ConfigurationError, DjmwError, Worker, load_config
from djmw.backends import open_backend
from djmw.cli import main

SECRET = "s3cr3t-pw"  # noqa: S105 - the fake password every test looks for
REFUSED = "mysql://root@127.0.0.1:1/x"


@pytest.fixture(autouse=True)
def _restore_djmw_logger() -> Iterator[None]:
    # djmw.cli.main configures the "djmw" logger for a process; put it back after a test.
    logger = logging.getLogger("djmw")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def chain_text(error: BaseException) -> str:
    """``str`` and ``repr`` of ``error`` and every exception chained to it, plus tracebacks."""
    parts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), *(repr(arg) for arg in current.args)]
        parts += traceback.format_exception(current)
        todo += [current.__cause__, current.__context__]
    return "\n".join(parts)


def config_file(tmp_path: Path, database: str, *lines: str) -> Path:
    """Write a ``[worker]`` config for ``database``; return its path."""
    path = tmp_path / "djmw.toml"
    body = ["[worker]", f'database = "{database}"', 'name = "config-errors"', *lines]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


def prepare(database: str) -> None:
    """Start a worker on ``database`` as far as prepare(), then close it."""
    worker = Worker(database=database, name="config-errors")
    worker.prepare()
    worker.close()


# -- unreachable database --------------------------------------------------------------
def test_unreachable_database_fails_within_seconds() -> None:
    """A port nobody listens on fails prepare() with BackendError in under 5 seconds."""
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        prepare(REFUSED)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert message.startswith("cannot connect to mysql://root@127.0.0.1:1/x: ")
    assert "Connection refused" in message


def test_unreachable_database_message_names_the_fix() -> None:
    """The unreachable-database message says what to check."""
    with pytest.raises(BackendError) as info:
        prepare(REFUSED)
    assert "check" in str(info.value).lower()


def test_unreachable_database_through_config_and_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config naming an unreachable database fails at start; ``djmw work`` exits non-zero."""
    path = config_file(tmp_path, REFUSED)
    with pytest.raises(BackendError) as info:
        load_config(path).prepare()
    started = time.monotonic()
    assert main(["work", "--config", str(path)]) != 0
    assert time.monotonic() - started < 5
    assert capsys.readouterr().err == f"djmw: {info.value}\n"


# -- the table ---------------------------------------------------------------------------
def test_missing_table_names_the_table_and_how_to_create_it(db_url: str) -> None:
    """No delayed_jobs table: ConfigurationError naming it and `djmw schema` as the fix."""
    with pytest.raises(ConfigurationError) as info:
        prepare(db_url)
    message = str(info.value)
    assert "the table 'delayed_jobs' does not exist" in message
    assert "djmw schema --database" in message


def test_missing_table_through_the_cli(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``djmw work`` on a database without the table exits non-zero with the message."""
    assert main(["work", "--database", db_url, "--name", "cli"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("djmw: the table 'delayed_jobs' does not exist; create it with ")
    assert err.count("\n") == 1


def test_table_with_wrong_columns_names_the_missing_ones(db_url: str) -> None:
    """A delayed_jobs table lacking columns: ConfigurationError listing them and the fix."""
    backend = open_backend(db_url)
    backend._execute("CREATE TABLE delayed_jobs (id integer PRIMARY KEY, handler text)")
    backend.close()
    with pytest.raises(ConfigurationError) as info:
        prepare(db_url)
    message = str(info.value)
    assert "the table 'delayed_jobs' lacks the delayed_job columns" in message
    for column in ("'priority'", "'run_at'", "'locked_by'", "'failed_at'", "'queue'"):
        assert column in message
    assert "it must have the columns of delayed_job_active_record's migration" in message


def test_bad_table_name_fails_before_connecting() -> None:
    """A table name with SQL in it fails at start, before any connection is tried."""
    worker = Worker(database=REFUSED, table="delayed_jobs; DROP", name="config-errors")
    with pytest.raises(ConfigurationError, match="is not a valid table name: use letters"):
        worker.prepare()


def test_bad_url_scheme() -> None:
    """A URL of an unsupported database names the schemes djmw accepts."""
    with pytest.raises(ConfigurationError) as info:
        prepare("oracle://app@db.internal/app")
    message = str(info.value)
    assert "oracle://app@db.internal/app" in message
    assert (
        "the scheme must be mysql://, mysql2://, mariadb://, postgresql://, postgres://, "
        "postgis:// or sqlite:///" in message
    )


# -- secrets ---------------------------------------------------------------------------
SECRET_URLS = [
    pytest.param(f"mysql://root:{SECRET}@127.0.0.1:1/x", id="refused"),
    pytest.param(
        f"mysql://root:{SECRET}@127.0.0.1:3306/no_such_db", id="rejected", marks=pytest.mark.mysql
    ),
    pytest.param(f"mysql://root:{SECRET}@127.0.0.1:99999/x", id="port_out_of_range"),
    pytest.param(f"mysql2://root:{SECRET}@127.0.0.1:port/x", id="port_not_a_number"),
    pytest.param(f"mysql://root:{SECRET}@[::1/x", id="unparseable"),
    pytest.param(f"oracle://root:{SECRET}@127.0.0.1/x", id="bad_scheme"),
    pytest.param(f"postgresql://root:{SECRET}@127.0.0.1:1/x", id="pg_refused"),
    pytest.param(
        f"postgres://root:{SECRET}@127.0.0.1:5432/djmw?sslmode=disable",
        id="pg_rejected",
        marks=pytest.mark.postgresql,
    ),
    pytest.param(f"postgis://root:{SECRET}@127.0.0.1:99999/x", id="pg_port_out_of_range"),
    pytest.param(f"postgresql://root:{SECRET}/1@127.0.0.1:1/x", id="pg_slash_in_password"),
    pytest.param(f"mysql://root:{SECRET}@odd@127.0.0.1:1/x", id="at_sign_in_password"),
    pytest.param(f"mysql://root:{SECRET}#1@127.0.0.1:1/x", id="hash_in_password"),
    pytest.param(f"mysql://root:{SECRET}?1@127.0.0.1:1/x", id="question_mark_in_password"),
    pytest.param(f"mysql://root:{SECRET}/1@127.0.0.1:1/x", id="slash_in_password"),
    pytest.param(f"mysql://root:2024/{SECRET}@127.0.0.1:1/x", id="slash_after_digits"),
    pytest.param(f"oracle://root:{SECRET}#1@127.0.0.1/x", id="bad_scheme_hash_in_password"),
]


def _via_worker(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare(url)


def _via_environment(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    worker = Worker(name="config-errors")
    worker.prepare()


def _via_config(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_config(config_file(tmp_path, url)).prepare()


STARTS: dict[str, Callable[[str, Path, pytest.MonkeyPatch], None]] = {
    "worker": _via_worker,
    "environment": _via_environment,
    "config": _via_config,
}


@pytest.mark.parametrize("url", SECRET_URLS)
@pytest.mark.parametrize("how", list(STARTS))
def test_password_never_in_errors_or_logs(
    url: str,
    how: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing start shows the password in no log record and no chained exception."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(logging.getLogger("djmw"), "propagate", True)
    with pytest.raises(DjmwError) as info:
        STARTS[how](url, tmp_path, monkeypatch)
    assert "root:***@" in str(info.value)
    text = chain_text(info.value)
    assert SECRET not in text
    logged = [record.getMessage() for record in caplog.records]
    logged += [caplog.text]
    assert not [line for line in logged if SECRET in line]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_password_never_in_cli_output(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``djmw work --database <url>`` fails without printing the password anywhere."""
    assert main(["work", "--database", url, "--name", "cli"]) != 0
    out, err = capsys.readouterr()
    assert err.startswith("djmw: ")
    assert SECRET not in out
    assert SECRET not in err


def test_postgresql_url_parts_and_query_parameters() -> None:
    """postgres://, postgresql:// and postgis:// parse alike; query parameters such as
    sslmode go to libpq as they are; the redacted form hides the password, also one given
    as a query parameter."""
    from djmw.backends import parse_url

    for scheme in ("postgres", "postgresql", "postgis"):
        url = parse_url(
            f"{scheme}://app:{SECRET}@db.internal:6432/app_production"
            f"?sslmode=verify-full&application_name=jobs&password={SECRET}"
        )
        assert (url.dialect, url.host, url.port, url.user, url.password, url.database) == (
            "postgresql",
            "db.internal",
            6432,
            "app",
            SECRET,
            "app_production",
        )
        assert url.params == (
            ("sslmode", "verify-full"),
            ("application_name", "jobs"),
            ("password", SECRET),
        )
        assert url.redacted == (
            "postgresql://app:***@db.internal:6432/app_production"
            "?sslmode=verify-full&application_name=jobs&password=***"
        )
        assert SECRET not in repr(url)


def test_password_with_url_delimiters_names_the_fix() -> None:
    """A password with an unencoded '#' fails at start, saying to percent-encode it."""
    with pytest.raises(ConfigurationError) as info:
        prepare(f"mysql://root:{SECRET}#1@127.0.0.1:1/x")
    assert str(info.value).startswith("bad database URL 'mysql://root:***@127.0.0.1:1/x': ")
    assert "percent-encode" in str(info.value)


def test_worker_repr_hides_the_password() -> None:
    """repr(Worker) does not show the database password."""
    worker = Worker(database=f"mysql://root:{SECRET}@127.0.0.1:1/x", name="config-errors")
    assert SECRET not in repr(worker)
