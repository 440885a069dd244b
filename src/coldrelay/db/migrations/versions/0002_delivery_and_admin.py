"""Delivery engine and dashboard: tries and last error on the queue, outcome/sender/source on the
log, sender pauses for the reputation guard, a domain's sending IPs, admin users, sessions, tokens.

Only plain ``ADD COLUMN``s, never a table rebuild: on SQLite a batch rebuild drops and recreates
the table, and with foreign keys on, dropping ``queued_messages`` would cascade into the delivery
log. The server defaults that fill existing rows therefore stay in the schema (they agree with
the models' defaults).

Existing rows get safe values: log rows written from bounce emails (attempt 0) become source
``bounce`` and outcome ``bounced``; domains get an empty IP list.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _string_enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "admin_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("last_login_at", _when(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
        sa.UniqueConstraint("username", name=op.f("uq_admin_users_username")),
    )
    op.create_table(
        "sender_pauses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", _string_enum("pause_scope", "mailbox", "domain"), nullable=False),
        sa.Column("name", sa.String(length=320), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("paused_at", _when(), nullable=False),
        sa.Column("resumed_at", _when(), nullable=True),
        sa.Column("resumed_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender_pauses")),
    )
    op.create_index("ix_sender_pauses_scope_name", "sender_pauses", ["scope", "name"])
    op.create_table(
        "admin_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("expires_at", _when(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["admin_users.id"], name=op.f("fk_admin_sessions_user_id_admin_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_admin_sessions")),
    )
    op.create_index(op.f("ix_admin_sessions_user_id"), "admin_sessions", ["user_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("last_used_at", _when(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["admin_users.id"], name=op.f("fk_api_tokens_user_id_admin_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])

    with op.batch_alter_table("delivery_log") as batch:
        batch.add_column(sa.Column("sender", sa.String(length=320), nullable=True))
        batch.add_column(
            sa.Column("outcome", _string_enum("delivery_outcome", "delivered", "deferred", "bounced"), nullable=True)
        )
        batch.add_column(
            sa.Column("source", _string_enum("log_source", "attempt", "bounce"), nullable=False, server_default="attempt")
        )
        batch.add_column(sa.Column("hard_bounce", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index(batch.f("ix_delivery_log_at"), ["at"])
        batch.create_index(batch.f("ix_delivery_log_sender"), ["sender"])
    op.execute("UPDATE delivery_log SET source = 'bounce', outcome = 'bounced' WHERE attempt = 0")

    with op.batch_alter_table("domains") as batch:
        batch.add_column(sa.Column("ips", sa.JSON(), nullable=False, server_default="[]"))

    with op.batch_alter_table("queued_messages") as batch:
        batch.add_column(sa.Column("tries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queued_messages") as batch:
        batch.drop_column("last_error")
        batch.drop_column("tries")
    with op.batch_alter_table("domains") as batch:
        batch.drop_column("ips")
    with op.batch_alter_table("delivery_log") as batch:
        batch.drop_index(batch.f("ix_delivery_log_sender"))
        batch.drop_index(batch.f("ix_delivery_log_at"))
        batch.drop_column("hard_bounce")
        batch.drop_column("source")
        batch.drop_column("outcome")
        batch.drop_column("sender")
    op.drop_table("api_tokens")
    op.drop_table("admin_sessions")
    op.drop_table("sender_pauses")
    op.drop_table("admin_users")
