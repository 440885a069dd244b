"""One delivery try of one leased message, turned into log rows, a DSN and the message's next state.

Pure decisions live here (what each recipient's answer means, when to give up, what the log row
says); the worker does the I/O around them. Every answer, 250 included, goes through
``coldrelay.errors.explain`` with the remote host, so the delivery log carries reason, provider
and the knowledge-base article of each reply, and the DSN can tell the sender what to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from coldrelay.config import DeliverySettings
from coldrelay.db import DeliveryOutcome, LogSource, MessageState
from coldrelay.errors import Diagnosis, Reason, explain
from coldrelay.mta.queue import Completion


@dataclass(frozen=True, slots=True)
class Answer:
    """What happened to one recipient in this try, whoever said it (a remote server or our routing)."""

    recipient: str
    code: int
    enhanced: str | None
    text: str  # the reply as one line: "550 5.1.1 <bob@x.test>: no such user"
    remote_host: str | None
    tls_version: str | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@dataclass(slots=True)
class TryOutcome:
    """The sorted answers of one try and what to do next."""

    delivered: list[tuple[Answer, Diagnosis]] = field(default_factory=list)
    failed: list[tuple[Answer, Diagnosis]] = field(default_factory=list)  # final: DSN and outcome bounced
    deferred: list[tuple[Answer, Diagnosis]] = field(default_factory=list)
    gave_up: bool = False

    @property
    def diagnoses(self) -> list[Diagnosis]:
        return [diagnosis for _answer, diagnosis in (*self.delivered, *self.failed, *self.deferred)]


def judge(answers: Sequence[Answer], *, created_at: datetime | None, now: datetime, settings: DeliverySettings) -> TryOutcome:
    """Sort answers into delivered, failed and deferred; temporary answers become failures once the
    message is older than ``give_up_after`` (RFC 5321 4.5.4.1: give up after 4-5 days)."""
    outcome = TryOutcome()
    expired = created_at is not None and (now - created_at) >= timedelta(seconds=settings.give_up_after)
    for answer in answers:
        diagnosis = explain(answer.text, remote_host=answer.remote_host)
        if answer.accepted:
            outcome.delivered.append((answer, diagnosis))
        elif answer.permanent:
            outcome.failed.append((answer, diagnosis))
        elif expired:
            outcome.failed.append((answer, diagnosis))
            outcome.gave_up = True
        else:
            outcome.deferred.append((answer, diagnosis))
    return outcome


def log_row(answer: Answer, diagnosis: Diagnosis, *, sender: str, outcome: DeliveryOutcome, attempt: int) -> dict[str, Any]:
    """The ``delivery_log`` values for one answer (``message_id`` is added by the queue)."""
    gave_up = outcome is DeliveryOutcome.BOUNCED and not answer.permanent
    return {
        "sender": sender[:320] or None,
        "recipient": answer.recipient[:320],
        "outcome": outcome,
        "source": LogSource.ATTEMPT,
        "hard_bounce": outcome is DeliveryOutcome.BOUNCED and diagnosis.hard_bounce and answer.permanent,
        "remote_host": answer.remote_host[:253] if answer.remote_host else None,
        "reply_code": answer.code,
        "enhanced_code": answer.enhanced[:16] if answer.enhanced else None,
        "reply_text": answer.text,
        "reason": (Reason.EXPIRED if gave_up else diagnosis.reason).value,
        "provider": diagnosis.provider[:64] if diagnosis.provider else None,
        "article": diagnosis.entry.slug[:200] if diagnosis.entry else None,
        "tls_version": answer.tls_version[:16] if answer.tls_version else None,
        "attempt": attempt,
    }


def completion_for(
    outcome: TryOutcome, *, sender: str, tries_before: int, now: datetime, settings: DeliverySettings
) -> Completion:
    """The queue update for this try: deferred with the recipients left, or final."""
    attempt = tries_before + 1
    rows = [log_row(a, d, sender=sender, outcome=DeliveryOutcome.DELIVERED, attempt=attempt) for a, d in outcome.delivered]
    rows += [log_row(a, d, sender=sender, outcome=DeliveryOutcome.BOUNCED, attempt=attempt) for a, d in outcome.failed]
    rows += [log_row(a, d, sender=sender, outcome=DeliveryOutcome.DEFERRED, attempt=attempt) for a, d in outcome.deferred]
    if outcome.deferred:
        done = outcome.delivered or outcome.failed
        first = outcome.deferred[0][0]
        return Completion(
            state=MessageState.DEFERRED,
            next_attempt_at=now + timedelta(seconds=settings.retry_delay(attempt)),
            remaining=[answer.recipient for answer, _ in outcome.deferred] if done else None,
            error=_error_line(first),
            log_rows=rows,
        )
    if outcome.delivered:
        error = _error_line(outcome.failed[0][0]) if outcome.failed else None
        return Completion(state=MessageState.DELIVERED, error=error, log_rows=rows)
    return Completion(
        state=MessageState.BOUNCED, error=_error_line(outcome.failed[0][0]) if outcome.failed else None, log_rows=rows
    )


def _error_line(answer: Answer) -> str:
    where = f" ({answer.remote_host})" if answer.remote_host else ""
    return f"{answer.recipient}: {answer.text}{where}"[:2000]
