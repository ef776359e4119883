"""Fixtures shared by every test layer: catalog URLs for SQLite files and a real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("SNAPKEEP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _postgres_available() -> str | None:
    """None when PostgreSQL answers; else why not (the tests that need it are skipped, saying so)."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        return f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({type(exc).__name__}); set SNAPKEEP_TEST_PG_URL"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    yield PG_ADMIN_URL


def _fresh_pg_database(admin_url: str) -> tuple[str, str]:
    name = f"snapkeep_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty catalog database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    admin_url = request.getfixturevalue("postgres_server")
    name, url = _fresh_pg_database(admin_url)
    try:
        yield url
    finally:
        _drop_pg_database(admin_url, name)
