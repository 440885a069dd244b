"""Alembic migrations of the coldrelay database, run by ``coldrelay.db.upgrade_database``."""
