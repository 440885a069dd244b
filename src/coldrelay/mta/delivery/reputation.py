"""The reputation guard: stop a mailbox or a domain before it burns its sending reputation.

Two triggers, both decided from what the delivery worker has just written to the delivery log:

* **blocklisted**: a receiving server says the sending IP or domain is on a blocklist (Spamhaus,
  Barracuda, a provider's own block list). Every further message from the domain would meet the
  same refusal and deepen the listing, so the whole domain pauses at once
  (``reputation.pause_on_blocklist``).
* **hard-bounce-rate**: over the last ``reputation.window`` sends of a mailbox, and separately of
  its domain, the share of hard bounces exceeds ``reputation.hard_bounce_threshold`` (with at least
  ``reputation.min_sends`` sends, so three early bounces do not condemn a new mailbox). A send is
  an attempt row that ended ``delivered`` or ``bounced``; deferred rows are not sends. Hard bounces
  that arrived later as bounce emails (source ``bounce``) count against the sends they answer.

A pause stays until a person resumes it (``coldrelay senders resume``); only rows written after the
latest resume of that mailbox or domain count afterwards, so the old bad sends cannot pause it
again on the next message. There is never a second active pause for one scope and name: the
insert is one ``INSERT ... SELECT ... WHERE NOT EXISTS`` statement (atomic on SQLite, whose
writers are serialised) behind a transaction-scoped advisory lock on PostgreSQL, where two nodes
could otherwise both see no pause and both insert one.

Blocking SQLAlchemy calls run in ``asyncio.to_thread``, as the queue's do (see its module notes).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Engine, Table, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from coldrelay.config import ReputationSettings
from coldrelay.db import DeliveryLog, DeliveryOutcome, InvalidName, LogSource, PauseScope, SenderPause, utcnow
from coldrelay.db import normalize_domain as _normalize_domain
from coldrelay.errors import Diagnosis, Reason

TRIGGER_BLOCKLISTED = "blocklisted"
TRIGGER_HARD_BOUNCE_RATE = "hard-bounce-rate"
TRIGGER_MANUAL = "manual"

_PAUSES = cast(Table, SenderPause.__table__)
_BLOCKLIST_REASONS = frozenset({Reason.BLOCKED, Reason.BADREPUTATION})
# Words receivers use when the refusal comes from a list of bad senders rather than from this message.
_BLOCKLIST_WORDING = re.compile(
    r"block[ -]?list|black[ -]?list|deny[ -]?list|\blisted\b|\bdnsbl\b|\brbl\b|spamhaus|barracuda|spamcop"
    r"|\bsorbs\b|uceprotect|\bpsbl\b|surriel|removal from (?:this|the) list",
    re.IGNORECASE,
)
_CACHE_LIMIT = 4096  # cached senders before expired entries are swept


class InvalidSenderName(ValueError):
    """A name given to pause or resume that is neither an address nor a domain name."""


class AlreadyPaused(Exception):
    """A manual pause of a mailbox or domain that is already paused; ``pause`` is the active one."""

    def __init__(self, pause: SenderPause) -> None:
        self.pause = pause
        super().__init__(f"{pause.name} is already paused since {pause.paused_at:%Y-%m-%d %H:%M} UTC: {pause.detail}")


@dataclass(frozen=True, slots=True)
class SenderStanding:
    """A mailbox's or domain's recent figures, as the guard judges them."""

    scope: PauseScope
    name: str
    sends: int
    hard_bounces: int
    rate: float
    paused: SenderPause | None


def is_blocklisting(diagnosis: Diagnosis) -> bool:
    """True when the reply says the sending IP or domain is listed on a blocklist.

    The reason must be one about the sender's standing (blocked, bad reputation) *and* the words
    must speak of a list: a relay refusal or an unknown user is never a listing, even under 5.7.1
    or with the word "listed" ("recipient not listed in public directory"), and a Gmail "low
    reputation" reply is a reputation problem the rate trigger covers, not a listing.
    """
    if diagnosis.reason not in _BLOCKLIST_REASONS:
        return False
    if _BLOCKLIST_WORDING.search(diagnosis.text):
        return True
    entry = diagnosis.entry
    # An article chosen by the reply's own wording names the list in its title (``DNSBL:RBL 521``).
    return entry is not None and diagnosis.matched_by == "pattern" and bool(_BLOCKLIST_WORDING.search(entry.title))


def sender_keys(sender: str) -> tuple[str, str]:
    """(mailbox, domain) the guard files a sender under: lower case, as the mailboxes are stored."""
    mailbox = " ".join(sender.split()).lower()
    return mailbox, mailbox.rpartition("@")[2]


def parse_name(name: str) -> tuple[PauseScope, str]:
    """A name typed by a person: ``anna@example.com`` (a mailbox) or ``example.com`` (a domain)."""
    text = name.strip()
    local, at, domain = text.rpartition("@")
    try:
        normalized = _normalize_domain(domain)
    except InvalidName:
        raise InvalidSenderName(f"{name!r} is neither a mailbox address nor a domain name") from None
    if not at:
        return PauseScope.DOMAIN, normalized
    if not local or any(char.isspace() or char in "<>\"'" for char in local):
        raise InvalidSenderName(f"{name!r} is not a valid mailbox address")
    return PauseScope.MAILBOX, f"{local.lower()}@{normalized}"


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


class ReputationGuard:
    """Pauses senders on blocklisting or a high hard-bounce rate; answers whether a sender is paused."""

    def __init__(self, engine: Engine, settings: ReputationSettings, *, cache_seconds: float = 2.0) -> None:
        self.engine = engine
        self.settings = settings
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, SenderPause | None]] = {}

    # --- after each message ------------------------------------------------------------------------

    async def after_results(self, sender: str, diagnoses: Sequence[Diagnosis]) -> list[SenderPause]:
        """Judge ``sender`` after the worker wrote the log rows of one message's try; returns new pauses only.

        A try with no hard bounce and no blocklist reply cannot raise the sender's hard-bounce rate
        (one more send, no more bounces), so it costs no query: on a busy host nearly every try is one.
        """
        if not any(d.hard_bounce or is_blocklisting(d) for d in diagnoses):
            return []
        return await asyncio.to_thread(self._after_results, sender, list(diagnoses))

    def _after_results(self, sender: str, diagnoses: list[Diagnosis]) -> list[SenderPause]:
        mailbox, domain = sender_keys(sender)
        if not mailbox or not domain or "@" not in mailbox:
            return []  # the null sender (a DSN of ours) has no reputation to guard
        opened: list[SenderPause] = []
        if self.settings.pause_on_blocklist:
            listed = next((d for d in diagnoses if is_blocklisting(d)), None)
            if listed is not None:
                detail = f"A receiving server says the sending IP or domain is on a blocklist: {listed.text}"
                pause = self._open(PauseScope.DOMAIN, domain, TRIGGER_BLOCKLISTED, detail)
                if pause is not None:
                    opened.append(pause)
        for scope, name in ((PauseScope.MAILBOX, mailbox), (PauseScope.DOMAIN, domain)):
            with Session(self.engine) as session:
                if self._active(session, scope, name) is not None:
                    continue
                sends, hard, rate = self._figures(session, scope, name)
            threshold = self.settings.hard_bounce_threshold
            if sends >= self.settings.min_sends and rate > threshold:
                detail = (
                    f"{hard} hard bounce{'s' if hard != 1 else ''} in the last {sends} sends "
                    f"({_percent(rate)}, threshold {_percent(threshold)})"
                )
                pause = self._open(scope, name, TRIGGER_HARD_BOUNCE_RATE, detail)
                if pause is not None:
                    opened.append(pause)
        if opened:
            self._cache.clear()
        return opened

    # --- the figures --------------------------------------------------------------------------------

    @staticmethod
    def _who(scope: PauseScope, name: str) -> ColumnElement[bool]:
        if scope is PauseScope.MAILBOX:
            return DeliveryLog.sender == name
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return DeliveryLog.sender.ilike(f"%@{escaped}", escape="\\")

    @staticmethod
    def _latest_resume(session: Session, scope: PauseScope, name: str) -> datetime | None:
        return session.scalar(
            select(func.max(SenderPause.resumed_at)).where(SenderPause.scope == scope, SenderPause.name == name)
        )

    def _figures(self, session: Session, scope: PauseScope, name: str) -> tuple[int, int, float]:
        """(sends, hard bounces, rate) over the last ``window`` sends after the latest resume.

        Bounce emails are counted from the oldest send in the window on: a late bounce answers a
        send made before it, so one that arrived after the window's first send almost always
        answers a send inside it.
        """
        who = self._who(scope, name)
        since = self._latest_resume(session, scope, name)
        after = [DeliveryLog.at > since] if since is not None else []
        sends = session.execute(
            select(DeliveryLog.hard_bounce, DeliveryLog.at)
            .where(
                who,
                DeliveryLog.source == LogSource.ATTEMPT,
                DeliveryLog.outcome.in_((DeliveryOutcome.DELIVERED, DeliveryOutcome.BOUNCED)),
                *after,
            )
            .order_by(DeliveryLog.at.desc(), DeliveryLog.id.desc())
            .limit(max(self.settings.window, 1))
        ).all()
        if not sends:
            return 0, 0, 0.0
        oldest = min(row.at for row in sends)
        late = session.scalar(
            select(func.count())
            .select_from(DeliveryLog)
            .where(
                who, DeliveryLog.source == LogSource.BOUNCE, DeliveryLog.hard_bounce.is_(True), DeliveryLog.at >= oldest, *after
            )
        )
        hard = sum(1 for row in sends if row.hard_bounce) + int(late or 0)
        return len(sends), hard, hard / len(sends)

    # --- pauses -------------------------------------------------------------------------------------

    @staticmethod
    def _active(session: Session, scope: PauseScope, name: str) -> SenderPause | None:
        return session.scalars(
            select(SenderPause)
            .where(SenderPause.scope == scope, SenderPause.name == name, SenderPause.resumed_at.is_(None))
            .order_by(SenderPause.paused_at, SenderPause.id)
            .limit(1)
        ).first()

    def _open(self, scope: PauseScope, name: str, trigger: str, detail: str) -> SenderPause | None:
        """Insert a pause unless one is active for ``scope`` and ``name``; the new row, or None."""
        active = select(_PAUSES.c.id).where(_PAUSES.c.scope == scope, _PAUSES.c.name == name, _PAUSES.c.resumed_at.is_(None))
        row: Any = select(
            literal(scope, _PAUSES.c.scope.type),
            literal(name, _PAUSES.c.name.type),
            literal(trigger, _PAUSES.c.trigger.type),
            literal(detail, _PAUSES.c.detail.type),
            literal(utcnow(), _PAUSES.c.paused_at.type),
        ).where(~active.exists())
        statement = insert(_PAUSES).from_select(["scope", "name", "trigger", "detail", "paused_at"], row).returning(_PAUSES.c.id)
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            if self.engine.dialect.name == "postgresql":
                session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"coldrelay-pause:{scope.value}:{name}"))))
            new_id = session.scalar(statement)
            return None if new_id is None else session.get(SenderPause, new_id)

    async def paused(self, sender: str) -> SenderPause | None:
        """The active pause of the sender's mailbox or its domain, if any.

        Cached for ``cache_seconds`` per sender: the worker asks before every message, and a
        resume made by another process only has to show within a moment.
        """
        mailbox, domain = sender_keys(sender)
        now = time.monotonic()
        cached = self._cache.get(mailbox)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        pause = await asyncio.to_thread(self._paused, mailbox, domain)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache = {key: value for key, value in self._cache.items() if now - value[0] < self.cache_seconds}
        self._cache[mailbox] = (now, pause)
        return pause

    def _paused(self, mailbox: str, domain: str) -> SenderPause | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(
                select(SenderPause)
                .where(
                    SenderPause.resumed_at.is_(None),
                    or_(
                        (SenderPause.scope == PauseScope.MAILBOX) & (SenderPause.name == mailbox),
                        (SenderPause.scope == PauseScope.DOMAIN) & (SenderPause.name == domain),
                    ),
                )
                .order_by(SenderPause.paused_at, SenderPause.id)
                .limit(1)
            ).first()

    async def resume(self, name: str, by: str) -> int:
        """Resume the active pause of a mailbox address or a domain; returns how many rows were resumed.

        Resuming a domain leaves pauses of its single mailboxes alone: each was its own decision.
        """
        scope, normalized = parse_name(name)
        count = await asyncio.to_thread(self._resume, scope, normalized, by)
        self._cache.clear()
        return count

    def _resume(self, scope: PauseScope, name: str, by: str) -> int:
        statement = (
            update(_PAUSES)
            .where(_PAUSES.c.scope == scope, _PAUSES.c.name == name, _PAUSES.c.resumed_at.is_(None))
            .values(resumed_at=utcnow(), resumed_by=by)
            .returning(_PAUSES.c.id)
        )
        with self.engine.begin() as connection:
            return len(connection.execute(statement).all())

    async def pause(self, name: str, *, detail: str, by: str) -> SenderPause:
        """Pause a mailbox or domain by hand (trigger ``manual``); ``AlreadyPaused`` if it is paused."""
        scope, normalized = parse_name(name)
        reason = " ".join(detail.split())
        if not reason:
            raise ValueError("a manual pause needs a reason, for whoever resumes it")
        text = f"Paused by {' '.join(by.split()) or 'an administrator'}: {reason}"
        pause = await asyncio.to_thread(self._open, scope, normalized, TRIGGER_MANUAL, text)
        self._cache.clear()
        if pause is None:
            existing = await asyncio.to_thread(self._existing, scope, normalized)
            if existing is None:  # resumed between the two statements: try once more
                return await self.pause(name, detail=detail, by=by)
            raise AlreadyPaused(existing)
        return pause

    def _existing(self, scope: PauseScope, name: str) -> SenderPause | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return self._active(session, scope, name)

    # --- for people ---------------------------------------------------------------------------------

    async def standing(self, sender: str) -> list[SenderStanding]:
        """The mailbox's and its domain's figures and active pauses (dashboard and CLI).

        ``sender`` may be an address (both rows) or a bare domain (the domain row only).
        """
        scope, name = parse_name(sender)
        keys = [(PauseScope.DOMAIN, name)]
        if scope is PauseScope.MAILBOX:
            keys = [(PauseScope.MAILBOX, name), (PauseScope.DOMAIN, name.rpartition("@")[2])]
        return await asyncio.to_thread(self._standing, keys)

    def _standing(self, keys: list[tuple[PauseScope, str]]) -> list[SenderStanding]:
        result: list[SenderStanding] = []
        with Session(self.engine, expire_on_commit=False) as session:
            for scope, name in keys:
                sends, hard, rate = self._figures(session, scope, name)
                result.append(SenderStanding(scope, name, sends, hard, rate, self._active(session, scope, name)))
        return result

    async def pauses(self, *, active_only: bool = True) -> list[SenderPause]:
        """Pauses, newest first; with ``active_only=False`` the resumed ones too (the history)."""
        return await asyncio.to_thread(self._pauses, active_only)

    def _pauses(self, active_only: bool) -> list[SenderPause]:
        query = select(SenderPause).order_by(SenderPause.paused_at.desc(), SenderPause.id.desc())
        if active_only:
            query = query.where(SenderPause.resumed_at.is_(None))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))
