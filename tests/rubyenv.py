"""Helpers for tests that run Ruby's delayed_job beside djmw (scripts in tests/ruby/).

Typical use::

    db = sqlite_url(tmp_path / "dj.db")
    create_schema(db)
    jobs = enqueue("all_shapes", db)          # one dict per enqueued job
    run_ruby("work.rb", "--max-attempts", "1", database=db, env={"DJ_RECORD": str(rec)})
    calls = read_records(rec)

Test modules that need Ruby use the fixtures of tests/integration/conftest.py (or call
``require_ruby``): the test is skipped without Ruby, except under CI, where it fails.

The Ruby side is installed by scripts/setup_ruby.sh (Debian's packages).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUBY_DIR = ROOT / "tests" / "ruby"
FIXTURES_DIR = ROOT / "tests" / "fixtures" / "ruby"

__all__ = [
    "FIXTURES_DIR",
    "RUBY_DIR",
    "RubyScriptError",
    "activejob_available",
    "create_schema",
    "enqueue",
    "fixture_expected",
    "fixture_handler",
    "fixture_shapes",
    "mysql_url",
    "read_records",
    "require_ruby",
    "ruby_available",
    "ruby_database",
    "run_ruby",
    "sqlite_url",
    "start_worker",
]


class RubyScriptError(RuntimeError):
    """A Ruby script exited non-zero or timed out; carries its stdout and stderr."""

    def __init__(self, command: list[str], returncode: int | None, stdout: str, stderr: str):
        """Keep the command, exit status (None on timeout) and output for the report."""
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(
            f"{' '.join(command)} {status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        )


def _ruby() -> str | None:
    """Path of the Ruby interpreter (env RUBY overrides PATH lookup)."""
    return os.environ.get("RUBY") or shutil.which("ruby")


@functools.cache
def _ruby_can_require(*features: str) -> bool:
    """True if `ruby` exists and can require every one of ``features``."""
    ruby = _ruby()
    if ruby is None:
        return False
    code = "".join(f"require {json.dumps(f)};" for f in features)
    try:
        proc = subprocess.run(
            [ruby, "-e", code], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def ruby_available() -> bool:
    """True if Ruby with delayed_job, delayed_job_active_record and sqlite3 can be loaded.

    Use as ``pytest.mark.skipif(not ruby_available(), reason=...)``; the result is cached.
    """
    return _ruby_can_require(
        "logger", "active_record", "delayed_job", "delayed_job_active_record", "sqlite3"
    )


def activejob_available() -> bool:
    """True if ActiveJob, GlobalID and ActionMailer are installed too (needed by aj_* shapes)."""
    return ruby_available() and _ruby_can_require(
        "logger", "active_support", "globalid", "active_job", "action_mailer"
    )


def require_ruby(*, activejob: bool = False) -> None:
    """Skip the calling test unless Ruby's delayed_job (and with ``activejob``, ActiveJob) loads.

    Under CI (env ``CI`` set) the test fails instead, so that the suite does not go weaker.
    """
    __tracebackhide__ = True  # report the skip or failure at the caller
    if activejob and not activejob_available():
        reason = "Ruby's delayed_job with ActiveJob is missing; run scripts/setup_ruby.sh"
    elif not ruby_available():
        reason = "Ruby's delayed_job is missing; run scripts/setup_ruby.sh"
    else:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """DJ_DATABASE value for an SQLite file: ``sqlite3:/abs/path.db``."""
    return f"sqlite3:{Path(path).resolve()}"


def mysql_url(
    database: str, *, user: str = "root", host: str = "127.0.0.1", port: int = 3306
) -> str:
    """DJ_DATABASE value for MariaDB/MySQL: ``mysql2://root@127.0.0.1:3306/<database>``."""
    return f"mysql2://{user}@{host}:{port}/{database}"


def ruby_database(db_url: str) -> str:
    """The DJ_DATABASE value (tests/ruby/env.rb) for a djmw database URL.

    ``sqlite:///path`` becomes ``sqlite3:/abs/path``; ``mysql://...`` becomes ``mysql2://...``;
    a ``postgresql://`` URL is used as it is (ActiveRecord's postgresql adapter).
    """
    if db_url.startswith("sqlite:///"):
        return sqlite_url(db_url.removeprefix("sqlite:///"))
    if db_url.startswith(("postgresql://", "postgres://")):
        return db_url
    scheme, _, rest = db_url.partition("://")
    assert scheme in ("mysql", "mysql2"), db_url
    return f"mysql2://{rest}"


