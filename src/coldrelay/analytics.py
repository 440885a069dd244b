"""Figures for the admin dashboard, read from the delivery log and the queue.

Every function takes an open ``Session`` and runs one query, so a page of charts costs a handful
of aggregate statements whatever the size of the log. The grouping happens in SQL; only the
time buckets need a word per backend (``date_trunc`` on PostgreSQL, ``strftime`` on SQLite),
and both are computed on UTC wall-clock time, so an hour or a day means the same on either.

What is counted, and why:

- A log row is one event for one recipient: an attempt that got an answer (``source=attempt``) or
  a bounce email that arrived later (``source=bounce``). Over time, both kinds are counted where
  they happened, since a late bounce is a failure of that day.
- A *failure* is a row whose outcome is ``deferred`` or ``bounced``.
- A *send* (the denominator of a hard-bounce rate) is an attempt that ended with a final answer
  (``delivered`` or ``bounced``); a deferral is retried and would count the same recipient twice.
  Hard bounces are rows with ``hard_bounce`` set, from either source: a recipient that said 250
  and bounced by email later is a hard bounce of that send, as the reputation guard sees it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, DateTime, Integer, case, func, select
from sqlalchemy.orm import Session

from coldrelay.db import DeliveryLog, DeliveryOutcome, LogSource, MessageState, QueuedMessage
from coldrelay.mta.queue import HELD_UNTIL, QueueState

BucketSize = Literal["hour", "day"]
FailureField = Literal["reason", "provider", "sender", "sender_domain"]
RateKey = Literal["sender", "sender_domain"]

FAILED = (DeliveryOutcome.DEFERRED, DeliveryOutcome.BOUNCED)
FINAL = (DeliveryOutcome.DELIVERED, DeliveryOutcome.BOUNCED)
_STEP: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


class AnalyticsError(ValueError):
    """A request for figures that cannot be answered as asked (unknown window, field or bucket)."""


# --- windows ------------------------------------------------------------------------------------


class WindowName(enum.StrEnum):
    """The windows the dashboard offers; each has one natural bucket size."""

    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"


@dataclass(frozen=True, slots=True)
class Window:
    """A time range aligned on whole buckets: ``since`` inclusive, ``until`` exclusive, both aware UTC."""

    name: WindowName
    since: datetime
    until: datetime
    bucket: BucketSize


_WINDOW_SHAPE: dict[WindowName, tuple[int, BucketSize]] = {
    WindowName.DAY: (24, "hour"),
    WindowName.WEEK: (7, "day"),
    WindowName.MONTH: (30, "day"),
}


def window(name: str, now: datetime) -> Window:
    """The window called ``name`` ending with the bucket that holds ``now``.

    Aligned so that the first bar of a chart is a whole hour or day, not a partial one that would
    look like a drop in volume.
    """
    try:
        window_name = WindowName(name)
    except ValueError:
        choices = ", ".join(member.value for member in WindowName)
        raise AnalyticsError(f"unknown window {name!r}; choose one of {choices}") from None
    count, bucket = _WINDOW_SHAPE[window_name]
    until = bucket_floor(_aware(now), bucket) + _STEP[bucket]
    return Window(window_name, until - count * _STEP[bucket], until, bucket)


def bucket_floor(moment: datetime, bucket: BucketSize) -> datetime:
    """The start of the hour or UTC day holding ``moment``."""
    moment = _aware(moment).astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    raise AnalyticsError(f"unknown bucket {bucket!r}; choose hour or day")


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise AnalyticsError("analytics needs aware datetimes (coldrelay.db.utcnow())")
    return moment


# --- outcomes over time -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """The log rows of one hour or day, by outcome."""

    start: datetime
    delivered: int = 0
    deferred: int = 0
    bounced: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.deferred + self.bounced


def _bucket_start(dialect: str, bucket: BucketSize) -> ColumnElement[Any]:
    """SQL for the UTC start of a row's bucket; the two backends spell it differently."""
    if dialect == "postgresql":
        # timezone('UTC', timestamptz) is the UTC wall-clock time, whatever the session's TimeZone.
        return func.date_trunc(bucket, func.timezone("UTC", DeliveryLog.at), type_=DateTime())
    if dialect == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (see coldrelay.db.models.UTCDateTime).
        pattern = "%Y-%m-%d %H:00:00" if bucket == "hour" else "%Y-%m-%d 00:00:00"
        return func.strftime(pattern, DeliveryLog.at)
    raise AnalyticsError(f"analytics supports SQLite and PostgreSQL, not {dialect}")


