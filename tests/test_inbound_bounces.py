"""Bounces arriving at the MX: a real Postfix bounce from the corpus (../shared/corpus/bounces/maildir/bsd)
delivered over SMTP to a hosted mailbox is parsed with coldrelay.bounces and linked, by the original
Message-ID, to the message that mailbox queued; the link is a DeliveryLog row. Bounces that answer
nothing we queued, and ordinary mail, are stored and leave no row."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from coldrelay.db import DeliveryLog, create_domain, create_mailbox, session_factory
from coldrelay.dns import Resolver
from coldrelay.mta.checks import AuthenticationStep, BounceStep, QueueHeaderLocator
from coldrelay.mta.checks.bounces import BOUNCE_ATTEMPT, message_id_header
from coldrelay.mta.edge import DatabaseDirectory, start_mx
from coldrelay.mta.queue import MailQueue
from coldrelay.mta.store import MaildirStore
from mx_support import MX_HOSTNAME, LoopThread, RunningMX, make_database, stop

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "bounces" / "maildir" / "bsd"
BOUNCE = CORPUS / "lhost-postfix-05.eml"  # Postfix DSN: 4.1.1 user unknown for kijitora@example.org
OTHER_BOUNCE = CORPUS / "lhost-postfix-14.eml"  # a bounce for a message root@2jo.example.jp sent
SENDER = "shironeko@example.co.jp"  # the bounce's addresser, here one of our mailboxes
ORIGINAL_ID = "FFFFFFFF.0000000@example.co.jp"

pytestmark = pytest.mark.skipif(not BOUNCE.is_file(), reason="the shared bounce corpus is not checked out")


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def original(message_id: str, rcpt: str = "kijitora@example.org") -> bytes:
    return crlf(
        f"Message-ID: <{message_id}>\nFrom: Shironeko <{SENDER}>\nTo: {rcpt}\nSubject: Nyaaaaaaaaaaaaaaan\n\nNyaan\n".encode()
    )


@dataclass
class Setup:
    mx: RunningMX
    engine: Any
    queue: MailQueue
    step: BounceStep
    queued: str  # the queue id of the message the corpus bounce answers
    decoy: str  # same sender and recipient, another Message-ID

    def log_rows(self) -> list[DeliveryLog]:
        with Session(self.engine) as session:
            return list(session.scalars(select(DeliveryLog).order_by(DeliveryLog.id)))


@pytest.fixture
def setup(tmp_path: Path, resolver: Resolver) -> Iterator[Setup]:
    engine = make_database(tmp_path)
    with session_factory(engine)() as session:
        create_domain(session, "example.co.jp")
        create_mailbox(session, SENDER, "a long enough password")
        session.commit()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    loop = LoopThread()
    queue = MailQueue(engine, tmp_path / "spool")
    decoy = loop.run(queue.enqueue(SENDER, ["kijitora@example.org"], original("another.1@example.co.jp")))
    queued = loop.run(queue.enqueue(SENDER, ["kijitora@example.org", "mike@example.org"], original(ORIGINAL_ID)))
    step = BounceStep(engine, QueueHeaderLocator(queue))
    server = loop.run(
        start_mx(
            "127.0.0.1",
            0,
            DatabaseDirectory(session_factory(engine)),
            MaildirStore(data_dir),
            hostname=MX_HOSTNAME,
            pipeline=[AuthenticationStep(resolver, MX_HOSTNAME), step],
        )
    )
    running = RunningMX(loop, server, data_dir)
    yield Setup(running, engine, queue, step, queued, decoy)
    loop.run(queue.close())
    stop(running)


def deliver(port: int, data: bytes, rcpt: str = SENDER, sender: str = "") -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="v1.example.com", timeout=20) as client:
        client.sendmail(sender, [rcpt], crlf(data))


def test_corpus_bounce_delivered_to_the_mx_is_linked_and_logged(setup: Setup) -> None:
    deliver(setup.mx.port, BOUNCE.read_bytes())
    [stored] = setup.mx.delivered(SENDER)  # the mailbox still gets the bounce, checked like any mail
    assert b"Authentication-Results: mx.hosted.test;\n" in stored and b"Undelivered Mail Returned to Sender" in stored
    [row] = setup.log_rows()
    assert row.message_id == setup.queued
    assert (row.recipient, row.enhanced_code, row.reason, row.attempt) == (
        "kijitora@example.org",
        "4.1.1",
        "userunknown",
        BOUNCE_ATTEMPT,
    )
    assert row.article == "postfix-550-5-1-1-user-unknown-in-recipient-table"
    assert row.reply_text is not None and "User unknown in virtual alias table" in row.reply_text
    assert row.remote_host == "excalibur.example.org"


def test_link_returns_the_queued_message_each_record_answers(setup: Setup) -> None:
    [link] = setup.mx.loop.run(setup.step.link(crlf(BOUNCE.read_bytes()), [SENDER]))
    assert (link.queue_id, link.record.message_id, link.record.recipient) == (setup.queued, ORIGINAL_ID, "kijitora@example.org")
    assert link.log_id == setup.log_rows()[0].id


def test_bounce_for_a_message_we_did_not_queue_is_stored_but_not_linked(setup: Setup) -> None:
    [link] = setup.mx.loop.run(setup.step.link(crlf(OTHER_BOUNCE.read_bytes()), [SENDER]))
    assert link.queue_id is None and link.log_id is None
    deliver(setup.mx.port, OTHER_BOUNCE.read_bytes())
    assert len(setup.mx.delivered(SENDER)) == 1
    assert setup.log_rows() == []


def test_bounce_is_linked_only_to_messages_of_the_mailbox_it_arrived_for(setup: Setup) -> None:
    # alice queued a message with the same Message-ID to the same recipient
    alice_id = setup.mx.loop.run(setup.queue.enqueue("alice@hosted.test", ["kijitora@example.org"], original(ORIGINAL_ID)))
    bounce = crlf(BOUNCE.read_bytes())
    [to_alice] = setup.mx.loop.run(setup.step.link(bounce, ["alice@hosted.test"]))
    [to_shironeko] = setup.mx.loop.run(setup.step.link(bounce, [SENDER]))
    [to_bob] = setup.mx.loop.run(setup.step.link(bounce, ["bob@hosted.test"]))  # it names shironeko; bob sent nothing
    assert (to_alice.queue_id, to_shironeko.queue_id, to_bob.queue_id) == (alice_id, setup.queued, None)
    assert [row.message_id for row in setup.log_rows()] == [alice_id, setup.queued]


def test_ordinary_mail_gives_no_records(setup: Setup) -> None:
    assert setup.mx.loop.run(setup.step.link(original("hello.1@example.net", rcpt=SENDER), [SENDER])) == []
    deliver(setup.mx.port, original("hello.2@example.net", rcpt=SENDER), sender="friend@example.net")
    assert len(setup.mx.delivered(SENDER)) == 1 and setup.log_rows() == []


def test_message_id_header_reading() -> None:
    assert message_id_header(b"Subject: x\r\nMessage-Id:\r\n <a.b@c>\r\n\r\nMessage-ID: <body@x>\r\n") == "a.b@c"
    assert message_id_header(b"Subject: x\r\n\r\n") == ""


def test_our_own_dsn_arriving_at_the_mx_is_not_linked_twice() -> None:
    """A delivery-only node mails its DSNs to the MX; the attempt is already logged, so no second row."""
    import asyncio as _asyncio
    from datetime import UTC, datetime

    from coldrelay.bounces import parse as parse_bounce
    from coldrelay.errors import explain as _explain
    from coldrelay.mta.checks.bounces import BounceStep
    from coldrelay.mta.delivery.dsn import FailedRecipient, build_dsn

    dsn = build_dsn(
        reporting_mta="box.hosted.test",
        original_sender="anna@hosted.test",
        queue_id="q1",
        arrival_date=datetime.now(UTC),
        original_message=b"Subject: hi\r\nMessage-ID: <m1@hosted.test>\r\n\r\nbody\r\n",
        failures=[FailedRecipient("bob@x.test", "550 5.1.1 no such user", None, _explain("550 5.1.1 no such user"))],
    )
    assert [r.recipient for r in parse_bounce(dsn)] == ["bob@x.test"]  # it is a bounce a parser would link

    class EveryMessageMatches:  # a stub locator: the skip must happen before any lookup
        async def locate(self, record: object, mailboxes: object) -> str:
            raise AssertionError("our own DSN was looked up")

    step = BounceStep(engine=None, locator=EveryMessageMatches())  # type: ignore[arg-type]
    assert _asyncio.run(step.link(dsn, ["anna@hosted.test"])) == []
