"""One-shot messages ("Mailbox added") shown on the page after a redirect.

Kept in memory per login session (keyed by the session's CSRF token, which is secret and per
session), so no cookie has to carry them and a message is never shown to another operator.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

MAX_PER_SESSION = 20  # a session that never reads its messages cannot grow without end


@dataclass(frozen=True, slots=True)
class Flash:
    """A message and its kind: ``ok`` (done) or ``error`` (not done, and why)."""

    text: str
    kind: str = "ok"


class FlashBox:
    """Messages waiting for a session's next page."""

    def __init__(self) -> None:
        self._messages: defaultdict[str, list[Flash]] = defaultdict(list)
        self._lock = threading.Lock()

    def push(self, key: str, text: str, kind: str = "ok") -> None:
        """Queue a message for the session ``key``; only the newest ``MAX_PER_SESSION`` are kept."""
        with self._lock:
            waiting = self._messages[key]
            waiting.append(Flash(text, kind))
            del waiting[:-MAX_PER_SESSION]

    def pop_all(self, key: str) -> list[Flash]:
        """The session's waiting messages, oldest first; they are shown once."""
        with self._lock:
            return self._messages.pop(key, [])
