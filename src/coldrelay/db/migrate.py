"""Bring a database to the current schema with the migrations shipped inside the package.

The migrations live in ``coldrelay/db/migrations`` rather than beside an alembic.ini at the repo
root, so an installed coldrelay (a wheel, no checkout) can still upgrade its own database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from coldrelay.db.engine import create_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of coldrelay."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision a database is at (``None``: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(url: str | Engine, revision: str = "head") -> None:
    """Create or upgrade the schema; safe to call at every start (does nothing when current).

    Takes a URL, or an engine the caller already holds, so that SQLite's pragmas and one
    connection pool are shared with the rest of the process.
    """
    engine = create_engine(url) if isinstance(url, str) else url
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if isinstance(url, str):
            engine.dispose()
