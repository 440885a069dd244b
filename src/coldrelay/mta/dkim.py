"""DKIM signing of submitted mail with the sender domain's active key (dkimpy, relaxed/relaxed).

``DkimSigner.sign(message, domain)`` returns the message with a ``DKIM-Signature`` header field
prepended. The key is the domain's newest *active* RSA key from ``coldrelay.db``; keys are cached
for ``cache_seconds`` so a busy mailbox does not query the database per message, and a rotation is
picked up within that time. Ed25519 keys are skipped: dkimpy signs them only with PyNaCl, which is
not a dependency, and receivers that do not know ed25519 need the RSA signature anyway.

Signed header fields: those of ``SIGNED_HEADERS`` the message has, in the message's order, plus one
more entry for each of ``OVERSIGNED`` ("oversigning", RFC 6376 8.15), so that nobody down the line
can add a second From, Subject, To... without breaking the signature.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import dkim
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldrelay.db.models import DkimAlgorithm, DkimKey, Domain

DEFAULT_CACHE_SECONDS = 60.0
CANONICALIZATION = (b"relaxed", b"relaxed")
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
OVERSIGNED: tuple[bytes, ...] = (b"from", b"reply-to", b"to", b"cc", b"subject", b"date", b"message-id")

_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


class SigningError(Exception):
    """The message cannot be signed (no active key for the domain, a broken key, a broken message)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """What dkimpy needs of a domain's key."""

    domain: str
    selector: str
    private_key_pem: str


def signed_header_names(message: bytes) -> list[bytes]:
    """The ``h=`` list for ``message``: present header fields to sign, then the oversigned names."""
    header_block = message.split(b"\r\n\r\n", 1)[0]
    present = []
    for line in header_block.split(b"\r\n"):
        match = _FIELD_NAME.match(line)
        if match is not None and match.group(1).lower() in SIGNED_HEADERS:
            present.append(match.group(1).lower())
    return present + list(OVERSIGNED)


def sign_with(key: SigningKey, message: bytes) -> bytes:
    """``message`` with a DKIM-Signature by ``key`` prepended (blocking: RSA in pure Python takes milliseconds)."""
    try:
        signature = dkim.sign(
            message,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            key.private_key_pem.encode("ascii"),
            canonicalize=CANONICALIZATION,
            include_headers=signed_header_names(message),
        )
    except dkim.DKIMException as exc:
        raise SigningError(f"DKIM signing for {key.domain} failed: {exc}") from exc
    return bytes(signature) + message


class DkimSigner:
    """Signs with each domain's active key from the database (the submission pipeline's signing step)."""

    def __init__(self, sessions: sessionmaker[Session], *, cache_seconds: float = DEFAULT_CACHE_SECONDS) -> None:
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, SigningKey | None]] = {}

    async def sign(self, message: bytes, domain: str) -> bytes:
        """``message`` signed for ``domain``; raises ``SigningError`` when that cannot be done."""
        key = await self.key_for(domain.lower())
        if key is None:
            raise SigningError(f"the domain {domain} has no active RSA DKIM key")
        return await asyncio.to_thread(sign_with, key, message)

    async def key_for(self, domain: str) -> SigningKey | None:
        now = time.monotonic()
        cached = self._cache.get(domain)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        key = await asyncio.to_thread(self._load, domain)
        self._cache[domain] = (now, key)
        return key

    def _load(self, domain: str) -> SigningKey | None:
        query = (
            select(DkimKey.selector, DkimKey.private_key_pem)
            .join(Domain)
            .where(Domain.name == domain, DkimKey.active.is_(True), DkimKey.algorithm == DkimAlgorithm.RSA)
            .order_by(DkimKey.created_at.desc(), DkimKey.id.desc())
            .limit(1)
        )
        with self._sessions() as session:
            row = session.execute(query).first()
        return None if row is None else SigningKey(domain, row.selector, row.private_key_pem)
