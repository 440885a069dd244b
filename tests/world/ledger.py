"""Everything the world answered, so the system test can compare coldrelay's delivery log with it exactly.

Each receiver thread appends as it answers, and the test reads while they run, hence the lock. A
:class:`Verdict` is one SMTP answer about one recipient (``recipient`` is empty for an answer that
covers the whole transaction, such as a 530 before STARTTLS); an :class:`AsyncEvent` is a message the
world sent back later (a bounce, an auto-reply, a human reply) and what coldrelay's MX said to it.

``expected_reasons()`` explains each final answer with the same function and remote host coldrelay's
delivery uses, so "counts by reason and provider" can be compared without the test repeating the logic.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from coldrelay.errors import explain

__all__ = ["AsyncEvent", "Ledger", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    recipient: str
    sender: str
    """The MAIL FROM address (empty for the null sender or before MAIL)."""
    provider: str
    """The profile that answered: google, microsoft, yahoo, generic."""
    mx_host: str
    reply: str
    """The exact reply line sent (single line: what coldrelay logs as the reply)."""
    stage: str
    """mail | rcpt | data."""
    final: bool
    """2xx or 5xx: the recipient's fate is decided; 4xx means coldrelay must try again."""
    message_id: str | None = None
    """The Message-ID of the message (known from DATA on)."""
    auth: str | None = None
    """What the receiver's checks found, e.g. ``spf=pass dkim=pass dmarc=pass`` (DATA answers only)."""

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")


@dataclass(frozen=True, slots=True)
class AsyncEvent:
    kind: str
    """bounce | auto-reply | reply."""
    recipient: str
    """The world's address the event is about (the bounced recipient, the one who replies)."""
    to: str
    """Where it was sent: the original sender."""
    provider: str
    mx_host: str
    answers_message_id: str
    """The Message-ID of the original message (In-Reply-To, or the DSN's returned headers)."""
    message_id: str
    """The Message-ID of the event's own message."""
    diagnostic: str | None
    """For a bounce: the reply quoted in its Diagnostic-Code."""
    delivery_reply: str
    """What coldrelay's MX answered to it (``250 ...``), or ``error: ...`` when it could not be sent."""


class Ledger:
    """Thread-safe, append-only record of verdicts and async events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._verdicts: list[Verdict] = []
        self._events: list[AsyncEvent] = []

    def record(self, verdict: Verdict) -> None:
        with self._lock:
            self._verdicts.append(verdict)

    def record_event(self, event: AsyncEvent) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def verdicts(self) -> list[Verdict]:
        with self._lock:
            return list(self._verdicts)

    @property
    def events(self) -> list[AsyncEvent]:
        with self._lock:
            return list(self._events)

    def final_verdicts(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.final]

    def for_recipient(self, recipient: str) -> list[Verdict]:
        """Every answer about one address, in order (case-insensitive)."""
        wanted = recipient.lower()
        return [v for v in self.verdicts if v.recipient.lower() == wanted]

    def expected_reasons(self, *, final_only: bool = True) -> Counter[tuple[str, str | None]]:
        """(reason, provider) -> count, by ``explain(reply, remote_host=mx_host)``, over final answers (or all)."""
        counts: Counter[tuple[str, str | None]] = Counter()
        for verdict in self.verdicts:
            if verdict.final or not final_only:
                diagnosis = explain(verdict.reply, remote_host=verdict.mx_host)
                counts[(diagnosis.reason.value, diagnosis.provider)] += 1
        return counts

    def expected_bounce_reasons(self) -> Counter[tuple[str, str | None]]:
        """(reason, provider) -> count for the asynchronous bounces' diagnostics."""
        counts: Counter[tuple[str, str | None]] = Counter()
        for event in self.events:
            if event.kind == "bounce" and event.diagnostic is not None:
                diagnosis = explain(event.diagnostic, remote_host=event.mx_host)
                counts[(diagnosis.reason.value, diagnosis.provider)] += 1
        return counts

    def accepted(self) -> list[tuple[str, str | None]]:
        """(recipient, Message-ID) of every recipient a message was accepted for, in order."""
        return [(v.recipient, v.message_id) for v in self.verdicts if v.final and v.accepted and v.stage == "data"]

    def accepted_message_ids(self) -> set[str]:
        """The distinct Message-IDs the world accepted (for at least one recipient)."""
        return {message_id for _recipient, message_id in self.accepted() if message_id}

    def rejected(self) -> list[Verdict]:
        """Final 5xx answers."""
        return [v for v in self.verdicts if v.final and not v.accepted]

    def deferred(self) -> list[Verdict]:
        """4xx answers (greylisting, rate limits): coldrelay must have retried these."""
        return [v for v in self.verdicts if not v.final]
