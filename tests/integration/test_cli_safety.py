"""The command as a new user meets it: safe defaults and clear refusals, in real processes.

The demo never replaces a file it did not make; no command prints a password, however
its database URL fails; a mistyped SQLite path fails without leaving a file behind;
``sqlite://jobs.db`` is refused with the right spelling; ``--handlers`` imports from the
current directory; ``--log-level`` and ``--quiet`` choose the lines; every option has
help text.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from procs import HANDLERS, djmw, finish

from djmw.backends import open_backend
from djmw.cli import parser

SECRET = "s3cr3t-pw"  # noqa: S105 - the fake password every test looks for


def run(command: list[str], tmp_path: Path, **options: object) -> tuple[int, str]:
    """Run ``python -m djmw <command>`` to the end; return its exit code and output."""
    log = tmp_path / f"out-{uuid.uuid4().hex[:8]}.log"
    code = finish(djmw(command, log=log, **options), timeout=120)  # type: ignore[arg-type]
    return code, log.read_text()


# -- the demo (item 8) -------------------------------------------------------------------
def test_demo_leaves_a_file_it_did_not_make_alone(tmp_path: Path) -> None:
    """A text file, or another app's SQLite database, under the demo's name: exit 2, the
    file is byte for byte as it was, and the message says how to go on."""
    precious = tmp_path / "precious.db"
    precious.write_text("my notes, not a database\n")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id integer PRIMARY KEY, name text)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    for path in (precious, other):
        before = path.read_bytes()
        code, out = run(["demo", "--database", f"sqlite:///{path}"], tmp_path)
        assert code == 2
        assert "is not a database made by djmw demo" in out
        assert "--force" in out
        assert path.read_bytes() == before


def test_demo_replaces_its_own_database_and_a_forced_file(tmp_path: Path) -> None:
    """The demo runs again over the file it made; --force replaces any other file."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    for _ in range(2):
        code, out = run(["demo", "--database", url], tmp_path)
        assert code == 0, out
        assert "job 1 NewsletterJob: succeeded, row deleted" in out
    forced = tmp_path / "forced.db"
    forced.write_text("replace me\n")
    code, out = run(["demo", "--database", f"sqlite:///{forced}", "--force"], tmp_path)
    assert code == 0, out
    assert forced.read_bytes().startswith(b"SQLite format 3\x00")


def test_demo_recognises_its_database_from_before_the_mark(tmp_path: Path) -> None:
    """A demo.db left by a demo that did not mark its file yet (only delayed_jobs, only
    demo rows) is replaced; a jobs table with other rows, or an empty one, is not."""
    from djmw.cli.demo import ROWS

    def jobs_file(name: str, handlers: list[str]) -> Path:
        path = tmp_path / name
        backend = open_backend(f"sqlite:///{path}")
        backend.create_schema()
        for handler in handlers:
            backend.enqueue(handler)
        backend.close()
        return path

    old = jobs_file("old.db", [handler for _, handler in ROWS[-2:]])
    code, out = run(["demo", "--database", f"sqlite:///{old}"], tmp_path)
    assert code == 0, out
    for path in (
        jobs_file("real.db", ["--- !ruby/struct:NewsletterJob\ntext: for real\n"]),
        jobs_file("empty.db", []),
    ):
        before = path.read_bytes()
        code, out = run(["demo", "--database", f"sqlite:///{path}"], tmp_path)
        assert code == 2, out
        assert path.read_bytes() == before


def test_demo_refuses_a_server_database_without_showing_its_password(tmp_path: Path) -> None:
    """`djmw demo --database mysql://u:p@...`: exit 2, the URL shown redacted, and no file
    made from the URL's text."""
    code, out = run(
        ["demo", "--database", f"mysql://app:{SECRET}@127.0.0.1:1/app"], tmp_path, cwd=tmp_path
    )
    assert code == 2
    assert "djmw demo runs on an SQLite file" in out
    assert "mysql://app:***@127.0.0.1:1/app" in out
    assert SECRET not in out
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("out-")) == []


# -- passwords on every error path (item 8) ---------------------------------------------
@pytest.fixture
def users(mysql_url: str) -> Iterator[dict[str, str]]:
    """Two MariaDB users with the password SECRET on ``mysql_url``'s database: ``rw``
    (every right on it) and ``ro`` (SELECT only). Yields their URLs and the database's."""
    database = mysql_url.rsplit("/", 1)[1]
    suffix = uuid.uuid4().hex[:8]
    names = {"rw": f"djmw_rw_{suffix}", "ro": f"djmw_ro_{suffix}"}
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cursor:
            for kind, name in names.items():
                cursor.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", [SECRET])
                right = "ALL PRIVILEGES" if kind == "rw" else "SELECT"
                cursor.execute(f"GRANT {right} ON `{database}`.* TO '{name}'@'%'")
        yield {
            kind: f"mysql://{name}:{SECRET}@127.0.0.1:3306/{database}"
            for kind, name in names.items()
        } | {"database": database, "rw_user": names["rw"]}
    finally:
        with conn.cursor() as cursor:
            for name in names.values():
                cursor.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        conn.close()


