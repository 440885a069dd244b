"""Credentials just created, held in server memory for one download.

Bulk creation makes clear-text passwords that exist nowhere else (the database keeps argon2 hashes).
The operator gets them once, as a CSV download; they are never written to the database, a file or a
cookie. Each batch waits under a random id for ``DOWNLOAD_LIFETIME`` seconds, belongs to the admin
user who made it, and is removed when downloaded.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DOWNLOAD_LIFETIME = 600.0  # seconds: ten minutes to click "download"
MAX_WAITING = 100  # batches held at once; the oldest go first


@dataclass(frozen=True, slots=True)
class Credential:
    """One mailbox's login as the sending platform needs it."""

    address: str
    password: str
    display_name: str | None = None
    daily_cap: int | None = None  # the mailbox's own cap; None: the configured default


@dataclass(frozen=True, slots=True)
class _Batch:
    user_id: int
    credentials: tuple[Credential, ...]
    expires_at: float


class CredentialStash:
    """One-time downloads of fresh credentials, keyed by an unguessable id."""

    def __init__(self, lifetime: float = DOWNLOAD_LIFETIME, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._batches: dict[str, _Batch] = {}
        self._lock = threading.Lock()

    def put(self, user_id: int, credentials: Sequence[Credential]) -> str:
        """Hold ``credentials`` for ``user_id``; returns the id of the one download."""
        download_id = secrets.token_urlsafe(24)
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            while len(self._batches) >= MAX_WAITING:
                del self._batches[next(iter(self._batches))]
            self._batches[download_id] = _Batch(user_id, tuple(credentials), now + self.lifetime)
        return download_id

    def peek(self, download_id: str, user_id: int) -> tuple[Credential, ...] | None:
        """The batch if it is still waiting for this user (the page shows the addresses), without taking it."""
        with self._lock:
            self._drop_expired(self._clock())
            batch = self._batches.get(download_id)
            return batch.credentials if batch is not None and batch.user_id == user_id else None

    def take(self, download_id: str, user_id: int) -> tuple[Credential, ...] | None:
        """The batch, removed; ``None`` when unknown, expired, already taken or made by another user."""
        with self._lock:
            self._drop_expired(self._clock())
            batch = self._batches.get(download_id)
            if batch is None or batch.user_id != user_id:
                return None
            del self._batches[download_id]
            return batch.credentials

    def _drop_expired(self, now: float) -> None:
        for key in [key for key, batch in self._batches.items() if batch.expires_at <= now]:
            del self._batches[key]
