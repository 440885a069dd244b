"""The mail host's tables: hosted domains, mailboxes, DKIM keys, the queue and the delivery log.

Plain typed SQLAlchemy 2 models that run unchanged on SQLite and PostgreSQL: enums are stored as
short strings with a CHECK (no PostgreSQL enum types to migrate), times are timezone-aware UTC on
both (SQLite forgets the zone, ``UTCDateTime`` puts it back), and the recipient list is JSON.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The one clock of the database layer, aware and in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always stored and returned as aware UTC.

    SQLite keeps no zone, so a naive value read back would compare wrongly with ``utcnow()``
    (TypeError) in the queue's ``next_attempt_at <= now`` decisions; this makes both backends alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC time (coldrelay.db.utcnow)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DkimAlgorithm(enum.StrEnum):
    """Key types a DKIM record can announce (RFC 6376 rsa, RFC 8463 ed25519)."""

    RSA = "rsa"
    ED25519 = "ed25519"


class MessageState(enum.StrEnum):
    """Where a queued message is in its life; every move between them is explicit.

    queued: ready now; leased: a delivery worker holds it until ``lease_expires_at``;
    deferred: wait until ``next_attempt_at``; delivered and bounced: final.
    """

    QUEUED = "queued"
    LEASED = "leased"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    BOUNCED = "bounced"


def _string_enum(kind: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """The declarative base; ``Base.metadata`` is what the migrations describe."""

    # Named constraints, so that later migrations can alter them on both backends (batch mode on SQLite).
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Domain(Base):
    """A domain this host sends and receives for (stored as lower-case A-labels)."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    # The sending IPs of box.<domain>: its A/AAAA records, SPF ip4/ip6 and the PTR each IP needs.
    ips: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    mailboxes: Mapped[list[Mailbox]] = relationship(back_populates="domain", order_by="Mailbox.address")
    dkim_keys: Mapped[list[DkimKey]] = relationship(back_populates="domain", order_by="DkimKey.created_at")

    def __repr__(self) -> str:
        return f"Domain({self.name!r})"


class Mailbox(Base):
    """A sending and receiving identity: the login for submission and the owner of a Maildir."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"), index=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    daily_cap: Mapped[int | None] = mapped_column(Integer)  # None: the configured limits.daily_cap
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    domain: Mapped[Domain] = relationship(back_populates="mailboxes")

    __table_args__ = (CheckConstraint("daily_cap IS NULL OR daily_cap >= 0", name="daily_cap"),)

    def __repr__(self) -> str:
        return f"Mailbox({self.address!r})"


class DkimKey(Base):
    """One DKIM key of a domain; the active one signs, older ones stay until DNS forgets them."""

    __tablename__ = "dkim_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    selector: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[DkimAlgorithm] = mapped_column(_string_enum(DkimAlgorithm, "dkim_algorithm"))
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_key_b64: Mapped[str] = mapped_column(Text)  # the p= value of the DNS record
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(default=True)

    domain: Mapped[Domain] = relationship(back_populates="dkim_keys")

    __table_args__ = (UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_domain_selector"),)

    @property
    def dns_name(self) -> str:
        """Where the public key is published: ``<selector>._domainkey.<domain>``."""
        return f"{self.selector}._domainkey.{self.domain.name}"

    @property
    def txt_value(self) -> str:
        """The TXT record's text, as one string (DNS panels split it into 255-byte strings themselves)."""
        return f"v=DKIM1; k={self.algorithm.value}; p={self.public_key_b64}"


def new_message_id() -> str:
    """A random queue id: unguessable, and safe as a spool file name."""
    return uuid.uuid4().hex