WITHOUT_SERVER = {
    "refused": f"mysql://root:{SECRET}@127.0.0.1:1/x",
    "bad_scheme": f"foo://root:{SECRET}@127.0.0.1/x",
    "slash_in_password": f"mysql://root:{SECRET}/1@127.0.0.1:1/x",
    "unparseable": f"mysql://root:{SECRET}@[::1/x",
    "port_not_a_number": f"mysql2://root:{SECRET}@127.0.0.1:port/x",
}
COMMANDS = {
    "work": ["work", "--handlers", HANDLERS, "--exit-on-complete", "--max-reserve-errors", "2"],
    "work --processes 2": [
        "work",
        "--handlers",
        HANDLERS,
        "--exit-on-complete",
        "--max-reserve-errors",
        "2",
        "--processes",
        "2",
        "--max-crashes",
        "2",
    ],
    "schema": ["schema"],
    "schema --name-index": ["schema", "--name-index"],
    "demo": ["demo"],
}


def _failures(users: dict[str, str]) -> dict[str, str]:
    database = users["database"]
    rw_user = users["rw_user"]
    return {
        **WITHOUT_SERVER,
        "wrong_password": f"mysql://{rw_user}:not-{SECRET}@127.0.0.1:3306/{database}",
        "no_such_database": f"mysql://{rw_user}:{SECRET}@127.0.0.1:3306/no_such_{database}",
        "no_table": users["rw"],
        "read_only_user": users["ro"],
    }


def _check(code: int, out: str, what: str) -> None:
    assert code != 0, f"{what} did not fail:\n{out}"
    assert SECRET not in out, f"{what} printed the password:\n{out}"
    assert out.strip(), f"{what} failed silently"


@pytest.mark.mysql
@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_prints_a_password(command: str, users: dict[str, str], tmp_path: Path) -> None:
    """Each command, given a password-bearing URL that fails in each way we can make
    (refused, bad scheme, unencoded '/', unparseable, wrong password, unknown database,
    no table, a user without write rights): exit non-zero, say why, never the password."""
    for name, url in _failures(users).items():
        if name == "no_table" and command.startswith("schema"):
            continue  # schema creates the table: not a failure
        if name == "no_table":
            open_backend(users["rw"]).close()
        if name == "read_only_user":
            backend = open_backend(users["rw"])
            backend.create_schema()
            backend.enqueue("--- !ruby/struct:NoopJob\nn: 1\n")
            backend.close()
        code, out = run([*COMMANDS[command], "--database", url], tmp_path, url=url)
        _check(code, out, f"{command} with {name}")


@pytest.mark.mysql
@pytest.mark.parametrize("source", ["environment", "config"])
def test_no_password_from_the_environment_or_a_config_file(
    source: str, users: dict[str, str], tmp_path: Path
) -> None:
    """The same failures with the URL in $DATABASE_URL or in the config file."""
    for name, url in _failures(users).items():
        if name == "read_only_user":
            backend = open_backend(users["rw"])
            backend.create_schema()
            backend.close()
        command = list(COMMANDS["work"])
        env: dict[str, str] = {}
        if source == "environment":
            env["DATABASE_URL"] = url
        else:
            config = tmp_path / "djmw.toml"
            config.write_text(f'[worker]\ndatabase = "{url}"\n')
            command += ["--config", str(config)]
        code, out = run(command, tmp_path, env=env)
        _check(code, out, f"work with {name} from the {source}")


# -- SQLite paths and URLs (item 10) -------------------------------------------------------
def test_two_slashes_are_refused_with_the_right_spelling(tmp_path: Path) -> None:
    """`sqlite://jobs.db` is not taken as something: exit 2, the message shows
    sqlite:///jobs.db, and no file appears."""
    code, out = run(
        ["work", "--database", "sqlite://jobs.db", "--handlers", HANDLERS], tmp_path, cwd=tmp_path
    )
    assert code == 2
    assert "sqlite:///jobs.db" in out
    assert not (tmp_path / "jobs.db").exists()


def test_a_mistyped_sqlite_path_leaves_no_file_behind(tmp_path: Path) -> None:
    """`work` on a missing SQLite file: exit 2 naming the file and `djmw schema`; no empty
    file left. `schema` creates it, and then `work` runs."""
    url = "sqlite:///jbos.db"
    code, out = run(
        ["work", "--database", url, "--handlers", HANDLERS, "--exit-on-complete"],
        tmp_path,
        cwd=tmp_path,
    )
    assert code == 2
    assert "the SQLite database 'jbos.db' does not exist" in out
    assert "djmw schema --database sqlite:///jbos.db" in out
    assert not (tmp_path / "jbos.db").exists()
    assert run(["schema", "--database", url], tmp_path, cwd=tmp_path)[0] == 0
    assert (tmp_path / "jbos.db").exists()
    code, out = run(
        ["work", "--database", url, "--handlers", HANDLERS, "--exit-on-complete"],
        tmp_path,
        cwd=tmp_path,
    )
    assert code == 0, out


