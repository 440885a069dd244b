"""``MailQueue.complete`` and ``extend_leases``: a try's state change and its log rows land together,
only for the lease holder, and a heartbeat keeps a slow delivery's lease from going to another worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from coldrelay.db import DeliveryLog, DeliveryOutcome, LogSource, MessageState, QueuedMessage, session_factory, utcnow
from coldrelay.mta.queue import Completion, LeaseLost, MailQueue, QueueState

pytest_plugins = ["helpers.queue_db"]

MESSAGE = b"Subject: complete\r\n\r\nbody\r\n"


def _row(recipient: str, outcome: DeliveryOutcome, code: int) -> dict[str, object]:
    return {
        "sender": "a@example.com",
        "recipient": recipient,
        "outcome": outcome,
        "source": LogSource.ATTEMPT,
        "hard_bounce": code >= 500,
        "reply_code": code,
        "reply_text": f"{code} test",
        "attempt": 1,
    }


def test_partial_try_defers_the_rest_and_logs_everything(queue_engine: Engine, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailQueue(queue_engine, tmp_path / "spool") as queue:
            message_id = await queue.enqueue("a@example.com", ["ok@x.test", "later@y.test", "gone@z.test"], MESSAGE)
            (leased,) = await queue.lease("w1", limit=1)
            assert leased.tries == 0 and leased.created_at is not None
            retry_at = utcnow() + timedelta(minutes=5)
            await queue.complete(
                message_id,
                "w1",
                Completion(
                    state=MessageState.DEFERRED,
                    next_attempt_at=retry_at,
                    remaining=["later@y.test"],
                    error="later@y.test: 451 4.7.1 greylisted",
                    log_rows=[
                        _row("ok@x.test", DeliveryOutcome.DELIVERED, 250),
                        _row("later@y.test", DeliveryOutcome.DEFERRED, 451),
                        _row("gone@z.test", DeliveryOutcome.BOUNCED, 550),
                    ],
                ),
            )
            entry = await queue.get(message_id)
            assert entry is not None
            assert entry.state is QueueState.DEFERRED and entry.recipients == ["later@y.test"]
            with session_factory(queue_engine)() as session:
                row = session.get(QueuedMessage, message_id)
                assert row is not None and row.tries == 1 and row.last_error == "later@y.test: 451 4.7.1 greylisted"
                logged = session.scalars(select(DeliveryLog).order_by(DeliveryLog.id)).all()
                assert [(r.recipient, r.outcome, r.message_id) for r in logged] == [
                    ("ok@x.test", DeliveryOutcome.DELIVERED, message_id),
                    ("later@y.test", DeliveryOutcome.DEFERRED, message_id),
                    ("gone@z.test", DeliveryOutcome.BOUNCED, message_id),
                ]

    asyncio.run(scenario())


def test_complete_by_a_worker_that_lost_the_lease_writes_nothing(queue_engine: Engine, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailQueue(queue_engine, tmp_path / "spool") as queue:
            message_id = await queue.enqueue("a@example.com", ["b@x.test"], MESSAGE)
            await queue.lease("w1", limit=1, lease_seconds=0.05)
            await asyncio.sleep(0.1)
            assert (await queue.release_expired()).requeued == (message_id,)
            (again,) = await queue.lease("w2", limit=1)
            with pytest.raises(LeaseLost):
                await queue.complete(
                    message_id,
                    "w1",
                    Completion(state=MessageState.DELIVERED, log_rows=[_row("b@x.test", DeliveryOutcome.DELIVERED, 250)]),
                )
            await queue.complete(
                again.id, "w2", Completion(state=MessageState.BOUNCED, log_rows=[_row("b@x.test", DeliveryOutcome.BOUNCED, 550)])
            )
            with session_factory(queue_engine)() as session:
                outcomes = session.scalars(select(DeliveryLog.outcome)).all()
            assert outcomes == [DeliveryOutcome.BOUNCED]
            entry = await queue.get(message_id)
            assert entry is not None and entry.state is QueueState.BOUNCED

    asyncio.run(scenario())


def test_heartbeat_keeps_a_slow_delivery_leased(queue_engine: Engine, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailQueue(queue_engine, tmp_path / "spool") as queue:
            kept = await queue.enqueue("a@example.com", ["b@x.test"], MESSAGE)
            dropped = await queue.enqueue("a@example.com", ["c@x.test"], MESSAGE)
            await queue.lease("w1", limit=2, lease_seconds=0.3)
            for _ in range(4):
                await asyncio.sleep(0.1)
                assert await queue.extend_leases([kept], "w1", lease_seconds=0.3) == set()
            released = await queue.release_expired()
            assert released.requeued == (dropped,)
            assert await queue.lease("w2", limit=5) != [] and (await queue.get(kept)).lease_owner == "w1"  # type: ignore[union-attr]
            assert await queue.extend_leases([dropped], "w1") == {dropped}  # w2 holds it now

    asyncio.run(scenario())


def test_postponing_a_paused_sender_costs_no_try(queue_engine: Engine, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailQueue(queue_engine, tmp_path / "spool") as queue:
            message_id = await queue.enqueue("a@example.com", ["b@x.test"], MESSAGE)
            await queue.lease("w1", limit=1)
            later = utcnow() + timedelta(minutes=10)
            await queue.complete(
                message_id, "w1", Completion(state=MessageState.DEFERRED, next_attempt_at=later, error="paused", count_try=False)
            )
            with session_factory(queue_engine)() as session:
                row = session.get(QueuedMessage, message_id)
                assert row is not None and row.tries == 0 and row.recipients == ["b@x.test"]

    asyncio.run(scenario())


def test_completion_rejects_impossible_moves(queue_engine: Engine, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailQueue(queue_engine, tmp_path / "spool") as queue:
            message_id = await queue.enqueue("a@example.com", ["b@x.test"], MESSAGE)
            await queue.lease("w1", limit=1)
            with pytest.raises(ValueError, match="next_attempt_at"):
                await queue.complete(message_id, "w1", Completion(state=MessageState.DEFERRED))
            with pytest.raises(ValueError, match="cannot move"):
                await queue.complete(message_id, "w1", Completion(state=MessageState.QUEUED))
            entry = await queue.get(message_id)
            assert entry is not None and entry.state is QueueState.LEASED

    asyncio.run(scenario())
