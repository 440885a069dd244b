"""The data layer on a SQLite file and on the machine's PostgreSQL: schema, durability pragmas,
domains with DKIM keys, mailboxes with argon2 hashes, password checks, the queue tables."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coldrelay.db import (
    AccountError,
    AlreadyExists,
    Base,
    DatabaseURLError,
    DeliveryLog,
    DkimAlgorithm,
    Domain,
    InvalidName,
    Mailbox,
    MessageState,
    QueuedMessage,
    UnknownDomain,
    create_domain,
    create_engine,
    create_mailbox,
    current_revision,
    generate_dkim_key,
    head_revision,
    list_domains,
    list_mailboxes,
    normalize_address,
    session_factory,
    txt_strings,
    upgrade_database,
    utcnow,
    verify_password,
)
from conftest import database_url

PASSWORD = "correct horse battery"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in tmp_path, or a fresh schema in the run's PostgreSQL database."""
    yield from database_url(request.param, request, tmp_path, migrate=False)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


# --- schema and engine -------------------------------------------------------------------------


def test_migration_creates_every_table_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision() == "0002"
    tables = set(inspect(engine).get_table_names())
    assert {
        "domains",
        "mailboxes",
        "dkim_keys",
        "queued_messages",
        "delivery_log",
        "sender_pauses",
        "admin_users",
        "admin_sessions",
        "api_tokens",
        "alembic_version",
    } <= tables


def test_upgrade_from_0001_keeps_rows_and_marks_bounce_rows(db_url: str) -> None:
    """A database made by the first release upgrades in place: bounce-email rows become source=bounce."""
    from sqlalchemy import text

    upgrade_database(db_url, "0001")
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO domains (id, name, created_at) VALUES (1, 'old.test', CURRENT_TIMESTAMP)"))
            connection.execute(
                text(
                    "INSERT INTO queued_messages (id, sender, recipients, message_blob, state, attempts, next_attempt_at,"
                    " created_at) VALUES ('m1', 'a@old.test', '[\"b@x.test\"]', :blob, 'queued', 0,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"blob": b"x"},
            )
            connection.execute(
                text(
                    "INSERT INTO delivery_log (message_id, recipient, attempt, at) VALUES"
                    " ('m1', 'b@x.test', 0, CURRENT_TIMESTAMP), ('m1', 'b@x.test', 1, CURRENT_TIMESTAMP)"
                )
            )
        upgrade_database(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT attempt, source, outcome, hard_bounce FROM delivery_log ORDER BY attempt")
            ).all()
            domain_ips = connection.execute(text("SELECT ips FROM domains")).scalar_one()
            tries = connection.execute(text("SELECT tries FROM queued_messages")).scalar_one()
        assert [(r.attempt, r.source, r.outcome) for r in rows] == [(0, "bounce", "bounced"), (1, "attempt", None)]
        assert not any(r.hard_bounce for r in rows)
        assert domain_ips in ("[]", [])
        assert tries == 0
    finally:
        engine.dispose()


def test_migration_matches_the_models(engine: Engine) -> None:
    """Autogenerate finds nothing to do: the hand-written migration and the models agree."""
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert differences == []


def test_upgrade_twice_is_harmless(db_url: str, engine: Engine) -> None:
    with session_factory(engine).begin() as session:
        create_domain(session, "example.com")
    upgrade_database(db_url)
    with session_factory(engine)() as session:
        assert [d.name for d in list_domains(session)] == ["example.com"]


def test_sqlite_pragmas_are_really_set(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/durable.db")
    try:
        with engine.connect() as first, engine.connect() as second:  # two pooled connections, each configured
            for connection in (first, second):
                assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
                assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        engine.dispose()
    assert (tmp_path / "durable.db").exists()


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/fk.db")
    upgrade_database(engine)
    with session_factory(engine)() as session:
        session.add(DeliveryLog(message_id="0" * 32, recipient="x@example.net", attempt=1))
        with pytest.raises(IntegrityError):
            session.flush()
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "wording"),
    [
        ("mysql://root@localhost/x", "unsupported database"),
        ("postgresql+psycopg2://postgres@127.0.0.1/test", "psycopg"),
        ("not a url", "not a database URL"),
    ],
)
def test_engine_refuses_other_backends(url: str, wording: str) -> None:
    with pytest.raises(DatabaseURLError, match=wording):
        create_engine(url)


def test_plain_postgresql_url_uses_psycopg() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1/test")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


def test_engine_needs_the_sqlite_directory(tmp_path: Path) -> None:
    with pytest.raises(DatabaseURLError, match="does not exist"):
        create_engine(f"sqlite:///{tmp_path}/missing/coldrelay.db")


# --- domains and DKIM keys ---------------------------------------------------------------------


def test_create_domain_with_rsa_dkim_key(session: Session) -> None:
    domain = create_domain(session, "  Example.COM. ")
    session.commit()
    assert domain.name == "example.com"
    assert domain.created_at.tzinfo is not None
    [key] = domain.dkim_keys
    assert key.selector == "s1"
    assert key.algorithm is DkimAlgorithm.RSA
    assert key.active
    private = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    public_der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode(key.public_key_b64) == public_der
    assert key.dns_name == "s1._domainkey.example.com"
    assert key.txt_value == f"v=DKIM1; k=rsa; p={key.public_key_b64}"