# -- --handlers from the current directory (item 10) -------------------------------------
APP = """
from pathlib import Path

import djmw

handlers = djmw.Handlers()


@handlers.register("AppJob")
def app_job(job):
    Path("ran.txt").write_text(str(job.id))
"""


def test_handlers_import_from_the_current_directory(tmp_path: Path) -> None:
    """The `djmw` console script, run from the app's folder without PYTHONPATH, imports
    `--handlers myapp.jobs:handlers` from there (as gunicorn, celery and rq do)."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "jobs.py").write_text(APP)
    url = "sqlite:///jobs.db"
    backend = open_backend(f"sqlite:///{tmp_path / 'jobs.db'}")
    backend.create_schema()
    job_id = backend.enqueue("--- !ruby/struct:AppJob\nn: 1\n")
    backend.close()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = Path(sys.executable).parent / "djmw"
    done = subprocess.run(
        [
            str(script),
            "work",
            "--database",
            url,
            "--handlers",
            "myapp.jobs:handlers",
            "--exit-on-complete",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "ran.txt").read_text() == str(job_id)


# -- log levels (item 10) ----------------------------------------------------------------
def _one_job_table(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    backend = open_backend(url)
    backend.create_schema()
    backend.close()
    from crash_handlers import create_job_log

    create_job_log(url)
    backend = open_backend(url)
    backend.enqueue("--- !ruby/struct:NoopJob\nn: 1\n")
    backend.enqueue("--- !ruby/struct:ExitJob\nhow: exit3\n")
    backend.enqueue("--- !ruby/struct:RubyJob\nnote: NoopJob\n")  # matched, given back
    backend.close()
    return url


@pytest.mark.parametrize(
    ("options", "shown", "hidden"),
    [
        ([], ["RUNNING", "FAILED"], ["has no perform function here"]),
        (["--quiet"], ["FAILED (0 prior attempts) with SystemExit: 3"], ["RUNNING", "Starting"]),
        (["--log-level", "warning"], ["FAILED"], ["RUNNING", "COMPLETED"]),
        (["--log-level", "DEBUG"], ["RUNNING", "has no perform function here"], []),
    ],
    ids=["default", "quiet", "warning", "debug"],
)
def test_log_level_and_quiet_choose_the_lines(
    tmp_path: Path, options: list[str], shown: list[str], hidden: list[str]
) -> None:
    """--quiet and --log-level WARNING drop the per-job lines but keep failures; DEBUG
    adds the class-aware give-back lines."""
    url = _one_job_table(tmp_path)
    command = ["work", "--database", url, "--handlers", HANDLERS, "--exit-on-complete", *options]
    code, out = run(command, tmp_path, url=url)
    assert code == 0, out
    for text in shown:
        assert text in out
    for text in hidden:
        assert text not in out


def _options_without_help(command: argparse.ArgumentParser, name: str) -> Iterator[str]:
    for option in command._actions:
        if isinstance(option, argparse._SubParsersAction):
            for sub_name, sub_command in option.choices.items():
                yield from _options_without_help(sub_command, f"{name} {sub_name}".strip())
        elif not option.help and not isinstance(option, argparse._HelpAction):
            yield f"{name} {'/'.join(option.option_strings) or option.dest}"


def test_every_option_has_help_text() -> None:
    """Every option and argument of every command and subcommand says what it does
    (hidden internal ones aside)."""
    assert list(_options_without_help(parser(), "")) == []


EXIT_RACE = (
    "import atexit, os, runpy, signal, sys\n"
    "atexit.register(lambda: os.kill(os.getpid(), getattr(signal, sys.argv.pop())))\n"
    "if sys.argv.pop() == 'module':\n"
    "    runpy.run_module('djmw', run_name='__main__')\n"
    "else:\n"
    "    from djmw.cli import command\n"
    "    command()\n"
)


@pytest.mark.parametrize("entry", ["module", "script"])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGQUIT"])
def test_a_signal_racing_the_exit_keeps_the_exit_status(signame: str, entry: str) -> None:
    """A shutdown signal that reaches ``python -m djmw`` or the ``djmw`` script after its
    command finished (a second Ctrl-C as the fleet exits) leaves the command's own exit
    status."""
    done = subprocess.run(
        [sys.executable, "-c", EXIT_RACE, "--version", entry, signame],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("djmw ")