def _as_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def outcomes_over_time(session: Session, since: datetime, until: datetime, bucket: BucketSize) -> list[Bucket]:
    """Delivered, deferred and bounced rows per bucket from ``since`` up to ``until``.

    Every bucket in the range is returned, empty ones with zeros, so a chart's time axis has no gaps.
    """
    if bucket not in _STEP:
        raise AnalyticsError(f"unknown bucket {bucket!r}; choose hour or day")
    first = bucket_floor(since, bucket)
    if _aware(until) <= first:
        return []
    start = _bucket_start(session.get_bind().dialect.name, bucket).label("start")
    rows = session.execute(
        select(start, DeliveryLog.outcome, func.count().label("n"))
        .where(DeliveryLog.at >= first, DeliveryLog.at < until, DeliveryLog.outcome.is_not(None))
        .group_by(start, DeliveryLog.outcome)
    ).all()
    counts: dict[datetime, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(_as_utc(row.start), {})[DeliveryOutcome(row.outcome).value] = row.n
    buckets: list[Bucket] = []
    moment = first
    while moment < until:
        buckets.append(Bucket(moment, **counts.get(moment, {})))
        moment += _STEP[bucket]
    return buckets


# --- failures by category -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Count:
    """Failures for one value of a field; ``key`` is None where the rows leave the field empty."""

    key: str | None
    deferred: int = 0
    bounced: int = 0

    @property
    def total(self) -> int:
        return self.deferred + self.bounced


def _domain(sender: str | None) -> str | None:
    if not sender or "@" not in sender:
        return None
    return sender.rpartition("@")[2].lower()


def _sorted_counts(counts: Iterable[Count]) -> list[Count]:
    return sorted(counts, key=lambda count: (-count.total, count.key is None, count.key or ""))


def failures_by(session: Session, field: FailureField, since: datetime, until: datetime | None = None) -> list[Count]:
    """Deferred and bounced rows grouped by ``field``, most failures first.

    ``sender_domain`` is grouped by sender in SQL and folded into domains here: splitting an
    address is spelled differently on each backend, and there are few senders.
    """
    # Senders in lower case, as the reputation guard files them (coldrelay.mta.delivery.reputation.sender_keys).
    columns: dict[str, Any] = {
        "reason": DeliveryLog.reason,
        "provider": DeliveryLog.provider,
        "sender": func.lower(DeliveryLog.sender),
    }
    column = columns.get("sender" if field == "sender_domain" else field)
    if column is None:
        raise AnalyticsError(f"cannot group failures by {field!r}; choose reason, provider, sender or sender_domain")
    deferred = func.sum(case((DeliveryLog.outcome == DeliveryOutcome.DEFERRED, 1), else_=0), type_=Integer)
    bounced = func.sum(case((DeliveryLog.outcome == DeliveryOutcome.BOUNCED, 1), else_=0), type_=Integer)
    query = select(column.label("key"), deferred.label("deferred"), bounced.label("bounced")).where(
        DeliveryLog.outcome.in_(FAILED), DeliveryLog.at >= _aware(since)
    )
    if until is not None:
        query = query.where(DeliveryLog.at < _aware(until))
    rows = session.execute(query.group_by(column)).all()
    if field != "sender_domain":
        return _sorted_counts(Count(row.key, int(row.deferred), int(row.bounced)) for row in rows)
    domains: dict[str | None, Count] = {}
    for row in rows:
        key = _domain(row.key)
        seen = domains.get(key, Count(key))
        domains[key] = Count(key, seen.deferred + int(row.deferred), seen.bounced + int(row.bounced))
    return _sorted_counts(domains.values())


# --- hard-bounce rates --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BounceRate:
    """Sends and hard bounces of one mailbox or domain (see the module notes for both definitions)."""

    key: str
    sends: int
    hard_bounces: int

    @property
    def rate(self) -> float | None:
        """Hard bounces per send; None without sends in the window (nothing to divide by)."""
        return self.hard_bounces / self.sends if self.sends else None


def sender_bounce_rates(
    session: Session, since: datetime, until: datetime | None = None, by: RateKey = "sender"
) -> list[BounceRate]:
    """Hard-bounce rate per sending mailbox (``by="sender"``) or domain, highest rate first.

    Senders are folded to lower case, as the reputation guard keys them, so the rates here are
    over the same rows as the guard's (though over a time window, not its last N sends).

    Rows without a sender (bounces of our own bounces) belong to nobody and are left out.
    """
    if by not in ("sender", "sender_domain"):
        raise AnalyticsError(f"cannot compute bounce rates by {by!r}; choose sender or sender_domain")
    is_send = (DeliveryLog.source == LogSource.ATTEMPT) & DeliveryLog.outcome.in_(FINAL)
    sends = func.sum(case((is_send, 1), else_=0), type_=Integer)
    hard = func.sum(case((DeliveryLog.hard_bounce.is_(True), 1), else_=0), type_=Integer)
    sender = func.lower(DeliveryLog.sender).label("sender")
    query = select(sender, sends.label("sends"), hard.label("hard")).where(
        DeliveryLog.sender.is_not(None), DeliveryLog.sender != "", DeliveryLog.at >= _aware(since)
    )
    if until is not None:
        query = query.where(DeliveryLog.at < _aware(until))
    totals: dict[str, tuple[int, int]] = {}
    for row in session.execute(query.group_by(sender)):
        key = row.sender if by == "sender" else _domain(row.sender)
        if key is None:
            continue
        seen_sends, seen_hard = totals.get(key, (0, 0))
        totals[key] = (seen_sends + int(row.sends), seen_hard + int(row.hard))
    rates = [BounceRate(key, sends_, hard_) for key, (sends_, hard_) in totals.items()]
    return sorted(rates, key=lambda item: (-(item.rate or 0.0), -item.sends, item.key))


# --- replies ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyCount:
    """One remote reply (as logged) and how many failures it caused."""

    reply_code: int | None
    enhanced_code: str | None
    reply_text: str | None
    reason: str | None
    provider: str | None
    article: str | None
    count: int


def top_replies(session: Session, since: datetime, until: datetime | None = None, limit: int = 10) -> list[ReplyCount]:
    """The remote replies behind most failures, with the reason and article they were matched to."""
    if limit < 1:
        return []
    group = (
        DeliveryLog.reply_code,
        DeliveryLog.enhanced_code,
        DeliveryLog.reply_text,
        DeliveryLog.reason,
        DeliveryLog.provider,
        DeliveryLog.article,
    )
    n = func.count().label("n")
    query = select(*group, n).where(DeliveryLog.outcome.in_(FAILED), DeliveryLog.at >= _aware(since))
    if until is not None:
        query = query.where(DeliveryLog.at < _aware(until))
    rows = session.execute(query.group_by(*group).order_by(n.desc(), DeliveryLog.reply_code).limit(limit)).all()
    return [
        ReplyCount(row.reply_code, row.enhanced_code, row.reply_text, row.reason, row.provider, row.article, row.n)
        for row in rows
    ]


# --- the queue ----------------------------------------------------------------------------------


def queue_counts(session: Session) -> dict[QueueState, int]:
    """Messages per queue state, every state present (zeros included), ``held`` told apart from ``deferred``."""
    held = (QueuedMessage.next_attempt_at >= HELD_UNTIL).label("held")
    rows = session.execute(select(QueuedMessage.state, held, func.count().label("n")).group_by(QueuedMessage.state, held)).all()
    counts = dict.fromkeys(QueueState, 0)
    for row in rows:
        state = MessageState(row.state)
        queue_state = QueueState.HELD if state is MessageState.DEFERRED and row.held else QueueState(state.value)
        counts[queue_state] += row.n
    return counts


# --- everything the analytics page shows --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """The analytics page's figures for one window; ``to_dict`` is the JSON API's shape."""

    window: Window
    over_time: list[Bucket]
    by_reason: list[Count]
    by_provider: list[Count]
    by_sender: list[Count]
    by_sender_domain: list[Count]
    sender_rates: list[BounceRate]
    domain_rates: list[BounceRate]
    top_replies: list[ReplyCount]
    hard_bounce_threshold: float

    def totals(self) -> Bucket:
        """All outcomes of the window added up (``start`` is the window's start)."""
        return Bucket(
            self.window.since,
            sum(b.delivered for b in self.over_time),
            sum(b.deferred for b in self.over_time),
            sum(b.bounced for b in self.over_time),
        )

    def to_dict(self) -> dict[str, object]:
        def counts(items: list[Count]) -> list[dict[str, object]]:
            return [{"key": c.key, "deferred": c.deferred, "bounced": c.bounced, "total": c.total} for c in items]

        def rates(items: list[BounceRate]) -> list[dict[str, object]]:
            return [{"key": r.key, "sends": r.sends, "hard_bounces": r.hard_bounces, "rate": r.rate} for r in items]

        totals = self.totals()
        return {
            "window": {
                "name": self.window.name.value,
                "since": self.window.since.isoformat(),
                "until": self.window.until.isoformat(),
                "bucket": self.window.bucket,
            },
            "totals": {"delivered": totals.delivered, "deferred": totals.deferred, "bounced": totals.bounced},
            "over_time": [
                {"start": b.start.isoformat(), "delivered": b.delivered, "deferred": b.deferred, "bounced": b.bounced}
                for b in self.over_time
            ],
            "failures_by_reason": counts(self.by_reason),
            "failures_by_provider": counts(self.by_provider),
            "failures_by_sender": counts(self.by_sender),
            "failures_by_sender_domain": counts(self.by_sender_domain),
            "hard_bounce_threshold": self.hard_bounce_threshold,
            "sender_bounce_rates": rates(self.sender_rates),
            "domain_bounce_rates": rates(self.domain_rates),
            "top_replies": [asdict(reply) for reply in self.top_replies],
        }


def report(session: Session, chosen: Window, hard_bounce_threshold: float, replies: int = 10) -> Report:
    """Every figure of the analytics page for ``chosen`` (eight aggregate queries)."""
    since, until = chosen.since, chosen.until
    return Report(
        window=chosen,
        over_time=outcomes_over_time(session, since, until, chosen.bucket),
        by_reason=failures_by(session, "reason", since, until),
        by_provider=failures_by(session, "provider", since, until),
        by_sender=failures_by(session, "sender", since, until),
        by_sender_domain=failures_by(session, "sender_domain", since, until),
        sender_rates=sender_bounce_rates(session, since, until, by="sender"),
        domain_rates=sender_bounce_rates(session, since, until, by="sender_domain"),
        top_replies=top_replies(session, since, until, limit=replies),
        hard_bounce_threshold=hard_bounce_threshold,
    )
