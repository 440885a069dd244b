"""The durable queue on SQLite and PostgreSQL: states and transitions, lease owners, expiry and
quarantine, group commit, retry/flush/delete, spool files and crash leftovers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine, func, select

from coldrelay.db import QueuedMessage, create_engine, utcnow
from coldrelay.mta.queue import (
    ContentStore,
    LeaseLost,
    MailQueue,
    QueueClosed,
    QueueState,
    Released,
    UnknownMessage,
    WrongState,
)

pytest_plugins = ["helpers.queue_db"]

T = TypeVar("T")
MESSAGE = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


def run(scenario: Callable[[MailQueue], Awaitable[T]], engine: Engine, spool: Path, **options: object) -> T:
    """Run one async scenario against a fresh MailQueue, closing it afterwards."""

    async def main() -> T:
        async with MailQueue(engine, spool, **options) as queue:  # type: ignore[arg-type]
            return await scenario(queue)

    return asyncio.run(main())


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "data" / "spool"


def test_enqueue_stores_row_and_bytes(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        message_id = await queue.enqueue("a@example.com", ["b@example.net", "c@example.org"], MESSAGE)
        entry = await queue.get(message_id)
        assert entry is not None
        assert entry.state is QueueState.QUEUED
        assert entry.sender == "a@example.com"
        assert entry.recipients == ["b@example.net", "c@example.org"]
        assert entry.attempts == 0
        assert entry.lease_owner is None
        assert entry.next_attempt_at is not None and entry.next_attempt_at <= utcnow()
        assert await queue.read(message_id) == MESSAGE
        if queue.content is ContentStore.SPOOL:
            assert entry.message_path == f"{message_id}.eml"
            assert (spool / entry.message_path).read_bytes() == MESSAGE
            assert not [p for p in spool.iterdir() if p.name.startswith(".")]  # no temporary left
        else:
            assert entry.message_path is None
            assert list(spool.iterdir()) == []

    run(scenario, queue_engine, spool)


def test_content_store_defaults_by_backend(queue_engine: Engine, spool: Path) -> None:
    queue = MailQueue(queue_engine, spool)
    expected = ContentStore.ROW if queue_engine.dialect.name == "postgresql" else ContentStore.SPOOL
    assert queue.content is expected


def test_lease_deliver(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        message_id = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        [leased] = await queue.lease("node1:w1", limit=10, lease_seconds=60)
        assert (leased.id, leased.owner, leased.data, leased.recipients) == (message_id, "node1:w1", MESSAGE, ["b@example.net"])
        assert timedelta(seconds=55) < leased.lease_expires_at - utcnow() <= timedelta(seconds=60)
        entry = await queue.get(message_id)
        assert entry is not None
        assert entry.state is QueueState.LEASED
        assert entry.lease_owner == "node1:w1"
        assert await queue.lease("node1:w2", limit=10) == []  # a leased message is nobody else's
        await queue.mark_delivered(message_id, "node1:w1")
        entry = await queue.get(message_id)
        assert entry is not None
        assert entry.state is QueueState.DELIVERED
        assert (entry.lease_owner, entry.lease_expires_at) == (None, None)
        assert await queue.lease("node1:w1", limit=10) == []  # final states are never leased again
        with pytest.raises(LeaseLost):
            await queue.mark_delivered(message_id, "node1:w1")  # twice is refused, not silently repeated

    run(scenario, queue_engine, spool)


def test_lease_takes_the_oldest_due_up_to_limit(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        ids = [await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE + bytes([i])) for i in range(5)]
        first = await queue.lease("w1", limit=2)
        assert sorted(m.id for m in first) == sorted(ids[:2])
        rest = await queue.lease("w2", limit=10)
        assert sorted(m.id for m in rest) == sorted(ids[2:])
        assert {m.data for m in rest} == {MESSAGE + bytes([i]) for i in range(2, 5)}
        assert await queue.lease("w1", limit=0) == []
        with pytest.raises(ValueError):
            await queue.lease("", limit=1)

    run(scenario, queue_engine, spool)


def test_every_transition_checks_the_owner(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        message_id = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        await queue.lease("w1")
        with pytest.raises(LeaseLost, match="'w2' does not hold the lease"):
            await queue.mark_delivered(message_id, "w2")
        with pytest.raises(LeaseLost):
            await queue.defer(message_id, "w2", utcnow() + timedelta(minutes=5), "451 4.7.1 try later")
        with pytest.raises(LeaseLost):
            await queue.bounce(message_id, "w2", "550 5.1.1 user unknown")
        entry = await queue.get(message_id)
        assert entry is not None
        assert (entry.state, entry.lease_owner) == (QueueState.LEASED, "w1")
        with pytest.raises(UnknownMessage):
            await queue.mark_delivered("0" * 32, "w1")

    run(scenario, queue_engine, spool)


def test_defer_then_due_again(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        message_id = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        await queue.lease("w1")
        later = utcnow() + timedelta(hours=1)
        await queue.defer(message_id, "w1", later, "421 4.7.0 try again later")
        entry = await queue.get(message_id)
        assert entry is not None
        assert entry.state is QueueState.DEFERRED
        assert entry.next_attempt_at is not None
        assert abs(entry.next_attempt_at - later) < timedelta(milliseconds=1)
        assert entry.lease_owner is None
        assert await queue.lease("w1") == []  # not due yet
        assert [e.id for e in await queue.list("deferred")] == [message_id]
        assert await queue.flush() == 1  # due now
        [leased] = await queue.lease("w2")
        assert leased.id == message_id
        await queue.defer(message_id, "w2", utcnow() - timedelta(seconds=1), "421")  # already due
        [again] = await queue.lease("w3")
        assert again.id == message_id
        with pytest.raises(ValueError, match="aware"):
            await queue.defer(message_id, "w3", utcnow().replace(tzinfo=None), "naive")

    run(scenario, queue_engine, spool)


def test_bounce_is_final(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        message_id = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        await queue.lease("w1")
        await queue.bounce(message_id, "w1", "550 5.1.1 user unknown")
        entry = await queue.get(message_id)
        assert entry is not None and entry.state is QueueState.BOUNCED
        assert [e.id for e in await queue.list(QueueState.BOUNCED)] == [message_id]
        assert await queue.list("queued") == []
        with pytest.raises(WrongState, match="bounced"):
            await queue.retry(message_id)
        assert await queue.lease("w1") == []

    run(scenario, queue_engine, spool)


def test_expired_lease_goes_back_and_the_slow_worker_loses(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        message_id = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        await queue.lease("slow", lease_seconds=0.05)
        assert await queue.release_expired() == Released((), ())  # not expired yet
        await asyncio.sleep(0.1)
        released = await queue.release_expired()
        assert released.requeued == (message_id,)
        assert released.held == ()
        entry = await queue.get(message_id)
        assert entry is not None
        assert (entry.state, entry.attempts, entry.lease_owner) == (QueueState.QUEUED, 1, None)
        [leased] = await queue.lease("fast", lease_seconds=60)
        assert leased.attempts == 1
        with pytest.raises(LeaseLost):
            await queue.mark_delivered(message_id, "slow")  # the dead worker's late result
        await queue.mark_delivered(message_id, "fast")
        assert (await queue.release_expired()).requeued == ()

    run(scenario, queue_engine, spool)


def test_a_message_that_keeps_killing_workers_is_held(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        poison = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        for crash in range(1, 4):
            [leased] = await queue.lease(f"w{crash}", lease_seconds=0.01)
            assert leased.id == poison
            await asyncio.sleep(0.03)
            released = await queue.release_expired()
            if crash < 3:
                assert released == Released((poison,), ())
            else:
                assert released == Released((), (poison,))
        entry = await queue.get(poison)
        assert entry is not None
        assert (entry.state, entry.attempts, entry.next_attempt_at) == (QueueState.HELD, 3, None)
        assert [e.id for e in await queue.list("held")] == [poison]
        assert await queue.list("deferred") == []
        assert await queue.lease("w9") == []
        assert await queue.flush() == 0  # flush does not release held mail
        await queue.retry(poison)  # a person releases it, with a clean count
        entry = await queue.get(poison)
        assert entry is not None
        assert (entry.state, entry.attempts) == (QueueState.QUEUED, 0)
        [leased] = await queue.lease("w9")
        assert leased.id == poison

    run(scenario, queue_engine, spool, max_crashes=3)


def test_default_quarantine_after_five_crashes(queue_engine: Engine, spool: Path) -> None:
    assert MailQueue(queue_engine, spool).max_crashes == 5
    with pytest.raises(ValueError):
        MailQueue(queue_engine, spool, max_crashes=0)


def test_retry_and_delete(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        message_id = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        await queue.lease("w1")
        with pytest.raises(WrongState, match="leased"):
            await queue.retry(message_id)  # a worker holds it
        await queue.defer(message_id, "w1", utcnow() + timedelta(days=1), "451")
        await queue.retry(message_id)
        entry = await queue.get(message_id)
        assert entry is not None and entry.state is QueueState.QUEUED
        assert entry.next_attempt_at is not None and entry.next_attempt_at <= utcnow()
        await queue.delete(message_id)
        assert await queue.get(message_id) is None
        assert list(spool.glob("*.eml")) == []
        with pytest.raises(UnknownMessage):
            await queue.delete(message_id)
        with pytest.raises(UnknownMessage):
            await queue.retry(message_id)
        with pytest.raises(UnknownMessage):
            await queue.read(message_id)

    run(scenario, queue_engine, spool, content=ContentStore.SPOOL)


def test_list_in_order_and_by_state(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        ids = [await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE) for _ in range(3)]
        assert [e.id for e in await queue.list()] == ids
        [leased] = await queue.lease("w1", limit=1)
        assert [e.id for e in await queue.list("leased")] == [leased.id]
        assert len(await queue.list(QueueState.QUEUED)) == 2
        with pytest.raises(ValueError):
            await queue.list("lost")

    run(scenario, queue_engine, spool)


def test_group_commit_shares_commits(queue_engine: Engine, spool: Path) -> None:
    n = 64

    async def scenario(queue: MailQueue) -> tuple[int, int]:
        ids = await asyncio.gather(*(queue.enqueue("a@example.com", ["b@example.net"], MESSAGE) for _ in range(n)))
        assert len(set(ids)) == n
        return queue.stats.commits, queue.stats.largest_batch

    commits, largest = run(scenario, queue_engine, spool)
    assert commits < n / 4, f"{n} concurrent enqueues took {commits} commits"
    assert largest > 1
    with queue_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(QueuedMessage)) == n


def test_one_at_a_time_is_one_commit_each(queue_engine: Engine, spool: Path) -> None:
    """The counter counts real commits: sequential enqueues cannot share one."""

    async def scenario(queue: MailQueue) -> int:
        for _ in range(5):
            await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        return queue.stats.commits

    assert run(scenario, queue_engine, spool, commit_window=0) == 5


def test_max_batch_caps_a_commit(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> int:
        await asyncio.gather(*(queue.enqueue("a@example.com", ["b@example.net"], MESSAGE) for _ in range(20)))
        return queue.stats.largest_batch

    assert run(scenario, queue_engine, spool, max_batch=4) <= 4


def test_enqueue_validation_and_close(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        with pytest.raises(ValueError, match="recipient"):
            await queue.enqueue("a@example.com", [], MESSAGE)
        await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        await queue.close()
        with pytest.raises(QueueClosed):
            await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)

    run(scenario, queue_engine, spool)


def test_close_waits_for_enqueues_in_flight(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        enqueues = [asyncio.ensure_future(queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)) for _ in range(10)]
        await asyncio.sleep(0)  # they are writing their spool files now
        await asyncio.wait_for(queue.close(), timeout=5)
        ids = await asyncio.wait_for(asyncio.gather(*enqueues), timeout=5)
        assert {e.id for e in await queue.list()} == set(ids)

    run(scenario, queue_engine, spool, content=ContentStore.SPOOL)


def test_a_failed_commit_fails_every_enqueue_in_the_batch(tmp_path: Path, spool: Path) -> None:
    """No table (never migrated): the caller gets the error, so the edge answers 4xx, not 250."""
    engine = create_engine(f"sqlite:///{tmp_path}/empty.db")

    async def scenario(queue: MailQueue) -> list[BaseException | str]:
        return await asyncio.gather(
            *(queue.enqueue("a@example.com", ["b@example.net"], MESSAGE) for _ in range(3)), return_exceptions=True
        )

    results = run(scenario, engine, spool)
    engine.dispose()
    assert all(isinstance(r, Exception) and "queued_messages" in str(r) for r in results)


def test_recover_removes_orphans_and_temporaries_only(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        kept = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        orphan = spool / ("f" * 32 + ".eml")  # a crash after the file, before the commit
        orphan.write_bytes(MESSAGE)
        temporary = spool / ("." + "e" * 32 + ".tmp")  # a crash mid-write
        temporary.write_bytes(MESSAGE[:10])
        assert await queue.recover(grace_seconds=3600) == 0  # too young: maybe an enqueue in flight
        old = time.time() - 7200
        for path in (orphan, temporary):
            os.utime(path, (old, old))
        assert await queue.recover(grace_seconds=3600) == 2
        assert sorted(p.name for p in spool.iterdir()) == [f"{kept}.eml"]
        assert await queue.read(kept) == MESSAGE

    run(scenario, queue_engine, spool, content=ContentStore.SPOOL)


def test_an_unreadable_spool_file_is_held_not_delivered(queue_engine: Engine, spool: Path) -> None:
    async def scenario(queue: MailQueue) -> None:
        broken = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        fine = await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE)
        (spool / f"{broken}.eml").unlink()
        assert [m.id for m in await queue.lease("w1")] == [fine]
        entry = await queue.get(broken)
        assert entry is not None and entry.state is QueueState.HELD

    run(scenario, queue_engine, spool, content=ContentStore.SPOOL)
