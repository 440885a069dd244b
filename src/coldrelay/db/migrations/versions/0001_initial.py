"""Initial schema: domains, mailboxes, DKIM keys, the queue and the delivery log.

Revision ID: 0001
Revises:
Create Date: 2025-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _string_enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_domains")),
        sa.UniqueConstraint("name", name=op.f("uq_domains_name")),
    )
    op.create_table(
        "mailboxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.CheckConstraint("daily_cap IS NULL OR daily_cap >= 0", name=op.f("ck_mailboxes_daily_cap")),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"], name=op.f("fk_mailboxes_domain_id_domains"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint("address", name=op.f("uq_mailboxes_address")),
    )
    op.create_index(op.f("ix_mailboxes_domain_id"), "mailboxes", ["domain_id"])
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("algorithm", _string_enum("dkim_algorithm", "rsa", "ed25519"), nullable=False),
        sa.Column("private_key_pem", sa.Text(), nullable=False),
        sa.Column("public_key_b64", sa.Text(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"], name=op.f("fk_dkim_keys_domain_id_domains"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_domain_selector"),
    )
    op.create_index(op.f("ix_dkim_keys_domain_id"), "dkim_keys", ["domain_id"])
    op.create_table(
        "queued_messages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("message_path", sa.Text(), nullable=True),
        sa.Column("message_blob", sa.LargeBinary(), nullable=True),
        sa.Column(
            "state",
            _string_enum("message_state", "queued", "leased", "deferred", "delivered", "bounced"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _when(), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", _when(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.CheckConstraint("message_path IS NOT NULL OR message_blob IS NOT NULL", name=op.f("ck_queued_messages_content")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queued_messages")),
    )
    op.create_index("ix_queued_messages_state_next_attempt", "queued_messages", ["state", "next_attempt_at"])
    op.create_index("ix_queued_messages_lease_expires", "queued_messages", ["lease_expires_at"])
    op.create_table(
        "delivery_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("remote_host", sa.String(length=253), nullable=True),
        sa.Column("reply_code", sa.Integer(), nullable=True),
        sa.Column("enhanced_code", sa.String(length=16), nullable=True),
        sa.Column("reply_text", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("article", sa.String(length=200), nullable=True),
        sa.Column("tls_version", sa.String(length=16), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["queued_messages.id"], name=op.f("fk_delivery_log_message_id_queued_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_log")),
    )
    op.create_index(op.f("ix_delivery_log_message_id"), "delivery_log", ["message_id"])


def downgrade() -> None:
    op.drop_table("delivery_log")
    op.drop_table("queued_messages")
    op.drop_table("dkim_keys")
    op.drop_table("mailboxes")
    op.drop_table("domains")
