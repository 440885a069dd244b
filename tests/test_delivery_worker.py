"""The delivery worker end to end: real queue, real SMTP servers on loopback as the recipients' MX
hosts (through [transports] and through the loopback DNS zone), the DSN in the sender's Maildir,
the delivery log's rows, and the reputation guard pausing and resuming a sender."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import select

from coldrelay.config import Settings, load_settings
from coldrelay.db import (
    DeliveryLog,
    DeliveryOutcome,
    PauseScope,
    create_domain,
    create_engine,
    create_mailbox,
    session_factory,
    upgrade_database,
    utcnow,
)
from coldrelay.dns import Resolver
from coldrelay.errors import explain
from coldrelay.mta.delivery.notify import SenderNotifier
from coldrelay.mta.delivery.pool import DeliveryPool
from coldrelay.mta.delivery.reputation import ReputationGuard
from coldrelay.mta.delivery.routing import Router
from coldrelay.mta.delivery.worker import DeliveryWorker
from coldrelay.mta.queue import MailQueue, QueueState
from coldrelay.mta.store.maildir import maildir_path
from helpers.sinks import Behaviour, DropAtData, FirstTempThenAccept, Reply, SinkServer

SENDER = "alice@send.test"
MESSAGE = (
    b"From: Alice <alice@send.test>\r\nTo: bob@sink.test\r\nSubject: Quick question about your hiring\r\n"
    b"Message-ID: <q1@send.test>\r\n\r\nHi Bob,\r\nare you the right person to ask?\r\n"
)


@dataclass
class World:
    settings: Settings
    queue: MailQueue
    worker: DeliveryWorker
    guard: ReputationGuard
    engine: Any

    async def enqueue(self, *recipients: str, sender: str = SENDER, data: bytes = MESSAGE) -> str:
        return await self.queue.enqueue(sender, list(recipients), data)

    async def drain(self) -> None:
        """Lease and deliver until nothing is due."""
        while batch := await self.queue.lease(self.worker.owner, limit=20):
            await asyncio.gather(*(self.worker.deliver(message) for message in batch))

    def log(self) -> list[DeliveryLog]:
        with session_factory(self.engine)() as session:
            return list(session.scalars(select(DeliveryLog).order_by(DeliveryLog.id)))

    def dsns(self, address: str = SENDER) -> list[email.message.EmailMessage]:
        new = maildir_path(self.settings.data_dir, address) / "new"
        if not new.exists():
            return []
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in sorted(new.iterdir())
        ]


def write_settings(data_dir: Path, sink_port: int, extra: str = "") -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "coldrelay.toml").write_text(
        'hostname = "box.send.test"\n'
        "[delivery]\n"
        'retry_schedule = ["1m", "5m"]\n'
        "[transports]\n"
        f'"sink.test" = "127.0.0.1:{sink_port}"\n'
        f'"other-sink.test" = "127.0.0.1:{sink_port}"\n' + extra,
        encoding="utf-8",
    )
    return load_settings(data_dir)


@pytest.fixture
def make_world(tmp_path: Path, resolver: Resolver) -> Iterator[Any]:
    made: list[tuple[World, DeliveryPool]] = []

    async def make(sink: SinkServer, *, extra: str = "", tls_context: Any = None, port_override: int | None = None) -> World:
        settings = write_settings(tmp_path / "data", sink.port, extra)
        engine = create_engine(settings.database_url)
        upgrade_database(engine)
        sessions = session_factory(engine)
        with sessions() as session:
            create_domain(session, "send.test")
            create_mailbox(session, SENDER, "a long enough password")
            create_mailbox(session, "carol@send.test", "a long enough password")
            session.commit()
        queue = MailQueue(engine, settings.data_dir / "spool")
        pool = DeliveryPool(
            settings.delivery,
            helo_hostname=settings.hostname,
            resolver=resolver,
            tls_context=tls_context,
            port_override=port_override,
        )
        guard = ReputationGuard(engine, settings.reputation, cache_seconds=0)
        worker = DeliveryWorker(
            queue,
            settings,
            router=Router(resolver, settings.delivery),
            pool=pool,
            notifier=SenderNotifier(data_dir=settings.data_dir, hostname=settings.hostname, sessions=sessions, queue=queue),
            guard=guard,
            owner="test-worker",
        )
        world = World(settings, queue, worker, guard, engine)
        made.append((world, pool))
        return world

    yield make
    for world, _pool in made:
        world.engine.dispose()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_accepted_message_is_delivered_and_logged(make_world: Any) -> None:
    with SinkServer() as sink:

        async def scenario() -> World:
            world = await make_world(sink)
            message_id = await world.enqueue("bob@sink.test")
            await world.drain()
            entry = await world.queue.get(message_id)
            assert entry is not None and entry.state is QueueState.DELIVERED
            await world.worker.pool.close()
            return world

        world = run(scenario())
    assert [m.rcpt_tos for m in sink.messages] == [["bob@sink.test"]]
    assert sink.messages[0].data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")
    (row,) = world.log()
    assert (row.recipient, row.outcome, row.reply_code, row.reason, row.sender) == (
        "bob@sink.test",
        DeliveryOutcome.DELIVERED,
        250,
        "delivered",
        SENDER,
    )
    assert row.attempt == 1 and not row.hard_bounce and row.remote_host
    assert world.dsns() == []


def test_greylisted_then_accepted_on_the_retry(make_world: Any) -> None:
    with SinkServer(Behaviour({"bob": FirstTempThenAccept})) as sink:

        async def scenario() -> World:
            world = await make_world(sink)
            message_id = await world.enqueue("bob@sink.test")
            before = utcnow()
            await world.drain()
            entry = await world.queue.get(message_id)
            assert entry is not None and entry.state is QueueState.DEFERRED
            assert entry.next_attempt_at is not None
            assert timedelta(seconds=55) < entry.next_attempt_at - before < timedelta(seconds=65)  # the schedule's 1m
            await world.drain()  # not due yet: nothing happens
            assert (await world.queue.get(message_id)).state is QueueState.DEFERRED  # type: ignore[union-attr]
            await world.queue.retry(message_id)
            await world.drain()
            entry = await world.queue.get(message_id)
            assert entry is not None and entry.state is QueueState.DELIVERED
            await world.worker.pool.close()
            return world

        world = run(scenario())
    rows = world.log()
    assert [(r.outcome, r.reply_code, r.attempt) for r in rows] == [
        (DeliveryOutcome.DEFERRED, 451, 1),
        (DeliveryOutcome.DELIVERED, 250, 2),
    ]
    greylisted = explain("451 4.7.1 Greylisted, please try again later", remote_host=rows[0].remote_host)
    assert (rows[0].reason, rows[0].article) == (greylisted.reason.value, greylisted.entry.slug if greylisted.entry else None)
    assert rows[0].reply_text == "451 4.7.1 Greylisted, please try again later" and not rows[0].hard_bounce
    assert len(sink.messages) == 1
    assert world.dsns() == []


def test_user_unknown_bounces_with_a_dsn_that_says_what_to_do(make_world: Any) -> None:
    unknown = Reply(550, "5.1.1", "The email account that you tried to reach does not exist. gsmtp")
    with SinkServer(Behaviour({"nobody": unknown})) as sink:

        async def scenario() -> World:
            world = await make_world(sink)
            message_id = await world.enqueue("nobody@sink.test", "bob@sink.test")
            await world.drain()
            entry = await world.queue.get(message_id)
            assert entry is not None and entry.state is QueueState.DELIVERED  # bob got it
            await world.worker.pool.close()
            return world

        world = run(scenario())
    rows = {r.recipient: r for r in world.log()}
    bounced = rows["nobody@sink.test"]
    assert bounced.outcome is DeliveryOutcome.BOUNCED and bounced.hard_bounce
    assert bounced.reason == "userunknown" and bounced.provider == "google" and bounced.article
    assert rows["bob@sink.test"].outcome is DeliveryOutcome.DELIVERED
    (dsn,) = world.dsns()
    assert dsn["To"] == SENDER and dsn.get_content_type() == "multipart/report"
    text = dsn.as_string()
    assert "nobody@sink.test" in text and "5.1.1" in text
    assert "bob@sink.test" not in dsn.get_payload(0).get_content()  # type: ignore[union-attr]
    assert bounced.article in text  # the article the log names is the one the DSN points at
    assert "Quick question about your hiring" in text  # the original headers come back, not the body
    assert "are you the right person" not in text


def test_connection_dropped_mid_data_is_deferred(make_world: Any) -> None:
    with SinkServer(Behaviour({"bob": DropAtData()})) as sink:

        async def scenario() -> World:
            world = await make_world(sink)
            message_id = await world.enqueue("bob@sink.test")
            await world.drain()
            entry = await world.queue.get(message_id)
            assert entry is not None and entry.state is QueueState.DEFERRED
            await world.worker.pool.close()
            return world

        world = run(scenario())
    (row,) = world.log()
    assert row.outcome is DeliveryOutcome.DEFERRED and 400 <= (row.reply_code or 0) < 500
    assert world.dsns() == []


def test_starttls_is_used_when_offered(make_world: Any) -> None:
    ca = trustme.CA()
    with SinkServer(tls=ca.issue_cert("mx.sink.test")) as sink:

        async def scenario() -> World:
            world = await make_world(sink)
            await world.enqueue("bob@sink.test")
            await world.drain()
            await world.worker.pool.close()
            return world

        world = run(scenario())
    assert sink.messages[0].tls_version in ("TLSv1.2", "TLSv1.3")
    (row,) = world.log()
    assert row.tls_version == sink.messages[0].tls_version


def test_null_mx_fails_at_once_without_a_connection(make_world: Any) -> None:
    with SinkServer() as sink:

        async def scenario() -> World:
            world = await make_world(sink, port_override=sink.port)
            message_id = await world.enqueue("someone@nullmx.deliver.test")
            await world.drain()
            entry = await world.queue.get(message_id)
            assert entry is not None and entry.state is QueueState.BOUNCED
            await world.worker.pool.close()
            return world

        world = run(scenario())
    assert sink.connections == []
    (row,) = world.log()
    assert row.outcome is DeliveryOutcome.BOUNCED and row.reply_code == 556 and row.remote_host is None
    assert len(world.dsns()) == 1


def test_mx_from_dns_is_used_when_no_transport_matches(make_world: Any) -> None:
    with SinkServer() as sink:

        async def scenario() -> World:
            world = await make_world(sink, port_override=sink.port)
            await world.enqueue("bob@normal.deliver.test")
            await world.drain()
            await world.worker.pool.close()
            return world

        world = run(scenario())
    assert [m.rcpt_tos for m in sink.messages] == [["bob@normal.deliver.test"]]
    (row,) = world.log()
    assert row.remote_host == "mx1.deliver.test"


def test_retries_give_up_after_the_configured_age(make_world: Any) -> None:
    with SinkServer(Behaviour({"bob": Reply(451, "4.3.0", "Mailbox temporarily unavailable")})) as sink:

        async def scenario() -> World:
            world = await make_world(sink)
            world.worker.delivery = dataclasses.replace(world.worker.delivery, give_up_after=0.5)
            message_id = await world.enqueue("bob@sink.test")
            await world.drain()
            assert (await world.queue.get(message_id)).state is QueueState.DEFERRED  # type: ignore[union-attr]
            await asyncio.sleep(0.6)
            await world.queue.retry(message_id)
            await world.drain()
            entry = await world.queue.get(message_id)
            assert entry is not None and entry.state is QueueState.BOUNCED
            await world.worker.pool.close()
            return world

        world = run(scenario())
    rows = world.log()
    assert [(r.outcome, r.reason) for r in rows][-1] == (DeliveryOutcome.BOUNCED, "expired")
    assert not rows[-1].hard_bounce  # a soft failure that ran out of time is not a hard bounce
    (dsn,) = world.dsns()
    assert "bob@sink.test" in dsn.as_string()


def test_hard_bounce_rate_pauses_the_mailbox_until_resumed(make_world: Any) -> None:
    unknown = Reply(550, "5.1.1", "Recipient address rejected: User unknown in virtual mailbox table")
    with SinkServer(Behaviour({"gone*": unknown})) as sink:

        async def scenario() -> World:
            world = await make_world(sink, extra="[reputation]\nmin_sends = 10\n")
            # carol's 40 clean sends keep the domain at 2 in 50 (4%); alice's own 2 in 10 (20%) pause her alone
            for number in range(40):
                await world.enqueue(f"fine{number}@sink.test", sender="carol@send.test")
            for number in range(8):
                await world.enqueue(f"ok{number}@sink.test")
            await world.drain()
            await world.enqueue("gone1@sink.test")
            await world.enqueue("gone2@sink.test")
            await world.drain()
            pause = await world.guard.paused(SENDER)
            assert pause is not None and pause.scope is PauseScope.MAILBOX and "2 hard bounces" in pause.detail
            assert await world.guard.paused("carol@send.test") is None  # the domain is not paused
            held_back = await world.enqueue("later@sink.test")
            other = await world.enqueue("later@sink.test", sender="carol@send.test")
            await world.drain()
            assert (await world.queue.get(held_back)).state is QueueState.DEFERRED  # type: ignore[union-attr]
            assert (await world.queue.get(other)).state is QueueState.DELIVERED  # type: ignore[union-attr]
            assert await world.guard.resume(SENDER, by="ops") == 1
            await world.queue.retry(held_back)
            await world.drain()
            assert (await world.queue.get(held_back)).state is QueueState.DELIVERED  # type: ignore[union-attr]
            await world.worker.pool.close()
            return world

        world = run(scenario())
    assert world.worker.stats.postponed == 1
    later = [m for m in sink.messages if m.rcpt_tos == ["later@sink.test"]]
    assert [m.mail_from for m in later] == ["carol@send.test", SENDER]


def test_blocklist_reply_pauses_the_domain(make_world: Any) -> None:
    listed = Reply(554, "5.7.1", "Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org")
    with SinkServer(Behaviour({"*": listed})) as sink:

        async def scenario() -> World:
            world = await make_world(sink)
            await world.enqueue("bob@sink.test")
            await world.drain()
            pause = await world.guard.paused("carol@send.test")
            assert pause is not None and pause.scope is PauseScope.DOMAIN and pause.name == "send.test"
            await world.worker.pool.close()
            return world

        run(scenario())


def test_worker_loop_delivers_everything_and_stops_cleanly(make_world: Any) -> None:
    with SinkServer() as sink:

        async def scenario() -> None:
            world = await make_world(sink)
            ids = [await world.enqueue(f"r{number}@sink.test") for number in range(30)]
            stop = asyncio.Event()
            task = asyncio.create_task(world.worker.run(stop))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                states = {(await world.queue.get(i)).state for i in ids}  # type: ignore[union-attr]
                if states == {QueueState.DELIVERED}:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 10)
            assert states == {QueueState.DELIVERED}
            await world.worker.pool.close()

        run(scenario())
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(f"r{number}@sink.test" for number in range(30))
