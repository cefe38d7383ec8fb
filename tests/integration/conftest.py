"""Fixtures for the integration tests that run Ruby's delayed_job beside djmw.

A module that needs Ruby marks all its tests at once::

    pytestmark = [pytest.mark.ruby, pytest.mark.usefixtures("ruby_delayed_job")]
"""

from __future__ import annotations

import pytest
import rubyenv


@pytest.fixture
def ruby_delayed_job() -> None:
    """Skip the test without Ruby's delayed_job; fail it instead under CI."""
    rubyenv.require_ruby()


@pytest.fixture
def ruby_activejob() -> None:
    """Skip the test without Ruby's delayed_job and ActiveJob; fail it instead under CI."""
    rubyenv.require_ruby(activejob=True)


@pytest.fixture
def proc_url(db_url: str, db: object) -> str:
    """``db_url`` (MariaDB, then SQLite) with delayed_jobs and the job_log side table that
    tests/crash_handlers.py records runs in, for tests with real ``djmw`` processes."""
    from crash_handlers import create_job_log

    create_job_log(db_url)
    return db_url
