"""DKIM signing of submitted mail with the sender domain's active key (dkimpy, relaxed/relaxed).

``DkimSigner.sign(message, domain)`` returns the message with ``DKIM-Signature`` header fields
prepended: one by the domain's newest *active* RSA key from ``coldrelay.db`` (required: every
receiver verifies RSA), and a second by its newest active Ed25519 key when the domain has one
(RFC 8463 asks signers to add Ed25519 beside RSA, not instead of it; receivers that do not know it
ignore that signature). Keys are cached for ``cache_seconds`` so a busy mailbox does not query the
database per message, and a rotation is picked up within that time.

Signed header fields: those of ``SIGNED_HEADERS`` the message has, in the message's order, plus one
more entry for each of ``OVERSIGNED`` ("oversigning", RFC 6376 8.15), so that nobody down the line
can add a second From, Subject, To... without breaking the signature.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
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
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA

    def dkimpy_key(self) -> tuple[bytes, bytes]:
        """(private key in the form dkimpy takes, its a= algorithm): PEM for RSA, the base64 seed for Ed25519."""
        if self.algorithm is DkimAlgorithm.RSA:
            return self.private_key_pem.encode("ascii"), b"rsa-sha256"
        key = serialization.load_pem_private_key(self.private_key_pem.encode("ascii"), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise SigningError(f"the Ed25519 DKIM key of {self.domain} ({self.selector}) is not an Ed25519 key")
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        return base64.b64encode(seed), b"ed25519-sha256"


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
        private_key, algorithm = key.dkimpy_key()
        signature = dkim.sign(
            message,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            private_key,
            canonicalize=CANONICALIZATION,
            include_headers=signed_header_names(message),
            signature_algorithm=algorithm,
        )
    except dkim.DKIMException as exc:
        raise SigningError(f"DKIM signing for {key.domain} failed: {exc}") from exc
    return bytes(signature) + message


class DkimSigner:
    """Signs with each domain's active key from the database (the submission pipeline's signing step)."""

    def __init__(self, sessions: sessionmaker[Session], *, cache_seconds: float = DEFAULT_CACHE_SECONDS) -> None:
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, list[SigningKey]]] = {}

    async def sign(self, message: bytes, domain: str) -> bytes:
        """``message`` signed for ``domain`` (RSA, then Ed25519 if the domain has one); ``SigningError`` when
        there is no RSA key, so no message leaves with only a signature many receivers cannot check."""
        keys = await self.keys_for(domain.lower())
        if not keys or keys[0].algorithm is not DkimAlgorithm.RSA:
            raise SigningError(f"the domain {domain} has no active RSA DKIM key")
        return await asyncio.to_thread(_sign_all, keys, message)

    async def key_for(self, domain: str) -> SigningKey | None:
        """The RSA key ``sign`` uses first (``None``: the domain cannot send)."""
        keys = await self.keys_for(domain)
        return keys[0] if keys and keys[0].algorithm is DkimAlgorithm.RSA else None

    async def keys_for(self, domain: str) -> list[SigningKey]:
        """The domain's newest active RSA key, then its newest active Ed25519 key, those that exist."""
        now = time.monotonic()
        cached = self._cache.get(domain)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        keys = await asyncio.to_thread(self._load, domain)
        self._cache[domain] = (now, keys)
        return keys

    def _load(self, domain: str) -> list[SigningKey]:
        keys: list[SigningKey] = []
        with self._sessions() as session:
            for algorithm in (DkimAlgorithm.RSA, DkimAlgorithm.ED25519):
                query = (
                    select(DkimKey.selector, DkimKey.private_key_pem)
                    .join(Domain)
                    .where(Domain.name == domain, DkimKey.active.is_(True), DkimKey.algorithm == algorithm)
                    .order_by(DkimKey.created_at.desc(), DkimKey.id.desc())
                    .limit(1)
                )
                row = session.execute(query).first()
                if row is not None:
                    keys.append(SigningKey(domain, row.selector, row.private_key_pem, algorithm))
        return keys


def _sign_all(keys: list[SigningKey], message: bytes) -> bytes:
    """Each key's signature prepended in turn; the h= lists name no DKIM-Signature, so they do not cover each other."""
    for key in keys:
        message = sign_with(key, message)
    return message
