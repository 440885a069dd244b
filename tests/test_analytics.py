"""The dashboard's figures on SQLite and PostgreSQL: rows inserted directly, counts asserted exactly.

Time buckets are the part the backends spell differently, so the bucket edges (the last
microsecond of an hour, midnight UTC) are tested on both, and on PostgreSQL with a session time
zone far from UTC, which must not move a row into another day.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from coldrelay.analytics import (
    AnalyticsError,
    BounceRate,
    Bucket,
    Count,
    WindowName,
    failures_by,
    outcomes_over_time,
    queue_counts,
    report,
    sender_bounce_rates,
    top_replies,
    window,
)
from coldrelay.db import DeliveryLog, DeliveryOutcome, LogSource, MessageState, QueuedMessage, session_factory
from coldrelay.mta.queue import HELD_UNTIL, QueueState

pytest_plugins = ["helpers.queue_db"]

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
DELIVERED, DEFERRED, BOUNCED = DeliveryOutcome.DELIVERED, DeliveryOutcome.DEFERRED, DeliveryOutcome.BOUNCED


@pytest.fixture
def session(queue_engine: Engine) -> Iterator[Session]:
    with session_factory(queue_engine)() as session:
        if queue_engine.dialect.name == "postgresql":
            # Far from UTC: a bucket computed in the session's zone would land in another hour and day.
            session.execute(text("SET TIME ZONE 'Pacific/Kiritimati'"))
        session.add(QueuedMessage(id="m" * 32, sender="anna@hosted.test", recipients=["x@example.net"], message_blob=b"x"))
        session.flush()
        yield session


def log(
    session: Session,
    at: datetime,
    outcome: DeliveryOutcome | None,
    *,
    sender: str | None = "anna@hosted.test",
    reason: str | None = None,
    provider: str | None = None,
    hard: bool = False,
    source: LogSource = LogSource.ATTEMPT,
    reply: tuple[int, str, str] | None = None,
    article: str | None = None,
) -> None:
    code, enhanced, reply_text = reply or (None, None, None)
    session.add(
        DeliveryLog(
            message_id="m" * 32,
            sender=sender,
            recipient="x@example.net",
            outcome=outcome,
            source=source,
            hard_bounce=hard,
            reason=reason,
            provider=provider,
            reply_code=code,
            enhanced_code=enhanced,
            reply_text=reply_text,
            article=article,
            attempt=1,
            at=at,
        )
    )
    session.flush()


def test_hour_buckets_cover_the_range_and_respect_edges(session: Session) -> None:
    log(session, T0 - timedelta(microseconds=1), DELIVERED)  # before the range
    log(session, T0, DELIVERED)
    log(session, T0 + timedelta(minutes=59, seconds=59, microseconds=999_999), BOUNCED)
    log(session, T0 + timedelta(hours=1), DEFERRED)
    log(session, T0 + timedelta(hours=1, minutes=30), DEFERRED)
    log(session, T0 + timedelta(hours=3), DELIVERED)  # at `until`: excluded
    log(session, T0 + timedelta(hours=2), None)  # no outcome: not counted

    buckets = outcomes_over_time(session, T0, T0 + timedelta(hours=3), "hour")

    assert buckets == [
        Bucket(T0, delivered=1, bounced=1),
        Bucket(T0 + timedelta(hours=1), deferred=2),
        Bucket(T0 + timedelta(hours=2)),
    ]
    assert all(bucket.start.tzinfo is UTC for bucket in buckets)


def test_day_buckets_split_at_midnight_utc(session: Session) -> None:
    midnight = datetime(2025, 3, 15, tzinfo=UTC)
    log(session, midnight - timedelta(seconds=1), BOUNCED)
    log(session, midnight, DELIVERED)
    log(session, midnight + timedelta(hours=23, minutes=59), DELIVERED)
    log(session, midnight + timedelta(days=1, hours=5), DEFERRED)

    # `since` in the middle of a day starts at that day's midnight: no partial first bar.
    buckets = outcomes_over_time(session, midnight - timedelta(hours=6), midnight + timedelta(days=2), "day")

    assert buckets == [
        Bucket(midnight - timedelta(days=1), bounced=1),
        Bucket(midnight, delivered=2),
        Bucket(midnight + timedelta(days=1), deferred=1),
    ]


def test_empty_log_gives_zero_buckets_and_empty_range_gives_none(session: Session) -> None:
    assert outcomes_over_time(session, T0, T0 + timedelta(hours=2), "hour") == [Bucket(T0), Bucket(T0 + timedelta(hours=1))]
    assert outcomes_over_time(session, T0, T0, "hour") == []
    with pytest.raises(AnalyticsError, match="bucket"):
        outcomes_over_time(session, T0, T0 + timedelta(hours=1), "week")  # type: ignore[arg-type]


def test_failures_by_reason_provider_sender_and_domain(session: Session) -> None:
    at = T0 + timedelta(minutes=5)
    log(session, at, BOUNCED, reason="userunknown", provider="google", sender="anna@hosted.test")
    log(session, at, BOUNCED, reason="userunknown", provider="microsoft", sender="Bob@Hosted.TEST")
    log(session, at, DEFERRED, reason="speeding", provider="google", sender="carl@other.test")
    log(session, at, DEFERRED, reason="userunknown", provider=None, sender="anna@hosted.test")
    log(session, at, DEFERRED, reason=None, provider=None, sender=None)
    log(session, at, DELIVERED, reason="delivered", provider="google", sender="anna@hosted.test")  # not a failure
    log(session, T0 - timedelta(days=1), BOUNCED, reason="blocked", provider="google")  # before `since`

    assert failures_by(session, "reason", T0) == [
        Count("userunknown", deferred=1, bounced=2),
        Count("speeding", deferred=1),
        Count(None, deferred=1),
    ]
    assert failures_by(session, "provider", T0) == [
        Count("google", deferred=1, bounced=1),
        Count(None, deferred=2),
        Count("microsoft", bounced=1),
    ]
    assert failures_by(session, "sender", T0) == [
        Count("anna@hosted.test", deferred=1, bounced=1),
        Count("bob@hosted.test", bounced=1),  # lower case, as the reputation guard keys senders
        Count("carl@other.test", deferred=1),
        Count(None, deferred=1),
    ]
    assert failures_by(session, "sender_domain", T0) == [
        Count("hosted.test", deferred=1, bounced=2),
        Count("other.test", deferred=1),
        Count(None, deferred=1),
    ]
    # `until` is exclusive.
    assert failures_by(session, "reason", T0 - timedelta(days=2), T0) == [Count("blocked", bounced=1)]
    with pytest.raises(AnalyticsError, match="recipient"):
        failures_by(session, "recipient", T0)  # type: ignore[arg-type]


def test_hard_bounce_rates_count_final_attempts_as_sends(session: Session) -> None:
    at = T0 + timedelta(minutes=1)
    for _ in range(3):
        log(session, at, DELIVERED, sender="anna@hosted.test")
    log(session, at, BOUNCED, sender="anna@hosted.test", hard=True)
    log(session, at, DEFERRED, sender="anna@hosted.test")  # retried later: not a send
    # A bounce email about one of the delivered sends: a hard bounce, but not another send.
    log(session, at, BOUNCED, sender="anna@hosted.test", hard=True, source=LogSource.BOUNCE)
    log(session, at, DELIVERED, sender="bob@hosted.test")
    log(session, at, BOUNCED, sender="bob@hosted.test", hard=False)  # soft: a send, not a hard bounce
    log(session, at, BOUNCED, sender="eve@other.test", hard=True, source=LogSource.BOUNCE)  # no sends in the window
    log(session, at, BOUNCED, sender="", hard=True)  # a bounce of our own bounce: nobody's

    rates = sender_bounce_rates(session, T0)
    assert rates == [
        BounceRate("anna@hosted.test", sends=4, hard_bounces=2),
        BounceRate("bob@hosted.test", sends=2, hard_bounces=0),
        BounceRate("eve@other.test", sends=0, hard_bounces=1),
    ]
    assert [rate.rate for rate in rates] == [0.5, 0.0, None]
    assert sender_bounce_rates(session, T0, by="sender_domain") == [
        BounceRate("hosted.test", sends=6, hard_bounces=2),
        BounceRate("other.test", sends=0, hard_bounces=1),
    ]
    assert sender_bounce_rates(session, T0 + timedelta(hours=1)) == []


def test_top_replies_are_grouped_and_ranked(session: Session) -> None:
    at = T0 + timedelta(minutes=1)
    unknown = (550, "5.1.1", "5.1.1 The email account that you tried to reach does not exist.")
    slow = (421, "4.7.0", "4.7.0 Try again later, closing connection.")
    for _ in range(3):
        log(session, at, BOUNCED, reply=unknown, reason="userunknown", provider="google", article="google-550-5-1-1")
    log(session, at, DEFERRED, reply=slow, reason="speeding", provider="google")
    log(session, at, DEFERRED, reply=slow, reason="speeding", provider="google")
    log(session, at, DELIVERED, reply=(250, "2.0.0", "OK"))

    replies = top_replies(session, T0)
    assert [(r.reply_code, r.enhanced_code, r.count) for r in replies] == [(550, "5.1.1", 3), (421, "4.7.0", 2)]
    assert replies[0].article == "google-550-5-1-1" and replies[0].reason == "userunknown"
    assert [r.count for r in top_replies(session, T0, limit=1)] == [3]
    assert top_replies(session, T0, limit=0) == []


def test_queue_counts_tell_held_from_deferred(session: Session) -> None:
    now = T0
    rows = [
        (MessageState.QUEUED, now),
        (MessageState.QUEUED, now),
        (MessageState.DEFERRED, now + timedelta(minutes=10)),
        (MessageState.DEFERRED, HELD_UNTIL),
        (MessageState.BOUNCED, now),
    ]
    for index, (state, next_at) in enumerate(rows):
        session.add(
            QueuedMessage(
                id=f"{index:032x}",
                sender="a@hosted.test",
                recipients=["b@x.test"],
                message_blob=b"x",
                state=state,
                next_attempt_at=next_at,
            )
        )
    session.flush()

    counts = queue_counts(session)
    assert list(counts) == list(QueueState)
    # The fixture's message is queued too.
    assert counts == {
        QueueState.QUEUED: 3,
        QueueState.LEASED: 0,
        QueueState.DEFERRED: 1,
        QueueState.HELD: 1,
        QueueState.DELIVERED: 0,
        QueueState.BOUNCED: 1,
    }


def test_windows_are_aligned_on_whole_buckets() -> None:
    now = datetime(2025, 3, 14, 10, 42, 7, tzinfo=UTC)
    day = window("24h", now)
    assert (day.since, day.until, day.bucket) == (
        datetime(2025, 3, 13, 11, tzinfo=UTC),
        datetime(2025, 3, 14, 11, tzinfo=UTC),
        "hour",
    )
    week = window("7d", now)
    assert (week.since, week.until, week.bucket) == (datetime(2025, 3, 8, tzinfo=UTC), datetime(2025, 3, 15, tzinfo=UTC), "day")
    assert window("30d", now).since == datetime(2025, 2, 13, tzinfo=UTC)  # 30 whole days up to 15 March
    with pytest.raises(AnalyticsError, match="24h, 7d, 30d"):
        window("1y", now)
    with pytest.raises(AnalyticsError, match="aware"):
        window("7d", now.replace(tzinfo=None))


def test_report_has_one_bar_per_bucket_and_serialises_to_json(session: Session) -> None:
    now = T0 + timedelta(minutes=30)
    log(session, T0 + timedelta(minutes=1), DELIVERED)
    log(session, T0 + timedelta(minutes=2), BOUNCED, reason="userunknown", hard=True)
    figures = report(session, window("24h", now), hard_bounce_threshold=0.05)

    assert len(figures.over_time) == 24
    assert figures.over_time[-1] == Bucket(T0, delivered=1, bounced=1)
    assert figures.totals() == Bucket(figures.window.since, delivered=1, bounced=1)
    shape = json.loads(json.dumps(figures.to_dict()))
    assert shape["window"]["name"] == WindowName.DAY.value
    assert shape["totals"] == {"delivered": 1, "deferred": 0, "bounced": 1}
    assert shape["failures_by_reason"] == [{"key": "userunknown", "deferred": 0, "bounced": 1, "total": 1}]
    assert shape["sender_bounce_rates"] == [{"key": "anna@hosted.test", "sends": 2, "hard_bounces": 1, "rate": 0.5}]
    assert shape["hard_bounce_threshold"] == 0.05
