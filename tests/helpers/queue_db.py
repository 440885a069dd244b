"""Fixtures for the queue tests: an empty, migrated database on SQLite (tmp_path) or PostgreSQL.

PostgreSQL: one uniquely named database per test run on the machine's server (dropped at the
end), and a fresh schema in it per test, selected through ``search_path`` in the URL so that
child processes given the URL land in the same schema. Loaded with ``pytest_plugins``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from coldrelay.db import create_engine, upgrade_database

POSTGRES_URL = os.environ.get("COLDRELAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def queue_pg_database() -> Iterator[str]:
    """A database of its own for this run's queue tests, dropped at the end."""
    admin = create_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"coldrelay_queue_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Generator[str, None, None]:
    """A migrated, empty database URL for ``backend``; the PostgreSQL schema is dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/coldrelay.db"
        upgrade_database(url)
        yield url
        return
    run_url: str = request.getfixturevalue("queue_pg_database")
    schema = f"q_{uuid.uuid4().hex[:12]}"
    admin = create_engine(run_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{run_url}?options=-csearch_path%3D{schema}"
    try:
        upgrade_database(url)
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_url(request.param, request, tmp_path)


@pytest.fixture
def queue_pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_url("postgresql", request, tmp_path)


@pytest.fixture
def queue_engine(queue_db_url: str) -> Iterator[Engine]:
    engine = create_engine(queue_db_url)
    yield engine
    engine.dispose()
