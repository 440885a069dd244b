"""Hosted domains and their mailboxes: creating them safely and checking a mailbox's password.

These functions add to the caller's session and flush (so ids exist and unique clashes show
up here), but never commit: the caller owns the transaction, so a CLI command or a web request
either makes all of its changes or none.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import idna
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from coldrelay.db.dkim_keys import generate_dkim_key
from coldrelay.db.models import DkimAlgorithm, DkimKey, Domain, Mailbox, MessageState, QueuedMessage

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


def create_domain(
    session: Session,
    name: str,
    selector: str = "s1",
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA,
    *,
    ips: Sequence[str] = (),
    ed25519_selector: str | None = None,
) -> Domain:
    """Add a hosted domain with a fresh active DKIM key under ``selector``.

    The key is made here, not on first send, so the DNS record can be published (and have
    propagated) before any mail is signed with it. ``ips`` are the mail host's sending addresses
    (validated, stored canonical); ``ed25519_selector`` adds a second, Ed25519 key for dual signing.
    """
    normalized = normalize_domain(name)
    selectors = [selector] if ed25519_selector is None else [selector, ed25519_selector]
    for label in selectors:
        if not _LABEL.match(label):
            raise InvalidName(f"{label!r} is not a valid DKIM selector: use one label of letters, digits and hyphens")
    if len(set(selectors)) != len(selectors):
        raise InvalidName(f"the two DKIM keys need different selectors, both are {selector!r}")
    addresses: list[str] = []
    for raw in ips:
        try:
            address = str(ipaddress.ip_address(raw.strip()))
        except ValueError:
            raise InvalidName(f"{raw!r} is not an IPv4 or IPv6 address") from None
        if address not in addresses:
            addresses.append(address)
    if session.scalars(select(Domain.id).where(Domain.name == normalized)).first() is not None:
        raise AlreadyExists(f"The domain {normalized} is already hosted here.")
    domain = Domain(name=normalized, ips=addresses)
    keys = [(selector, algorithm)] + ([(ed25519_selector, DkimAlgorithm.ED25519)] if ed25519_selector is not None else [])
    for key_selector, key_algorithm in keys:
        private_pem, public_b64 = generate_dkim_key(key_algorithm)
        domain.dkim_keys.append(
            DkimKey(
                selector=key_selector,
                algorithm=key_algorithm,
                private_key_pem=private_pem,
                public_key_b64=public_b64,
                active=True,
            )
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


# --- Added for bulk provisioning and mailbox upkeep (coldrelay mailbox bulk|passwd|disable|enable|remove). ---


class UnknownMailbox(AccountError):
    """The address is not one of the hosted mailboxes."""


class MailboxBusy(AccountError):
    """The mailbox still has messages in the queue, so it cannot be removed yet."""


def check_password(password: str) -> None:
    """Raise ``AccountError`` for a password the submission service must not accept (too short)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")


def hash_password(password: str) -> str:
    """The argon2id hash stored for ``password``, with the same parameters ``create_mailbox`` uses.

    Safe to call from several threads at once: argon2-cffi releases the GIL while it hashes, which
    is what lets a bulk run hash a hundred passwords on all cores instead of one after another.
    """
    check_password(password)
    return _hasher.hash(password)


def get_mailbox(session: Session, address: str) -> Mailbox | None:
    """The mailbox with that address, in any spelling; ``None`` when there is none. Raises ``InvalidName``."""
    return session.scalars(select(Mailbox).where(Mailbox.address == normalize_address(address))).one_or_none()


def existing_addresses(session: Session, addresses: Sequence[str]) -> set[str]:
    """Which of these stored-form addresses are mailboxes already (one query per 500, not one per address)."""
    found: set[str] = set()
    for start in range(0, len(addresses), 500):
        chunk = list(addresses[start : start + 500])
        found.update(session.scalars(select(Mailbox.address).where(Mailbox.address.in_(chunk))))
    return found


