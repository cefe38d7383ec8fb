"""Shared fixtures: a fresh MariaDB or PostgreSQL database or SQLite file per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from pgserver import drop_pg_database, new_pg_database

from djmw.backends import open_backend
from djmw.backends.base import SqlBackend

MYSQL_SERVER = os.environ.get("DJMW_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")


def _server_connection() -> pymysql.connections.Connection[tuple[object, ...]]:
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A URL of a new, empty MariaDB database, dropped after the test.

    Skips when no server answers, except under CI, where the suite must not go weaker.
    """
    try:
        conn = _server_connection()
    except pymysql.err.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no MariaDB on 127.0.0.1:3306 ({exc}); run scripts/test")
    name = f"djmw_t_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.close()
    try:
        yield f"{MYSQL_SERVER}/{name}"
    finally:
        # A new connection: the test may have restarted the server.
        conn = _server_connection()
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL of a new, empty PostgreSQL database, dropped after the test."""
    url = new_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a new SQLite file."""
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture(params=["mysql", "postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each database djmw supports in turn: the test runs once per dialect."""
    if request.param == "mysql":
        request.applymarker(pytest.mark.mysql)
        return str(request.getfixturevalue("mysql_url"))
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgresql)
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture
def db(db_url: str) -> Iterator[SqlBackend]:
    """A backend on a fresh database with the delayed_jobs table created."""
    backend = open_backend(db_url)
    backend.create_schema()
    backend.check_schema()
    try:
        yield backend
    finally:
        backend.close()