def _env(database: str, env: Mapping[str, str] | None) -> dict[str, str]:
    """Process environment for a Ruby script: ours plus DJ_DATABASE plus ``env``."""
    merged = dict(os.environ)
    merged["DJ_DATABASE"] = database
    if env:
        merged.update({k: str(v) for k, v in env.items()})
    return merged


def _command(script: str, args: Iterable[str]) -> list[str]:
    """Argument vector for ``ruby tests/ruby/<script> args...``."""
    ruby = _ruby()
    if ruby is None:
        raise RubyScriptError(["ruby", script], 127, "", "ruby is not installed")
    return [ruby, str(RUBY_DIR / script), *(str(a) for a in args)]


def run_ruby(
    script: str,
    *args: str,
    database: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``ruby tests/ruby/<script> *args`` with DJ_DATABASE=``database`` and wait for it.

    ``env`` adds variables (DJ_RECORD, DJ_TIMEZONE, DJ_QUEUES, ...; see tests/ruby/README.md).
    Returns the completed process (text stdout/stderr). Raises RubyScriptError, carrying
    stdout and stderr, when the script exits non-zero or runs longer than ``timeout`` seconds.
    """
    command = _command(script, args)
    try:
        proc = subprocess.run(
            command,
            cwd=ROOT,
            env=_env(database, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise RubyScriptError(command, None, out, err) from exc
    if proc.returncode != 0:
        raise RubyScriptError(command, proc.returncode, proc.stdout, proc.stderr)
    return proc


def create_schema(database: str, *, env: Mapping[str, str] | None = None) -> None:
    """Drop and create ``delayed_jobs`` (generator migration) and ``users`` in ``database``.

    For MariaDB the database itself is created if missing.
    """
    run_ruby("schema.rb", database=database, env=env)


def enqueue(
    scenario: str,
    database: str,
    *,
    extra_args: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> list[dict[str, Any]]:
    """Enqueue the jobs of ``scenario`` (a scenario or shape name) from Ruby; return them.

    Each dict is one enqueued job: ``id`` (row id), ``shape``, ``scenario``,
    ``payload_class``, ``row`` (queue, priority, attempts, run_at, created_at) and
    ``expected`` (the payload as Ruby loads it back, plus ``arguments`` for ActiveJob).
    ``extra_args`` go to enqueue.rb before the scenario, e.g. ``("--queue", "q", "--count", "5")``.
    """
    proc = run_ruby(
        "enqueue.rb", *extra_args, scenario, database=database, env=env, timeout=timeout
    )
    jobs: list[dict[str, Any]] = []
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        if isinstance(item, dict) and "id" in item and "shape" in item:
            jobs.append(item)
    return jobs


def start_worker(
    database: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start ``ruby tests/ruby/work.rb *args`` in the background and return the process.

    For a Ruby worker running beside djmw: pass ``"--no-exit-on-complete"`` and stop it with
    ``proc.send_signal(signal.SIGTERM)`` then ``proc.communicate(timeout=...)`` (delayed_job
    finishes the current job, then exits).
    """
    return subprocess.Popen(
        _command("work.rb", args),
        cwd=ROOT,
        env=_env(database, env),
        stdout=stdout,
        stderr=stderr,
        text=True,
    )


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse the JSON lines that Ruby job code appended to DJ_RECORD (empty if no file)."""
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def fixture_shapes() -> list[str]:
    """Names of the shapes that have a handler fixture in tests/fixtures/ruby/."""
    return sorted(p.stem for p in FIXTURES_DIR.glob("*.yml"))


def fixture_handler(shape: str) -> bytes:
    """Exact bytes of the ``handler`` column Ruby wrote for ``shape``."""
    return (FIXTURES_DIR / f"{shape}.yml").read_bytes()


@functools.cache
def _expected() -> dict[str, Any]:
    """Parsed tests/fixtures/ruby/expected.json."""
    data: dict[str, Any] = json.loads((FIXTURES_DIR / "expected.json").read_text())
    return data


def fixture_expected(shape: str) -> dict[str, Any]:
    """Expected Ruby values for ``shape`` (the ``expected`` object enqueue.rb printed)."""
    value: dict[str, Any] = _expected()[shape]
    return value
