"""Alembic's environment: migrate over the connection ``upgrade_database`` hands in.

There is no alembic.ini: the caller opens the connection with coldrelay's own engine (so the
SQLite pragmas apply) and passes it in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from coldrelay.db.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("run migrations through coldrelay.db.upgrade_database(url), which supplies the connection")
_run(_connection)
