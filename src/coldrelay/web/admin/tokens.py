"""Browser sessions and API tokens: random secrets of which only the SHA-256 is stored.

A database leak then gives nothing that logs in. SHA-256 (not argon2) is right here because the
secrets are 32 random bytes, not guessable passwords, and every request looks one up.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from coldrelay.db import AccountError, utcnow
from coldrelay.db.models import AdminSession, AdminUser, ApiToken

TOKEN_BYTES = 32
API_TOKEN_PREFIX = "crt_"  # lets secret scanners and people recognise a leaked coldrelay token


def new_secret() -> str:
    """32 random bytes, URL-safe base64 (fits a cookie and a header unquoted)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the database keeps of a session or API token: the SHA-256, lower-case hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A logged-in session as a request sees it."""

    user_id: int
    username: str
    csrf_token: str


def start_session(session: Session, user: AdminUser, lifetime: float) -> tuple[str, AdminSession]:
    """A new session for ``user`` lasting ``lifetime`` seconds; returns the cookie value and the row.

    Sessions that expired without a logout are deleted here, so the table does not grow with every
    browser that was simply closed.
    """
    token = new_secret()
    now = utcnow()
    session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
    row = AdminSession(
        token_hash=token_hash(token),
        user_id=user.id,
        csrf_token=new_secret(),
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
    )
    session.add(row)
    session.flush()
    return token, row


def find_session(session: Session, token: str) -> SessionInfo | None:
    """The live session of this cookie value; an expired one is deleted here and not returned."""
    row = session.get(AdminSession, token_hash(token))
    if row is None:
        return None
    if row.expires_at <= utcnow():
        session.delete(row)
        return None
    user = session.get(AdminUser, row.user_id)
    if user is None:
        return None
    return SessionInfo(user.id, user.username, row.csrf_token)


def end_session(session: Session, token: str) -> None:
    """Log out: the session's row is deleted, so the cookie is worthless even if kept."""
    session.execute(delete(AdminSession).where(AdminSession.token_hash == token_hash(token)))


def end_sessions(session: Session, user_id: int) -> int:
    """Delete every session of a user (after a password change); returns how many there were."""
    result = session.execute(delete(AdminSession).where(AdminSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def create_api_token(session: Session, user: AdminUser, name: str) -> tuple[str, ApiToken]:
    """A new API token for ``user``; returns the token (show it once, it is not stored) and the row."""
    label = name.strip()
    if not label or len(label) > 200:
        raise AccountError("An API token needs a name of 1 to 200 characters (what will use it, e.g. 'reporting').")
    token = API_TOKEN_PREFIX + new_secret()
    row = ApiToken(user_id=user.id, name=label, token_hash=token_hash(token))
    session.add(row)
    session.flush()
    return token, row


def find_api_token(session: Session, token: str) -> SessionInfo | None:
    """The user of this bearer token, marking the token used now; ``None`` for an unknown token.

    The returned ``csrf_token`` is empty: a bearer request carries no cookie and needs none.
    """
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).one_or_none()
    if row is None:
        return None
    user = session.get(AdminUser, row.user_id)
    if user is None:
        return None
    row.last_used_at = utcnow()
    return SessionInfo(user.id, user.username, "")


def list_api_tokens(session: Session, user_id: int | None = None) -> list[ApiToken]:
    """Tokens by creation time, all users' or one user's."""
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def revoke_api_token(session: Session, token_id: int) -> bool:
    """Delete a token; ``False`` when there was none with that id."""
    row = session.get(ApiToken, token_id)
    if row is None:
        return False
    session.delete(row)
    return True
