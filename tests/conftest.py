"""Fixtures shared by every test layer: catalog URLs for SQLite files and a real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import botocore.loaders
import botocore.session
import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("SNAPKEEP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


# -- one botocore data loader per test process -------------------------------------------------------------------------
# Every boto3 Session gets its own botocore Loader, which parses the (gzipped) service models anew: about 0.1 s per
# first client of a session, and the tests open many sessions (each Snapkeep's SessionProvider, each assumed role).
# Within one session botocore already hands the same parsed model to every client; here every session of the test
# process shares one Loader per data path, so the models are parsed once per process. Only parsing is saved: the
# same files give the same models, and clients, credentials and endpoints stay per session.
class _SearchPaths(list[str]):
    """boto3 appends its own data directory to a session's loader: once is enough for the shared one."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


_LOADERS: dict[str | None, botocore.loaders.Loader] = {}
_create_loader = botocore.loaders.create_loader


def _shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    loader = _LOADERS.get(search_path_string)
    if loader is None:
        loader = _LOADERS[search_path_string] = _create_loader(search_path_string)
        loader._search_paths = _SearchPaths(loader.search_paths)
    return loader


botocore.session.create_loader = _shared_loader  # type: ignore[attr-defined]

# A client class has one method per operation of its service (some 750 for EC2), each built with its operation model
# and docstring on every create_client. They depend only on the service's model, which the shared loader now parses
# once: build them once per model. Each client class still gets its own dict (the session's 'creating-client-class'
# handlers add to it) and is still made per client; only the methods themselves are reused.
_METHODS: dict[tuple[str, int], dict[str, Any]] = {}
_create_methods = botocore.client.ClientCreator._create_methods


def _cached_methods(self: botocore.client.ClientCreator, service_model: Any) -> dict[str, Any]:
    description = service_model._service_description
    key = (service_model.service_name, id(description))
    cached = _METHODS.get(key)
    if cached is None or cached["__description__"] is not description:
        cached = {"__description__": description, "methods": _create_methods(self, service_model)}
        _METHODS[key] = cached
    return dict(cached["methods"])


botocore.client.ClientCreator._create_methods = _cached_methods  # type: ignore[method-assign]


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
