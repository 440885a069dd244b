"""Engines and sessions for a database URL, SQLite file or PostgreSQL, with the durability we promise.

The mail host answers 250 only once a message is committed, so the SQLite connection settings are
not tuning: WAL lets readers (the web dashboard) run beside the writer, and ``synchronous=FULL``
makes every commit fsync the WAL, so a committed queue row survives a power cut. They are set on
every new connection because SQLite keeps ``synchronous`` per connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 5000  # a writer waits this long for another writer instead of failing at once

# Applied in this order to every SQLite connection; journal_mode first, since it needs no open transaction.
SQLITE_PRAGMAS: tuple[tuple[str, str], ...] = (
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    ("busy_timeout", str(SQLITE_BUSY_TIMEOUT_MS)),
)


class DatabaseURLError(ValueError):
    """A database URL that names no backend we can open."""


def _apply_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for name, value in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {name}={value}")
    finally:
        cursor.close()


def create_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``sqlite:///path`` or any ``postgresql+psycopg://`` (or plain ``postgresql://``) URL.

    For a SQLite file the parent directory must exist; the pragmas above are set on connect.
    PostgreSQL commits are durable by default; ``pool_pre_ping`` lets long-running workers
    survive a database restart instead of failing on a dead pooled connection.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseURLError(f"not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parent = Path(database).expanduser().absolute().parent
            if not parent.is_dir():
                raise DatabaseURLError(f"the directory of the SQLite database does not exist: {parent}")
        engine = sa_create_engine(parsed, echo=echo)
        event.listen(engine, "connect", _apply_sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # plain postgresql:// means our driver, whatever SQLAlchemy's default
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() != "psycopg":
            raise DatabaseURLError(f"use the psycopg 3 driver for PostgreSQL: postgresql+psycopg://..., not {parsed.drivername}")
        return sa_create_engine(parsed, echo=echo, pool_pre_ping=True)
    raise DatabaseURLError(f"unsupported database {backend!r}: use sqlite:///path or postgresql+psycopg://user@host/db")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (the CLI prints them after committing)."""
    return sessionmaker(engine, expire_on_commit=False)
