"""Admin users: creating them, changing their password and checking a login.

Like ``coldrelay.db.accounts``, these functions add to the caller's session and flush but never
commit: the caller owns the transaction. Passwords are hashed with argon2id using argon2-cffi's
defaults (the same parameters as mailbox passwords).
"""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coldrelay.db import AccountError, AlreadyExists, InvalidName, utcnow
from coldrelay.db.models import AdminUser

MIN_ADMIN_PASSWORD_LENGTH = 12  # the dashboard can create mailboxes and read every log: more than a mailbox's 8
GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters, ~144 bits

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")

_hasher = PasswordHasher()
# Verified for unknown usernames, so "no such user" costs the same argon2 work as "wrong password".
_DUMMY_HASH = _hasher.hash("coldrelay admin timing equaliser")


class UnknownAdmin(AccountError):
    """No admin user has that name."""


def generate_password() -> str:
    """A random password for an admin who did not choose one (shown once by the CLI)."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def normalize_username(username: str) -> str:
    """Usernames are compared case-insensitively and stored in lower case; raises ``InvalidName``."""
    name = username.strip()
    if not _USERNAME.match(name):
        raise InvalidName(
            f"{username!r} is not a valid admin username: use 1-200 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    return name.lower()


def _check_password(password: str) -> None:
    if len(password) < MIN_ADMIN_PASSWORD_LENGTH:
        raise AccountError(f"An admin password must have at least {MIN_ADMIN_PASSWORD_LENGTH} characters.")


def get_admin(session: Session, username: str) -> AdminUser | None:
    """The admin of that name (any case), or ``None``; a malformed name is simply not found."""
    try:
        name = normalize_username(username)
    except InvalidName:
        return None
    return session.scalars(select(AdminUser).where(AdminUser.username == name)).one_or_none()


def create_admin(session: Session, username: str, password: str) -> AdminUser:
    """Add an admin user; raises ``InvalidName``, ``AlreadyExists`` or ``AccountError`` (short password)."""
    name = normalize_username(username)
    _check_password(password)
    if session.scalars(select(AdminUser.id).where(AdminUser.username == name)).first() is not None:
        raise AlreadyExists(f"The admin user {name} already exists.")
    user = AdminUser(username=name, password_hash=_hasher.hash(password))
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise AlreadyExists(f"The admin user {name} already exists.") from None
    return user


def set_admin_password(session: Session, username: str, password: str) -> AdminUser:
    """Replace an admin's password; raises ``UnknownAdmin`` or ``AccountError``.

    The caller should also end the user's sessions (``tokens.end_sessions``): a changed password
    is often a response to a leaked one.
    """
    _check_password(password)
    user = get_admin(session, username)
    if user is None:
        raise UnknownAdmin(f"There is no admin user {username.strip()!r}.")
    user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def authenticate_admin(session: Session, username: str, password: str) -> AdminUser | None:
    """The admin whose password this is, else ``None``; unknown names cost one argon2 verification too.

    A hash made with older parameters is replaced in the session (the caller's commit stores it).
    """
    user = get_admin(session, username)
    try:
        _hasher.verify(user.password_hash if user is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    return user


def count_admins(session: Session) -> int:
    """How many admin users exist (the CLI says how to make the first one when there are none)."""
    return int(session.scalar(select(func.count()).select_from(AdminUser)) or 0)