def test_create_domain_with_configured_selector(session: Session) -> None:
    domain = create_domain(session, "example.org", selector="mail2025")
    assert domain.dkim_keys[0].selector == "mail2025"
    with pytest.raises(InvalidName, match="selector"):
        create_domain(session, "example.net", selector="bad selector")


def test_international_domain_is_stored_as_a_labels(session: Session) -> None:
    assert create_domain(session, "Bücher.example").name == "xn--bcher-kva.example"


def test_duplicate_domain_in_any_spelling(session: Session) -> None:
    create_domain(session, "example.com")
    session.commit()
    for spelling in ("example.com", "EXAMPLE.com", "example.com."):
        with pytest.raises(AlreadyExists, match="already hosted"):
            create_domain(session, spelling)
    assert len(list_domains(session)) == 1


def test_unique_constraint_backs_the_duplicate_check(engine: Engine) -> None:
    """Two writers racing past the pre-check: the database still keeps one row, and the loser gets AlreadyExists."""
    factory = session_factory(engine)
    with factory.begin() as session:
        create_domain(session, "race.example")
    with factory() as session:
        session.add(Domain(name="race.example"))
        with pytest.raises(IntegrityError):
            session.flush()


@pytest.mark.parametrize(
    "name", ["", "com", "exa mple.com", "-example.com", "example-.com", "exa_mple.com", "192.0.2.1", "a" * 64 + ".com", "a..com"]
)
def test_invalid_domain_names(session: Session, name: str) -> None:
    with pytest.raises(InvalidName):
        create_domain(session, name)


def test_ed25519_key_shape() -> None:
    private_pem, public_b64 = generate_dkim_key(DkimAlgorithm.ED25519)
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert len(base64.b64decode(public_b64)) == 32  # RFC 8463: the raw key, not SubjectPublicKeyInfo


def test_txt_strings_split_at_255() -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 392
    parts = txt_strings(value)
    assert [len(p) for p in parts] == [255, 155]
    assert "".join(parts) == value


# --- mailboxes and passwords ----------------------------------------------------------------------


def test_create_mailbox(session: Session) -> None:
    domain = create_domain(session, "example.com")
    mailbox = create_mailbox(session, "Anna.Berg@Example.com", PASSWORD, display_name=" Anna Berg ", daily_cap=20)
    session.commit()
    assert mailbox.address == "anna.berg@example.com"
    assert mailbox.domain is domain
    assert mailbox.display_name == "Anna Berg"
    assert mailbox.daily_cap == 20
    assert mailbox.enabled
    assert mailbox.password_hash.startswith("$argon2id$")
    assert PASSWORD not in mailbox.password_hash
    stored = session.scalars(select(Mailbox)).one()
    assert stored.address == "anna.berg@example.com"
    assert [m.address for m in list_mailboxes(session, "example.com")] == ["anna.berg@example.com"]


def test_mailbox_defaults(session: Session) -> None:
    create_domain(session, "example.com")
    mailbox = create_mailbox(session, "bob@example.com", PASSWORD)
    assert mailbox.display_name is None
    assert mailbox.daily_cap is None  # the configured limits.daily_cap applies


def test_mailbox_needs_a_hosted_domain(session: Session) -> None:
    create_domain(session, "example.com")
    with pytest.raises(UnknownDomain, match=r"coldrelay domain add elsewhere\.example"):
        create_mailbox(session, "anna@elsewhere.example", PASSWORD)
    with pytest.raises(UnknownDomain):
        create_mailbox(session, "anna@sub.example.com", PASSWORD)


def test_duplicate_mailbox(session: Session) -> None:
    create_domain(session, "example.com")
    create_mailbox(session, "anna@example.com", PASSWORD)
    session.commit()
    with pytest.raises(AlreadyExists, match="already exists"):
        create_mailbox(session, "ANNA@example.com", PASSWORD)


@pytest.mark.parametrize(
    "address",
    [
        "anna",
        "anna@",
        "@example.com",
        "anna@@example.com",
        "an na@example.com",
        "anna..berg@example.com",
        "an%na@example.com",  # percent hack
        "other!anna@example.com",  # bang path
        '"anna"@example.com',  # quoted local part
        "anna@[192.0.2.1]",  # address literal
        "anna+tag@example.com",  # + is kept for subaddressing
        ".anna@example.com",
        "anna-@example.com",
    ],
)
def test_invalid_mailbox_addresses(session: Session, address: str) -> None:
    create_domain(session, "example.com")
    with pytest.raises(InvalidName):
        create_mailbox(session, address, PASSWORD)


def test_weak_password_and_negative_cap(session: Session) -> None:
    create_domain(session, "example.com")
    with pytest.raises(AccountError, match="at least 8"):
        create_mailbox(session, "anna@example.com", "short")
    with pytest.raises(AccountError, match="daily cap"):
        create_mailbox(session, "anna@example.com", PASSWORD, daily_cap=-1)


