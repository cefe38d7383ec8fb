"""The test PostgreSQL server (``DJMW_TEST_PG_URL``): fresh databases for tests.

``scripts/setup_postgresql.sh`` starts the server and makes the ``djmw`` login role that
the default URL names. Used by tests/conftest.py and by tests that need their own database.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

PG_SERVER = os.environ.get("DJMW_TEST_PG_URL", "postgresql://djmw:djmw@127.0.0.1:5432")


def pg_server_connection(database: str = "djmw") -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to ``database`` on the test PostgreSQL server."""
    return psycopg.connect(f"{PG_SERVER}/{database}", autocommit=True, connect_timeout=5)


def new_pg_database() -> str:
    """Create an empty PostgreSQL database and return its URL; skip without a server.

    Under CI the missing server fails the test instead (the suite must not go weaker).
    """
    try:
        conn = pg_server_connection()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({exc}); run scripts/test")
    name = f"djmw_t_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def drop_pg_database(url: str) -> None:
    """Drop the database of ``url``, ending any session still connected to it."""
    name = url.rsplit("/", 1)[1]
    # A new connection: the test may have restarted the server.
    with pg_server_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
