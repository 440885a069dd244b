"""Login throttling: too many wrong passwords for one username from one address stops further tries for a while.

Kept in process memory: it is lost on restart and not shared between several web processes, which is
acceptable for a dashboard that normally runs as one process (an attacker who can restart the server
has already won). Keyed on username + client address, so one attacker cannot lock a real operator out
from everywhere, and one address cannot guess a username's password quickly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_FAILURES = 5  # wrong passwords in a window before the pair is locked
FAILURE_WINDOW = 15 * 60.0  # seconds a failure is remembered
LOCKOUT = 15 * 60.0  # seconds a locked pair must wait


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    """Counts failed logins per (username, address); thread-safe, since sync handlers run in a thread pool."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW,
        lockout: float = LOCKOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._clock = clock
        self._records: dict[tuple[str, str], _Record] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(username: str, address: str) -> tuple[str, str]:
        return (username.strip().lower(), address)

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until this pair may try again; 0 when it may try now."""
        with self._lock:
            record = self._records.get(self._key(username, address))
            if record is None:
                return 0.0
            return max(0.0, record.locked_until - self._clock())

    def failed(self, username: str, address: str) -> None:
        """Record a wrong password; the pair is locked once the window holds ``max_failures`` of them."""
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            record = self._records.setdefault(self._key(username, address), _Record())
            record.failures = [at for at in record.failures if now - at < self.window]
            record.failures.append(now)
            if len(record.failures) >= self.max_failures:
                record.locked_until = now + self.lockout
                record.failures.clear()

    def succeeded(self, username: str, address: str) -> None:
        """A right password clears the pair's count."""
        with self._lock:
            self._records.pop(self._key(username, address), None)

    def _forget_old(self, now: float) -> None:
        # Bounded memory under a spray of usernames: drop records with nothing left to remember.
        if len(self._records) < 1024:
            return
        stale = [
            key
            for key, record in self._records.items()
            if record.locked_until <= now and all(now - at >= self.window for at in record.failures)
        ]
        for key in stale:
            del self._records[key]
