"""Fixtures for the queue tests: an empty, migrated database on SQLite (tmp_path) or PostgreSQL.

The databases come from conftest.py (``pg_run_database``, ``database_url``): one PostgreSQL
database per run and a fresh schema per test. Loaded with ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from coldrelay.db import create_engine
from conftest import database_url


def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Generator[str, None, None]:
    """A migrated, empty database URL for ``backend`` (see conftest.database_url)."""
    yield from database_url(backend, request, tmp_path, migrate=True)


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
