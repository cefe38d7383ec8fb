"""MariaDB stopped and started under running workers: they log, reconnect and finish.

This test restarts the shared MariaDB server, so it runs last in its module and leaves
the server running as ``scripts/setup_mariadb.sh`` starts it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from djmw.backends.base import SqlBackend
from tests.integration.test_processes import bulk_insert, djmw, log_rows, proc_db, wait_for

pytestmark = pytest.mark.mysql
ROOT = Path(__file__).resolve().parents[2]


def server_up() -> bool:
    probe = ["mariadb-admin", "--protocol=tcp", "-h127.0.0.1", "-P3306", "-uroot", "ping"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def stop_server() -> None:
    subprocess.run(["mariadb-admin", "--protocol=socket", "-uroot", "shutdown"], check=True)
    wait_for(lambda: not server_up(), 30, "MariaDB to stop")


def start_server() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "setup_mariadb.sh")], check=True)


@pytest.fixture
def db(mysql_url: str) -> Iterator[SqlBackend]:
    """A MariaDB backend with delayed_jobs and the job_log side table."""
    yield from proc_db(mysql_url)


def test_workers_survive_a_database_restart(mysql_url: str, db: SqlBackend, tmp_path: Path) -> None:
    """Workers ride out a 3 s outage: every job runs, at most one per worker runs twice,
    the outage is logged, and a worker whose reserve-error limit is lower gives up."""
    bulk_insert(db, "--- !ruby/struct:SleepJob\nseconds: 0.005\n", 1_500)
    db.close()
    log = tmp_path / "patient.log"
    patient = djmw(
        mysql_url,
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
        mysql_url,
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

    watcher = open_backend(mysql_url)
    wait_for(lambda: len(log_rows(watcher)) >= 200, 60, "200 jobs to run")
    watcher.close()
    stop_server()
    down_at = time.monotonic()
    time.sleep(3)
    start_server()
    up_at = time.monotonic()
    watcher = open_backend(mysql_url)
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
    assert "Error while reserving job" in text or "Retrying a write" in text
    assert "consecutive reserve errors" in (tmp_path / "impatient.log").read_text()
    print(
        f"\noutage {up_at - down_at:.1f} s; jobs ran again {recovery:.1f} s after the server was back; "
        f"{duplicates} job(s) ran twice"
    )
