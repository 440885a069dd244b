"""The reputation guard on SQLite and PostgreSQL: blocklist pauses, hard-bounce rates over the window,
late bounces, domains, resuming, the pause cache and one active pause per sender under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from sqlalchemy import Engine, insert, select

from coldrelay.config import ReputationSettings
from coldrelay.db import DeliveryLog, DeliveryOutcome, LogSource, PauseScope, QueuedMessage, SenderPause
from coldrelay.errors import Diagnosis, explain
from coldrelay.mta.delivery.reputation import (
    AlreadyPaused,
    InvalidSenderName,
    ReputationGuard,
    is_blocklisting,
    parse_name,
)

pytest_plugins = ["helpers.queue_db"]

T = TypeVar("T")
SENDER = "anna@sender.test"
OTHER = "bert@sender.test"

SPAMHAUS_AT_OUTLOOK = (
    "550 5.7.1 Service unavailable, Client host [203.0.113.5] blocked using Spamhaus. To request removal from this list "
    "see https://www.spamhaus.org/query/ip/203.0.113.5 (AS3130). [BN1NAM02FT032.eop-nam02.prod.protection.outlook.com]",
    "outlook-com.olc.protection.outlook.com",
)
LISTED = [
    SPAMHAUS_AT_OUTLOOK,
    ("554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using b.barracudacentral.org", None),
    ("554 Blocked - see https://www.spamcop.net/bl.shtml?203.0.113.5", None),
    ("554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using dnsbl.sorbs.net", None),
    ("550 5.7.1 Recipient not authorized, your IP has been found on a block list", None),
    (
        "550 5.7.1 Unfortunately, messages from [203.0.113.5] weren't sent. Please contact your Internet service provider "
        "since part of their network is on our block list (S3150).",
        "mx1.hotmail.com",
    ),
    (
        "553 5.3.0 flpd575 DNSBL:RBL 521< 203.0.113.5 >_is_blocked.For assistance forward this email to abuse_rbl@abuse-att.net",
        None,
    ),
]
NOT_LISTED = [
    ("550 5.7.1 Unable to relay", None),
    ("550 5.7.1 Relaying denied", None),
    ("550 5.1.1 <bob@x.test>: Recipient address rejected: User unknown in virtual mailbox table", None),
    ("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found. recipient not listed in public directory", None),
    (
        "550 5.7.1 [203.0.113.5] Our system has detected that this message is likely suspicious due to the very low "
        "reputation of the sending IP address. gsmtp",
        "gmail-smtp-in.l.google.com",
    ),
    ("421 4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected volume or user complaints", None),
    ("550 5.7.1 Message rejected as spam by Content Filtering.", None),
]


def diagnosis(reply: tuple[str, str | None]) -> Diagnosis:
    return explain(reply[0], remote_host=reply[1])


USER_UNKNOWN = ("550 5.1.1 <bob@x.test>: Recipient address rejected: User unknown in virtual mailbox table", None)
HARD = [diagnosis(USER_UNKNOWN)]  # the try that triggers an evaluation: it had a hard bounce


def run(engine: Engine, scenario: Callable[[ReputationGuard], Awaitable[T]], **settings: object) -> T:
    cache = float(settings.pop("cache", 2.0))  # type: ignore[arg-type]
    guard = ReputationGuard(engine, ReputationSettings(**settings), cache_seconds=cache)  # type: ignore[arg-type]

    async def main() -> T:
        return await scenario(guard)

    return asyncio.run(main())


@pytest.fixture
def engine(queue_engine: Engine) -> Iterator[Engine]:
    with queue_engine.begin() as connection:
        connection.execute(insert(QueuedMessage).values(id="m1", sender=SENDER, recipients=["x@y.test"], message_blob=b"x"))
    yield queue_engine


def log(
    engine: Engine, sender: str, *, delivered: int = 0, hard: int = 0, soft: int = 0, deferred: int = 0, late: int = 0
) -> None:
    """Write delivery-log rows as the worker (and the inbound bounce linker, for ``late``) would."""
    rows: list[dict[str, object]] = []

    def add(outcome: DeliveryOutcome, hard_bounce: bool, source: LogSource = LogSource.ATTEMPT) -> None:
        rows.append(
            {
                "message_id": "m1",
                "sender": sender,
                "recipient": f"r{len(rows)}@x.test",
                "outcome": outcome,
                "source": source,
                "hard_bounce": hard_bounce,
                "attempt": 1,
            }
        )

    for _ in range(delivered):
        add(DeliveryOutcome.DELIVERED, False)
    for _ in range(hard):
        add(DeliveryOutcome.BOUNCED, True)
    for _ in range(soft):
        add(DeliveryOutcome.BOUNCED, False)
    for _ in range(deferred):
        add(DeliveryOutcome.DEFERRED, False)
    for _ in range(late):
        add(DeliveryOutcome.BOUNCED, True, LogSource.BOUNCE)
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(DeliveryLog), rows)


def active_pauses(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(SenderPause.scope, SenderPause.name, SenderPause.trigger)
            .where(SenderPause.resumed_at.is_(None))
            .order_by(SenderPause.id)
        ).all()
    return [(row.scope.value, row.name, row.trigger) for row in rows]


# --- blocklisting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", LISTED, ids=lambda reply: reply[0][:40])
def test_blocklist_replies_are_recognised(reply: tuple[str, str | None]) -> None:
    assert is_blocklisting(diagnosis(reply))


@pytest.mark.parametrize("reply", NOT_LISTED, ids=lambda reply: reply[0][:40])
def test_relay_refusals_unknown_users_and_reputation_are_not_blocklisting(reply: tuple[str, str | None]) -> None:
    assert not is_blocklisting(diagnosis(reply))


def test_blocklisting_pauses_the_domain_once(engine: Engine) -> None:
    async def scenario(guard: ReputationGuard) -> None:
        [pause] = await guard.after_results(SENDER, [diagnosis(NOT_LISTED[2]), diagnosis(SPAMHAUS_AT_OUTLOOK)])
        assert (pause.scope, pause.name, pause.trigger) == (PauseScope.DOMAIN, "sender.test", "blocklisted")
        assert "Spamhaus" in pause.detail and "blocklist" in pause.detail
        assert pause.resumed_at is None
        # The same refusal on the next message (or for another mailbox of the domain) adds nothing.
        assert await guard.after_results(SENDER, [diagnosis(SPAMHAUS_AT_OUTLOOK)]) == []
        assert await guard.after_results(OTHER, [diagnosis(LISTED[1])]) == []
        paused = await guard.paused(OTHER)
        assert paused is not None and paused.id == pause.id

    run(engine, scenario)
    assert active_pauses(engine) == [("domain", "sender.test", "blocklisted")]


def test_blocklisting_is_ignored_when_switched_off(engine: Engine) -> None:
    async def scenario(guard: ReputationGuard) -> None:
        assert await guard.after_results(SENDER, [diagnosis(SPAMHAUS_AT_OUTLOOK)]) == []
        assert await guard.paused(SENDER) is None

    run(engine, scenario, pause_on_blocklist=False)
    assert active_pauses(engine) == []


def test_relay_refusal_and_unknown_user_do_not_pause(engine: Engine) -> None:
    async def scenario(guard: ReputationGuard) -> list[SenderPause]:
        return await guard.after_results(SENDER, [diagnosis(reply) for reply in NOT_LISTED])

    assert run(engine, scenario) == []
    assert active_pauses(engine) == []


def test_concurrent_evaluations_open_one_pause(engine: Engine) -> None:
    async def scenario(guard: ReputationGuard) -> list[list[SenderPause]]:
        listed = [diagnosis(SPAMHAUS_AT_OUTLOOK)]
        return await asyncio.gather(*(guard.after_results(f"u{i}@sender.test", listed) for i in range(12)))

    results = run(engine, scenario)
    assert sum(len(new) for new in results) == 1
    assert active_pauses(engine) == [("domain", "sender.test", "blocklisted")]


# --- hard-bounce rate --------------------------------------------------------------------------------


def test_a_try_without_a_hard_bounce_is_not_evaluated(engine: Engine) -> None:
    """One more send and no more bounces cannot raise the rate: no pause, whatever the history says."""
    log(engine, SENDER, delivered=18, hard=2, deferred=0)
    clean = [diagnosis(("250 2.0.0 OK", None)), diagnosis(("451 4.7.1 Greylisted, try again later", None))]
    assert run(engine, lambda guard: guard.after_results(SENDER, clean)) == []
    assert active_pauses(engine) == []
    assert [p.scope for p in run(engine, lambda guard: guard.after_results(SENDER, HARD))] == [
        PauseScope.MAILBOX,
        PauseScope.DOMAIN,
    ]


def test_rate_above_threshold_pauses_mailbox_and_domain(engine: Engine) -> None:
    log(engine, SENDER, delivered=18, hard=2, deferred=30)  # deferred rows are not sends

    async def scenario(guard: ReputationGuard) -> list[SenderPause]:
        return await guard.after_results(SENDER, HARD)

    pauses = run(engine, scenario)
    assert [(p.scope, p.name, p.trigger) for p in pauses] == [
        (PauseScope.MAILBOX, SENDER, "hard-bounce-rate"),
        (PauseScope.DOMAIN, "sender.test", "hard-bounce-rate"),
    ]
    assert pauses[0].detail == "2 hard bounces in the last 20 sends (10.0%, threshold 5.0%)"


@pytest.mark.parametrize(
    ("delivered", "hard", "deferred", "soft"),
    [
        (18, 1, 40, 0),  # 19 sends: under min_sends however bad the share, deferred rows do not make up the count
        (19, 1, 0, 0),  # exactly 5.0%: not above the threshold
        (17, 1, 0, 2),  # soft bounces are sends, not hard bounces: 1 in 20
    ],
)
def test_no_verdict_below_min_sends_or_at_threshold(engine: Engine, delivered: int, hard: int, deferred: int, soft: int) -> None:
    log(engine, SENDER, delivered=delivered, hard=hard, deferred=deferred, soft=soft)

    async def scenario(guard: ReputationGuard) -> list[SenderPause]:
        return await guard.after_results(SENDER, HARD)

    assert run(engine, scenario) == []


def test_only_the_last_window_sends_count(engine: Engine) -> None:
    log(engine, SENDER, hard=10)
    log(engine, SENDER, delivered=100)

    async def scenario(guard: ReputationGuard) -> tuple[list[SenderPause], int, int]:
        new = await guard.after_results(SENDER, HARD)
        mailbox, _domain = await guard.standing(SENDER)
        return new, mailbox.sends, mailbox.hard_bounces

    assert run(engine, scenario) == ([], 100, 0)
    assert run(engine, lambda guard: guard.after_results(SENDER, HARD), window=110)[0].name == SENDER


def test_late_bounces_count_against_delivered_sends(engine: Engine) -> None:
    log(engine, SENDER, delivered=20, late=2)

    async def scenario(guard: ReputationGuard) -> list[SenderPause]:
        return await guard.after_results(SENDER, HARD)

    [mailbox, _domain] = run(engine, scenario)
    assert mailbox.detail == "2 hard bounces in the last 20 sends (10.0%, threshold 5.0%)"


def test_domain_rate_sums_its_mailboxes(engine: Engine) -> None:
    log(engine, SENDER, delivered=14, hard=1)  # 15 sends each: too few for a mailbox verdict
    log(engine, OTHER, delivered=14, hard=1)
    log(engine, "carl@notsender.test", delivered=50)  # another domain ending in the same letters

    async def scenario(guard: ReputationGuard) -> tuple[list[SenderPause], list[tuple[str, int, int]]]:
        new = await guard.after_results(OTHER, HARD)
        figures = [(s.name, s.sends, s.hard_bounces) for s in await guard.standing(SENDER)]
        return new, figures

    new, figures = run(engine, scenario)
    assert [(p.scope, p.name) for p in new] == [(PauseScope.DOMAIN, "sender.test")]
    assert new[0].detail == "2 hard bounces in the last 30 sends (6.7%, threshold 5.0%)"
    assert figures == [(SENDER, 15, 1), ("sender.test", 30, 2)]


# --- resuming, manual pauses, the cache --------------------------------------------------------------


def test_resume_forgives_the_old_sends(engine: Engine) -> None:
    log(engine, SENDER, delivered=18, hard=2)

    async def scenario(guard: ReputationGuard) -> None:
        assert len(await guard.after_results(SENDER, HARD)) == 2
        assert await guard.paused(SENDER) is not None
        assert await guard.resume("Anna@Sender.test", by="ops") == 1
        assert await guard.paused(SENDER) is not None  # the domain is still paused
        assert await guard.resume("sender.test", by="ops") == 1
        assert await guard.resume("sender.test", by="ops") == 0
        assert await guard.paused(SENDER) is None
        # The next message is judged on rows written after the resume only: no instant re-pause.
        assert await guard.after_results(SENDER, HARD) == []
        mailbox, domain = await guard.standing(SENDER)
        assert (mailbox.sends, mailbox.paused, domain.sends) == (0, None, 0)
        # New bad sends after the resume do pause again.
        await asyncio.to_thread(log, engine, SENDER, delivered=17, hard=3)
        again = await guard.after_results(SENDER, HARD)
        assert [p.detail for p in again] == ["3 hard bounces in the last 20 sends (15.0%, threshold 5.0%)"] * 2
        history = await guard.pauses(active_only=False)
        assert len(history) == 4
        assert [p.resumed_by for p in history if p.resumed_at is not None] == ["ops", "ops"]
        assert len(await guard.pauses()) == 2

    run(engine, scenario)


def test_manual_pause(engine: Engine) -> None:
    async def scenario(guard: ReputationGuard) -> None:
        pause = await guard.pause("ANNA@sender.test", detail="warming up a new list", by="lena")
        assert (pause.scope, pause.name, pause.trigger) == (PauseScope.MAILBOX, SENDER, "manual")
        assert pause.detail == "Paused by lena: warming up a new list"
        with pytest.raises(AlreadyPaused) as caught:
            await guard.pause(SENDER, detail="again", by="lena")
        assert caught.value.pause.id == pause.id
        assert (await guard.paused(SENDER)) is not None
        assert await guard.paused(OTHER) is None
        domain = await guard.pause("sender.test", detail="DNS move", by="lena")
        assert domain.scope is PauseScope.DOMAIN
        assert (await guard.paused(OTHER)) is not None

    run(engine, scenario)


def test_paused_is_cached_briefly(engine: Engine) -> None:
    other_process = ReputationGuard(engine, ReputationSettings())

    async def scenario(guard: ReputationGuard) -> None:
        assert await guard.paused(SENDER) is None
        await other_process.pause(SENDER, detail="stop", by="ops")
        assert await guard.paused(SENDER) is None  # still the cached answer
        await asyncio.sleep(0.35)
        assert await guard.paused(SENDER) is not None

    run(engine, scenario, cache=0.3)


@pytest.mark.parametrize("name", ["", "not a domain", "anna@", "@sender.test", "an na@sender.test", "localhost"])
def test_names_that_are_neither_address_nor_domain(name: str) -> None:
    with pytest.raises(InvalidSenderName):
        parse_name(name)


def test_names_are_normalised() -> None:
    assert parse_name(" Anna@Sender.TEST ") == (PauseScope.MAILBOX, SENDER)
    assert parse_name("bücher.test.") == (PauseScope.DOMAIN, "xn--bcher-kva.test")
