"""A day of cold email, end to end on one machine (issue 8): coldrelay as a real process against a
world of provider-like receivers on loopback, a campaign of 10 mailboxes x 50 messages sent by a
scripted sending platform, checked to the last message.

Runs on SQLite with one `coldrelay serve`, and on the machine's PostgreSQL with the edge and two
`coldrelay serve --role delivery` processes.
"""

from __future__ import annotations

import email
import email.policy
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from coldrelay.db import (
    DeliveryLog,
    LogSource,
    MessageState,
    PauseScope,
    QueuedMessage,
    SenderPause,
    session_factory,
)
from coldrelay.errors import explain
from conftest import database_url
from world.day import SENDING_DOMAINS, Day, DayPlan
from world.platform import Outcome
from world.platform_imap import InboxKind


@pytest.fixture(params=["sqlite", "postgresql"])
def day(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Day]:
    backend = request.param
    url_source = database_url(backend, request, tmp_path, migrate=False)
    url = next(url_source)
    plan = DayPlan(database_url=url if backend == "postgresql" else None, delivery_processes=2 if backend == "postgresql" else 0)
    # A short base: Dovecot's socket paths under <data-dir>/dovecot must stay under 80 characters.
    short = tempfile.TemporaryDirectory(prefix="crday-", dir="/tmp")
    running = Day(Path(short.name) / "day", plan)
    try:
        running.prepare()
        running.start()
        yield running
    finally:
        running.stop()
        for _ in url_source:  # drop the PostgreSQL schema
            pass
        short.cleanup()


def test_a_day_of_cold_email(day: Day) -> None:
    platform = day.send()
    day.settle()
    day.late_events()
    platform.poll_all()
    world = day.world
    assert world is not None
    with session_factory(day.engine)() as session:
        queued = list(session.scalars(select(QueuedMessage)))
        log = list(session.scalars(select(DeliveryLog)))
        pauses = list(session.scalars(select(SenderPause).where(SenderPause.resumed_at.is_(None))))
        contents = {row.id: _message_id(day, row) for row in queued}

    # Nothing lost: every message the platform got a 250 for is in the queue, once, in a known state.
    sent = [record for record in platform.log.records if record.outcome is Outcome.SENT]
    assert len(sent) >= 400, Counter(record.outcome for record in platform.log.records)
    ours = {row.id: row for row in queued if row.sender}  # without our own DSNs (null sender)
    assert sorted(contents[i] for i in ours) == sorted(record.message_id for record in sent)
    states = Counter(row.state for row in ours.values())
    assert (
        sum(states.values())
        == len(sent)
        == (states[MessageState.DELIVERED] + states[MessageState.BOUNCED] + states[MessageState.DEFERRED])
    ), states
    logged = {(row.message_id, row.recipient) for row in log if row.source is LogSource.ATTEMPT}
    for row in ours.values():
        if row.state is MessageState.DEFERRED:
            assert row.next_attempt_at is not None and row.last_error, row.id  # deferred, with its next attempt
        else:
            assert any(message_id == row.id for message_id, _ in logged), row.id
    for row in log:
        if row.source is LogSource.ATTEMPT and row.outcome == "bounced":
            assert row.reason and row.article and row.reply_text, row.recipient  # diagnosed, with its article

    # The delivery log says exactly what the world answered, by reason and provider.
    assert day.log_counts() == world.ledger.expected_reasons()
    deferred_log = Counter(
        (r.reason, r.provider) for r in log if r.source is LogSource.ATTEMPT and r.outcome == "deferred" and r.sender
    )
    deferred_world = Counter(
        (explain(v.reply, remote_host=v.mx_host).reason.value, explain(v.reply, remote_host=v.mx_host).provider)
        for v in world.ledger.verdicts
        if not v.final
    )
    assert deferred_log == deferred_world
    assert deferred_world, "the day had no greylisting or rate limiting: the script did not run"

    # Every late bounce was parsed and linked to the message it answers.
    bounces = [e for e in world.ledger.events if e.kind == "bounce"]
    bounce_rows = [r for r in log if r.source is LogSource.BOUNCE]
    assert bounces and len(bounce_rows) == len(bounces)
    assert sorted(_bare(contents[r.message_id]) for r in bounce_rows) == sorted(_bare(e.answers_message_id) for e in bounces)

    # Replies and out-of-office answers are in the right mailboxes over IMAP, linked to what they answer.
    for event in world.ledger.events:
        if event.kind in ("reply", "auto-reply"):
            items = platform.inboxes[event.to]
            kind = InboxKind.REPLY if event.kind == "reply" else InboxKind.AUTO_REPLY
            linked = {item.linked_id for item in items if item.kind is kind}
            assert _bare(event.answers_message_id) in {_bare(i) for i in linked if i}, (event, items)

    # The mailbox whose list was 10% unknown users was paused by the reputation guard, and only it.
    assert [(p.scope, p.name) for p in pauses] == [(PauseScope.MAILBOX, day.bad_mailbox)], [(p.scope, p.name) for p in pauses]

    # The sending domains' DNS is complete as coldrelay planned it.
    for domain in SENDING_DOMAINS:
        day.cli("domain", "verify", domain, "--nameserver", world.dns_address)


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>").lower()


def _message_id(day: Day, row: QueuedMessage) -> str:
    """The Message-ID header of a queued message (from the row or its spool file)."""
    data = row.message_blob if row.message_blob is not None else (day.data / "spool" / str(row.message_path)).read_bytes()
    headers = email.message_from_bytes(bytes(data).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", policy=email.policy.default)
    return str(headers.get("Message-ID", "")).strip()
