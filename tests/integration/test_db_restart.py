"""The database server stopped and started under running workers: they log, reconnect and finish.

This test restarts the shared MariaDB or PostgreSQL server, so it runs last in its module
and leaves the server running as ``scripts/setup_mariadb.sh`` and
``scripts/setup_postgresql.sh`` start it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from djmw.backends.base import SqlBackend
from tests.integration.test_processes import bulk_insert, djmw, log_rows, proc_db, wait_for

# serial: the tests stop and start the shared database servers.
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[2]


def server_up(dialect: str) -> bool:
    if dialect == "postgresql":
        probe = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]
    else:
        probe = ["mariadb-admin", "--protocol=tcp", "-h127.0.0.1", "-P3306", "-uroot", "ping"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def stop_server(dialect: str) -> None:
    if dialect == "postgresql":
        subprocess.run(["pg_ctlcluster", "15", "main", "stop", "-m", "fast"], check=True)
    else:
        subprocess.run(["mariadb-admin", "--protocol=socket", "-uroot", "shutdown"], check=True)
    wait_for(lambda: not server_up(dialect), 30, "the server to stop")


def start_server(dialect: str) -> None:
    script = "setup_postgresql.sh" if dialect == "postgresql" else "setup_mariadb.sh"
    subprocess.run(["bash", str(ROOT / "scripts" / script)], check=True)


@pytest.fixture(params=["mysql", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh MariaDB database, then a fresh PostgreSQL one."""
    request.applymarker(getattr(pytest.mark, request.param))
    return str(request.getfixturevalue("mysql_url" if request.param == "mysql" else "pg_url"))


@pytest.fixture
def db(url: str) -> Iterator[SqlBackend]:
    """A backend with delayed_jobs and the job_log side table."""
    yield from proc_db(url)


def test_workers_survive_a_database_restart(url: str, db: SqlBackend, tmp_path: Path) -> None:
    """Workers ride out a 3 s outage: every job runs, at most one per worker runs twice,
    the outage is logged, and a worker whose reserve-error limit is lower gives up."""
    bulk_insert(db, "--- !ruby/struct:SleepJob\nseconds: 0.005\n", 1_500)
    db.close()
    log = tmp_path / "patient.log"
    patient = djmw(
        url,
        "--processes",
        "2",
        "--exit-on-complete",
        "--sleep-delay",
        "0.5",
        "--max-reserve-errors",
        "1000",
        log=log,
    )
    impatient = djmw(
        url,
        "--name",
        "impatient",
        "--sleep-delay",
        "0.2",
        "--max-reserve-errors",
        "2",
        "--queues",
        "nothing-here",
        log=tmp_path / "impatient.log",
    )
    from djmw.backends import open_backend

    watcher = open_backend(url)
    wait_for(lambda: len(log_rows(watcher)) >= 200, 60, "200 jobs to run")
    watcher.close()
    dialect = "postgresql" if url.startswith("postgresql") else "mysql"
    stop_server(dialect)
    down_at = time.monotonic()
    time.sleep(3)
    start_server(dialect)
    up_at = time.monotonic()
    watcher = open_backend(url)
    before = len(log_rows(watcher))
    wait_for(
        lambda: len(log_rows(watcher)) > before + 10, 60, "jobs to run again after the restart"
    )
    recovery = time.monotonic() - up_at
    assert patient.wait(timeout=300) == 0
    assert impatient.wait(timeout=30) == 1
    runs = [job_id for job_id, _ in log_rows(watcher)]
    duplicates = len(runs) - len(set(runs))
    assert len(set(runs)) == 1_500
    assert duplicates <= 2
    assert watcher._query("SELECT COUNT(*) FROM delayed_jobs")[0][0] == 0
    watcher.close()
    text = log.read_text()
    # Where the outage met the worker decides the line: a reserve, a write's retries, the
    # outcome written on its own after a combined write and claim failed, or at least the
    # reconnection (when a job ran all through the outage, its connection is found dead
    # afterwards).
    assert any(
        line in text
        for line in (
            "Error while reserving job",
            "Retrying a write",
            "Could not write an outcome together with the next claim",
            "Reconnected to",
        )
    ), text[-3000:]
    assert "consecutive reserve errors" in (tmp_path / "impatient.log").read_text()
    print(
        f"\noutage {up_at - down_at:.1f} s; jobs ran again {recovery:.1f} s after the server was back; "
        f"{duplicates} job(s) ran twice"
    )