class QueuedMessage(Base):
    """A message we said 250 to and must deliver or bounce; never deleted before a final state."""

    __tablename__ = "queued_messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_message_id)
    sender: Mapped[str] = mapped_column(String(320))  # the envelope MAIL FROM; "" for a bounce
    recipients: Mapped[list[str]] = mapped_column(JSON)
    message_path: Mapped[str | None] = mapped_column(Text)  # a spool file, for large messages
    message_blob: Mapped[bytes | None] = mapped_column(LargeBinary)  # or the bytes themselves
    state: Mapped[MessageState] = mapped_column(_string_enum(MessageState, "message_state"), default=MessageState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # leases that expired without an outcome
    tries: Mapped[int] = mapped_column(Integer, default=0)  # delivery attempts that ended in a remote answer or failure
    last_error: Mapped[str | None] = mapped_column(Text)  # why the last try did not finish the message
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    deliveries: Mapped[list[DeliveryLog]] = relationship(back_populates="message", order_by="DeliveryLog.id")

    __table_args__ = (
        CheckConstraint("message_path IS NOT NULL OR message_blob IS NOT NULL", name="content"),
        Index("ix_queued_messages_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_queued_messages_lease_expires", "lease_expires_at"),
    )


class DeliveryOutcome(enum.StrEnum):
    """What one log row says happened to one recipient."""

    DELIVERED = "delivered"  # the remote server said 250
    DEFERRED = "deferred"  # a 4xx or a connection failure: tried again later
    BOUNCED = "bounced"  # final failure: a 5xx, a null MX, or retries gave up


class LogSource(enum.StrEnum):
    """Where a log row comes from: our own delivery attempt, or a bounce email that arrived later."""

    ATTEMPT = "attempt"
    BOUNCE = "bounce"


class DeliveryLog(Base):
    """One delivery attempt to one recipient and what the remote server answered."""

    __tablename__ = "delivery_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("queued_messages.id", ondelete="CASCADE"), index=True)
    sender: Mapped[str | None] = mapped_column(String(320), index=True)  # the envelope sender: the reputation guard's key
    recipient: Mapped[str] = mapped_column(String(320))
    outcome: Mapped[DeliveryOutcome | None] = mapped_column(_string_enum(DeliveryOutcome, "delivery_outcome"))
    source: Mapped[LogSource] = mapped_column(_string_enum(LogSource, "log_source"), default=LogSource.ATTEMPT)
    hard_bounce: Mapped[bool] = mapped_column(default=False)
    remote_host: Mapped[str | None] = mapped_column(String(253))
    reply_code: Mapped[int | None] = mapped_column(Integer)
    enhanced_code: Mapped[str | None] = mapped_column(String(16))
    reply_text: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(32))  # coldrelay.errors Reason value
    provider: Mapped[str | None] = mapped_column(String(64))
    article: Mapped[str | None] = mapped_column(String(200))  # knowledge-base slug
    tls_version: Mapped[str | None] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    message: Mapped[QueuedMessage] = relationship(back_populates="deliveries")


class PauseScope(enum.StrEnum):
    """What a pause stops: one mailbox, or every mailbox of a domain."""

    MAILBOX = "mailbox"
    DOMAIN = "domain"


class SenderPause(Base):
    """The reputation guard stopped a sender; it stays stopped until a person resumes it.

    Rows are kept after resuming (``resumed_at`` set) so the dashboard can show the history.
    """

    __tablename__ = "sender_pauses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[PauseScope] = mapped_column(_string_enum(PauseScope, "pause_scope"))
    name: Mapped[str] = mapped_column(String(320))  # the mailbox address or the domain name
    trigger: Mapped[str] = mapped_column(String(32))  # hard-bounce-rate | blocklisted | manual
    detail: Mapped[str] = mapped_column(Text)  # the figures or the reply that caused it, for people
    paused_at: Mapped[datetime] = mapped_column(default=utcnow)
    resumed_at: Mapped[datetime | None] = mapped_column()
    resumed_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_sender_pauses_scope_name", "scope", "name"),)


class AdminUser(Base):
    """A person who may use the admin dashboard; the first one is made by ``coldrelay admin create``."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()


class AdminSession(Base):
    """A logged-in browser: only the SHA-256 of the cookie's token is stored, with its CSRF token and expiry."""

    __tablename__ = "admin_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class ApiToken(Base):
    """A bearer token for the admin JSON API; shown once, stored as its SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
