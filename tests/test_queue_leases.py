"""Several delivery nodes on one queue: concurrent lessors never take the same message, and on
PostgreSQL a lessor skips rows another transaction has locked instead of waiting for them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from coldrelay.db import MessageState, QueuedMessage, create_engine
from coldrelay.mta.queue import MailQueue, QueueState

pytest_plugins = ["helpers.queue_db"]

MESSAGE = b"Subject: lease\r\n\r\nbody\r\n"


async def _fill(url: str, spool: Path, count: int) -> list[str]:
    engine = create_engine(url)
    try:
        async with MailQueue(engine, spool) as queue:
            return list(await asyncio.gather(*(queue.enqueue("a@example.com", ["b@example.net"], MESSAGE) for _ in range(count))))
    finally:
        engine.dispose()


def _lessor(url: str, spool: Path, owner: str, taken: list[str], start: threading.Barrier, errors: list[BaseException]) -> None:
    """One delivery node: its own engine (own connections), leasing small batches until the queue is empty."""

    async def loop() -> None:
        engine = create_engine(url)
        try:
            queue = MailQueue(engine, spool)
            start.wait()
            empty_rounds = 0
            while empty_rounds < 3:
                batch = await queue.lease(owner, limit=3, lease_seconds=60)
                if not batch:
                    empty_rounds += 1
                    await asyncio.sleep(0.01)
                    continue
                empty_rounds = 0
                for message in batch:
                    taken.append(message.id)
                    await queue.mark_delivered(message.id, owner)
        finally:
            engine.dispose()

    try:
        asyncio.run(loop())
    except BaseException as exc:
        errors.append(exc)


@pytest.mark.parametrize("lessors", [2, 4])
def test_concurrent_lessors_never_share_a_message(queue_db_url: str, tmp_path: Path, lessors: int) -> None:
    spool = tmp_path / "spool"
    ids = asyncio.run(_fill(queue_db_url, spool, 240))
    taken: dict[str, list[str]] = {f"node{i}": [] for i in range(lessors)}
    errors: list[BaseException] = []
    start = threading.Barrier(lessors)
    threads = [
        threading.Thread(target=_lessor, args=(queue_db_url, spool, owner, got, start, errors)) for owner, got in taken.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    everything = [message_id for got in taken.values() for message_id in got]
    duplicates = [message_id for message_id, seen in Counter(everything).items() if seen > 1]
    assert duplicates == []
    assert sorted(everything) == sorted(ids)
    assert sum(1 for got in taken.values() if got) >= 2, "one lessor took everything: no concurrency was tested"
    engine = create_engine(queue_db_url)
    with engine.connect() as connection:
        states = set(connection.execute(select(QueuedMessage.state)).scalars())
    engine.dispose()
    assert states == {MessageState.DELIVERED}


def test_postgresql_lessor_skips_locked_rows_without_waiting(queue_pg_url: str, tmp_path: Path) -> None:
    """Another node is mid-lease on the oldest rows (its transaction holds their locks): SKIP LOCKED."""
    spool = tmp_path / "spool"

    async def fill() -> list[str]:
        engine = create_engine(queue_pg_url)
        try:
            async with MailQueue(engine, spool, commit_window=0) as queue:
                return [await queue.enqueue("a@example.com", ["b@example.net"], MESSAGE) for _ in range(6)]
        finally:
            engine.dispose()

    ids = asyncio.run(fill())
    other_node: Engine = create_engine(queue_pg_url)
    engine = create_engine(queue_pg_url)
    try:
        with other_node.begin() as locker:
            locked = set(
                locker.execute(
                    text("SELECT id FROM queued_messages ORDER BY next_attempt_at LIMIT 3 FOR UPDATE"),
                ).scalars()
            )
            assert locked == set(ids[:3])

            async def lease() -> tuple[list[str], float]:
                queue = MailQueue(engine, spool)
                began = time.monotonic()
                leased = await queue.lease("node2", limit=10)
                return [m.id for m in leased], time.monotonic() - began

            got, took = asyncio.run(lease())
            assert sorted(got) == sorted(ids[3:])
            assert took < 2.0  # did not wait for the other transaction
        # the lock is gone: the rest is leasable now

        async def rest() -> list[str]:
            queue = MailQueue(engine, spool)
            assert {e.id for e in await queue.list(QueueState.LEASED)} == set(ids[3:])
            return [m.id for m in await queue.lease("node3", limit=10)]

        assert sorted(asyncio.run(rest())) == sorted(ids[:3])
    finally:
        engine.dispose()
        other_node.dispose()
