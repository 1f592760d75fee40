"""Fixtures shared across the test suite.

PostgreSQL: tests run against the real server named by ``$ALPHALOOP_TEST_POSTGRES_URL`` (default:
the local trust-auth server). Each test session gets a database of its own, dropped at the end, so
runs never see each other's rows. When no server answers, the tests that need one are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

# CI replays the same examples every run (a failure there is reproducible, not a dice roll);
# locally hypothesis keeps exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

POSTGRES_ADMIN_URL = os.environ.get("ALPHALOOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test session."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    admin_url = make_url(POSTGRES_ADMIN_URL)
    if admin_url.drivername == "postgresql":
        admin_url = admin_url.set(drivername="postgresql+psycopg2")
    # CREATE/DROP DATABASE cannot run inside a transaction.
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        conn = admin.connect()
    except OperationalError as e:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {admin_url.render_as_string()}: {str(e.orig).splitlines()[0]}")
    name = f"alphaloop_test_{uuid.uuid4().hex[:12]}"
    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    # A throwaway database needs no durability; skipping the WAL flush per commit speeds tests up.
    conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
        admin.dispose()
