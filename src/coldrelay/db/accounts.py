"""Hosted domains and their mailboxes: creating them safely and checking a mailbox's password.

These functions add to the caller's session and flush (so ids exist and unique clashes show
up here), but never commit: the caller owns the transaction, so a CLI command or a web request
either makes all of its changes or none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import idna
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from coldrelay.db.dkim_keys import generate_dkim_key
from coldrelay.db.models import DkimAlgorithm, DkimKey, Domain, Mailbox

MIN_PASSWORD_LENGTH = 8  # submission passwords travel over SMTP AUTH and are guessed by bots; refuse the trivial

# argon2id with argon2-cffi's defaults (RFC 9106's second recommended setting); one hasher, so
# every hash has the same parameters and check_needs_rehash can upgrade old ones after a change.
_hasher = PasswordHasher()
# Verified when the address is unknown, so "no such mailbox" takes as long as "wrong password".
_DUMMY_HASH = _hasher.hash("coldrelay timing equaliser")

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL_PART = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")


class AccountError(ValueError):
    """A domain or mailbox request that cannot be done; the message is meant for the person."""


class InvalidName(AccountError):
    """A domain name or address that is not valid, or not allowed for a hosted mailbox."""


class AlreadyExists(AccountError):
    """The domain or mailbox is already there."""


class UnknownDomain(AccountError):
    """A mailbox was asked for at a domain this host does not serve."""


def normalize_domain(name: str) -> str:
    """The stored form of a domain: lower-case A-labels, no trailing dot; raises ``InvalidName``.

    International names are kept as A-labels (``xn--...``) because that is what SMTP, DNS and
    DKIM compare; a hosted domain needs at least two labels and a non-numeric top-level label.
    """
    text = name.strip().rstrip(".")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii").lower() if text else ""
    except idna.IDNAError as exc:
        raise InvalidName(f"{name!r} is not a valid domain name: {exc}") from None
    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidName(f"{name!r} is not a valid domain name: use letters, digits and hyphens, like example.com")
    if len(ascii_name) > 253:
        raise InvalidName(f"{name!r} is longer than the 253 characters a domain name may have")
    if labels[-1].isdigit():
        raise InvalidName(f"{name!r} looks like an IP address; a hosted domain must be a name")
    return ascii_name


def normalize_address(address: str) -> str:
    """The stored form of a mailbox address (lower case, A-label domain); raises ``InvalidName``.

    Syntax comes from email-validator; on top of that a hosted mailbox's local part is limited
    to letters, digits, dot, hyphen and underscore: no ``+`` (kept for subaddressing), and none of
    the ``%``, ``!``, quotes or routes that relay tricks hide behind. Lower case, because two
    mailboxes that differ only in case would receive each other's mail at most providers.
    """
    try:
        valid = validate_email(address.strip(), check_deliverability=False, test_environment=True, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidName(f"{address!r} is not a valid email address: {exc}") from None
    local = valid.local_part.lower()
    if not _LOCAL_PART.match(local) or ".." in local:
        raise InvalidName(
            f"{address!r}: a mailbox name may only use letters, digits, '.', '-' and '_', "
            "and must start and end with a letter or digit"
        )
    return f"{local}@{normalize_domain(valid.ascii_domain)}"


def get_domain(session: Session, name: str) -> Domain | None:
    """The hosted domain of that name, in any spelling (case, trailing dot, U-labels)."""
    return session.scalars(select(Domain).where(Domain.name == normalize_domain(name))).one_or_none()


def create_domain(session: Session, name: str, selector: str = "s1", algorithm: DkimAlgorithm = DkimAlgorithm.RSA) -> Domain:
    """Add a hosted domain with a fresh active DKIM key under ``selector``.

    The key is made here, not on first send, so the DNS record can be published (and have
    propagated) before any mail is signed with it.
    """
    normalized = normalize_domain(name)
    if not _LABEL.match(selector):
        raise InvalidName(f"{selector!r} is not a valid DKIM selector: use one label of letters, digits and hyphens")
    if session.scalars(select(Domain.id).where(Domain.name == normalized)).first() is not None:
        raise AlreadyExists(f"The domain {normalized} is already hosted here.")
    private_pem, public_b64 = generate_dkim_key(algorithm)
    domain = Domain(name=normalized)
    domain.dkim_keys.append(
        DkimKey(selector=selector, algorithm=algorithm, private_key_pem=private_pem, public_key_b64=public_b64, active=True)
    )
    session.add(domain)
    _flush_or_exists(session, f"The domain {normalized} is already hosted here.")
    return domain


def create_mailbox(
    session: Session,
    address: str,
    password: str,
    display_name: str | None = None,
    daily_cap: int | None = None,
) -> Mailbox:
    """Add a mailbox at an existing hosted domain, storing only an argon2id hash of its password."""
    normalized = normalize_address(address)
    domain = get_domain(session, normalized.rpartition("@")[2])
    if domain is None:
        raise UnknownDomain(
            f"The domain {normalized.rpartition('@')[2]} is not hosted here; add it first with: "
            f"coldrelay domain add {normalized.rpartition('@')[2]}"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if daily_cap is not None and daily_cap < 0:
        raise AccountError("The daily cap must be 0 or more messages.")
    if session.scalars(select(Mailbox.id).where(Mailbox.address == normalized)).first() is not None:
        raise AlreadyExists(f"The mailbox {normalized} already exists.")
    mailbox = Mailbox(
        address=normalized,
        domain=domain,
        display_name=(display_name or "").strip() or None,
        password_hash=_hasher.hash(password),
        daily_cap=daily_cap,
        enabled=True,
    )
    session.add(mailbox)
    _flush_or_exists(session, f"The mailbox {normalized} already exists.")
    return mailbox


def verify_password(session: Session, address: str, password: str) -> Mailbox | None:
    """The enabled mailbox whose password this is, else ``None`` (for SMTP AUTH).

    Unknown, malformed and disabled addresses cost one argon2 verification like a wrong password,
    so response times do not reveal which mailboxes exist. A hash made with older parameters is
    replaced in the session (the caller's commit stores it).
    """
    try:
        normalized = normalize_address(address)
    except InvalidName:
        normalized = None
    mailbox = None
    if normalized is not None:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.address == normalized)).one_or_none()
    try:
        _hasher.verify(mailbox.password_hash if mailbox is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if mailbox is None or not mailbox.enabled:
        return None
    if _hasher.check_needs_rehash(mailbox.password_hash):
        mailbox.password_hash = _hasher.hash(password)
    return mailbox


def list_domains(session: Session) -> Sequence[Domain]:
    """Every hosted domain, by name, with its DKIM keys and mailboxes loaded."""
    query = select(Domain).options(selectinload(Domain.dkim_keys), selectinload(Domain.mailboxes)).order_by(Domain.name)
    return session.scalars(query).all()


def list_mailboxes(session: Session, domain: str | None = None) -> Sequence[Mailbox]:
    """Every mailbox by address, or only those of one domain."""
    query = select(Mailbox).order_by(Mailbox.address)
    if domain is not None:
        query = query.join(Domain).where(Domain.name == normalize_domain(domain))
    return session.scalars(query).all()


def _flush_or_exists(session: Session, message: str) -> None:
    """Flush, turning a unique-constraint clash (another writer won the race) into ``AlreadyExists``.

    A failed flush leaves the session's transaction unusable, so it is rolled back here: the
    caller gets a clean session and the error, never a half-written domain.
    """
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise AlreadyExists(message) from None