def create_mailbox_with_hash(
    session: Session,
    address: str,
    password_hash: str,
    display_name: str | None = None,
    daily_cap: int | None = None,
) -> Mailbox:
    """``create_mailbox`` for a password hashed beforehand with ``hash_password`` (bulk creation).

    Hashing is the slow part of adding a mailbox (argon2id is slow on purpose), so bulk callers
    hash in a thread pool first and then add the rows here, in one transaction, on one thread.
    """
    normalized = normalize_address(address)
    domain_name = normalized.rpartition("@")[2]
    domain = get_domain(session, domain_name)
    if domain is None:
        raise UnknownDomain(f"The domain {domain_name} is not hosted here; add it first with: coldrelay domain add {domain_name}")
    if daily_cap is not None and daily_cap < 0:
        raise AccountError("The daily cap must be 0 or more messages.")
    if not password_hash.startswith("$argon2id$"):
        raise AccountError("The password hash must be an argon2id hash made by hash_password().")
    if session.scalars(select(Mailbox.id).where(Mailbox.address == normalized)).first() is not None:
        raise AlreadyExists(f"The mailbox {normalized} already exists.")
    mailbox = Mailbox(
        address=normalized,
        domain=domain,
        display_name=(display_name or "").strip() or None,
        password_hash=password_hash,
        daily_cap=daily_cap,
        enabled=True,
    )
    session.add(mailbox)
    _flush_or_exists(session, f"The mailbox {normalized} already exists.")
    return mailbox


def set_password(session: Session, address: str, password: str) -> Mailbox:
    """Replace a mailbox's password (the old one stops working at the caller's commit)."""
    mailbox = _existing_mailbox(session, address)
    mailbox.password_hash = hash_password(password)
    session.flush()
    return mailbox


def set_mailbox_enabled(session: Session, address: str, enabled: bool) -> Mailbox:
    """Enable or disable a mailbox.

    A disabled mailbox keeps its row, password and Maildir, but ``verify_password`` refuses its
    login and the MX refuses mail to it, so a sending platform stops using it at once.
    """
    mailbox = _existing_mailbox(session, address)
    mailbox.enabled = enabled
    session.flush()
    return mailbox


def pending_messages(session: Session, address: str) -> int:
    """How many queued messages sent by ``address`` are not final yet (queued, leased or deferred)."""
    open_states = (MessageState.QUEUED, MessageState.LEASED, MessageState.DEFERRED)
    query = (
        select(func.count())
        .select_from(QueuedMessage)
        .where(QueuedMessage.sender == normalize_address(address), QueuedMessage.state.in_(open_states))
    )
    return int(session.scalar(query) or 0)


def remove_mailbox(session: Session, address: str) -> Mailbox:
    """Delete a mailbox's row; refuses (``MailboxBusy``) while messages it sent are still in the queue.

    Why refuse: the bounces and delay notices for those messages come back to this address, and
    once the row is gone the MX answers them "user unknown", so their outcome never reaches the
    delivery log or the reputation guard. Disable the mailbox, let the queue finish, then remove it.
    The delivery log keeps its rows (they name the sender as text, not as a link to the mailbox).
    """
    mailbox = _existing_mailbox(session, address)
    waiting = pending_messages(session, mailbox.address)
    if waiting:
        raise MailboxBusy(
            f"{mailbox.address} still has {waiting} message{'s' if waiting != 1 else ''} in the queue; "
            f"disable it now (coldrelay mailbox disable {mailbox.address}) and remove it once they are delivered or bounced."
        )
    session.delete(mailbox)
    session.flush()
    return mailbox


def _existing_mailbox(session: Session, address: str) -> Mailbox:
    mailbox = get_mailbox(session, address)
    if mailbox is None:
        raise UnknownMailbox(f"There is no mailbox {normalize_address(address)}; see: coldrelay mailbox list")
    return mailbox