def test_verify_password(session: Session) -> None:
    create_domain(session, "example.com")
    created = create_mailbox(session, "anna@example.com", PASSWORD)
    session.commit()
    assert verify_password(session, "anna@example.com", PASSWORD) is created
    assert verify_password(session, "Anna@EXAMPLE.com", PASSWORD) is created
    assert verify_password(session, "anna@example.com", PASSWORD + "x") is None
    assert verify_password(session, "anna@example.com", "") is None
    assert verify_password(session, "nobody@example.com", PASSWORD) is None
    assert verify_password(session, "not an address", PASSWORD) is None


def test_disabled_mailbox_cannot_log_in(session: Session) -> None:
    create_domain(session, "example.com")
    mailbox = create_mailbox(session, "anna@example.com", PASSWORD)
    mailbox.enabled = False
    session.commit()
    assert verify_password(session, "anna@example.com", PASSWORD) is None


def test_old_hash_parameters_are_upgraded_on_login(session: Session) -> None:
    create_domain(session, "example.com")
    mailbox = create_mailbox(session, "anna@example.com", PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    mailbox.password_hash = weak
    session.commit()
    assert verify_password(session, "anna@example.com", PASSWORD) is mailbox
    session.commit()
    assert mailbox.password_hash != weak
    assert verify_password(session, "anna@example.com", PASSWORD) is mailbox


def test_normalize_address_keeps_international_domains_as_a_labels() -> None:
    assert normalize_address("Anna@Bücher.example") == "anna@xn--bcher-kva.example"


# --- the queue and the delivery log ----------------------------------------------------------------


def test_queued_message_round_trip(session: Session) -> None:
    message = QueuedMessage(
        sender="anna@example.com", recipients=["a@example.net", "b@example.org"], message_blob=b"Subject: x\r\n\r\nhi\r\n"
    )
    session.add(message)
    session.commit()
    session.expire_all()
    stored = session.get(QueuedMessage, message.id)
    assert stored is not None
    assert len(stored.id) == 32
    assert stored.recipients == ["a@example.net", "b@example.org"]
    assert stored.message_blob == b"Subject: x\r\n\r\nhi\r\n"
    assert stored.state is MessageState.QUEUED
    assert stored.attempts == 0
    assert stored.lease_owner is None
    assert stored.next_attempt_at.tzinfo is UTC
    assert stored.next_attempt_at <= utcnow()


def test_queue_lease_and_due_query(session: Session) -> None:
    now = utcnow()
    due = QueuedMessage(sender="", recipients=["x@example.net"], message_path="/spool/due")
    later = QueuedMessage(
        sender="",
        recipients=["y@example.net"],
        message_path="/spool/later",
        state=MessageState.DEFERRED,
        next_attempt_at=now + timedelta(hours=1),
    )
    session.add_all([due, later])
    session.commit()
    ready = session.scalars(
        select(QueuedMessage).where(
            QueuedMessage.state.in_([MessageState.QUEUED, MessageState.DEFERRED]), QueuedMessage.next_attempt_at <= utcnow()
        )
    ).all()
    assert [m.message_path for m in ready] == ["/spool/due"]
    due.state, due.lease_owner, due.lease_expires_at = MessageState.LEASED, "worker-1", now + timedelta(minutes=5)
    session.commit()
    session.expire_all()
    assert (
        session.scalars(select(QueuedMessage.state).where(QueuedMessage.lease_owner == "worker-1")).one() is MessageState.LEASED
    )
    assert due.lease_expires_at is not None and due.lease_expires_at.tzinfo is UTC


def test_queue_refuses_a_message_without_content(session: Session) -> None:
    session.add(QueuedMessage(sender="anna@example.com", recipients=["x@example.net"]))
    with pytest.raises(IntegrityError):
        session.flush()


def test_naive_times_are_refused(session: Session) -> None:
    session.add(QueuedMessage(sender="", recipients=["x@example.net"], message_path="/p", next_attempt_at=datetime(2030, 1, 1)))
    with pytest.raises(Exception, match="naive datetime"):
        session.flush()


def test_delivery_log_belongs_to_its_message(session: Session) -> None:
    message = QueuedMessage(sender="anna@example.com", recipients=["x@example.net"], message_path="/spool/m1")
    message.deliveries.append(
        DeliveryLog(
            recipient="x@example.net",
            remote_host="mx.example.net",
            reply_code=550,
            enhanced_code="5.1.1",
            reply_text="User unknown",
            reason="userunknown",
            provider="google",
            article="google-550-5-1-1",
            tls_version="TLSv1.3",
            attempt=1,
        )
    )
    session.add(message)
    session.commit()
    [entry] = session.scalars(select(DeliveryLog)).all()
    assert entry.message is message
    assert entry.at.tzinfo is UTC
    assert (entry.reply_code, entry.enhanced_code, entry.reason) == (550, "5.1.1", "userunknown")
    session.execute(QueuedMessage.__table__.delete())
    session.commit()
    assert session.scalars(select(DeliveryLog)).all() == [], "the log goes with its message (ON DELETE CASCADE)"
