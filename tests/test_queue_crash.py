"""THE crash test: an enqueuing process is killed with SIGKILL mid-stream; every message it had
acknowledged (its "250") must be in the queue exactly once with its bytes intact, and no row may
point at a missing spool file. Run on SQLite (spool files) and PostgreSQL (spool files and rows)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from coldrelay.db import QueuedMessage, create_engine
from coldrelay.mta.queue import ContentStore, MailQueue, QueueState

pytest_plugins = ["helpers.queue_db"]

CHILD = Path(__file__).with_name("helpers") / "queue_crash_child.py"
KILL_AFTER = 300  # acknowledged messages before the kill
CONCURRENCY = 24


def _run_and_kill(url: str, spool: Path, content: ContentStore) -> list[tuple[str, str]]:
    """Start the child, read acknowledgements as they come, SIGKILL it part-way, return all it printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), url, str(spool), content.value, str(CONCURRENCY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    buffer = b""
    acknowledged = 0
    deadline = time.monotonic() + 20
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    try:
        while acknowledged < KILL_AFTER:
            if time.monotonic() > deadline or child.poll() is not None:
                err = child.stderr.read().decode() if child.stderr and child.poll() is not None else ""
                pytest.fail(f"the child acknowledged only {acknowledged} messages: {err}")
            if not selector.select(timeout=0.5):
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            buffer += chunk
            acknowledged = buffer.count(b"\n") - 1  # the "ready" line
        os.kill(child.pid, signal.SIGKILL)  # mid-stream: other sessions are between file, fsync and commit
        child.wait(timeout=10)
        buffer += child.stdout.read()  # whatever it printed before dying is still in the pipe
    finally:
        selector.close()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    lines = buffer.split(b"\n")[:-1]  # a line without its newline was not fully printed: not acknowledged
    assert lines[0] == b"ready"
    return [tuple(line.decode().split()) for line in lines[1:]]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("backend", "content"),
    [
        ("sqlite", ContentStore.SPOOL),
        ("sqlite", ContentStore.ROW),
        ("postgresql", ContentStore.SPOOL),
        ("postgresql", ContentStore.ROW),
    ],
)
def test_every_acknowledged_message_survives_kill_9(
    backend: str, content: ContentStore, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from helpers.queue_db import fresh_url

    urls = fresh_url(backend, request, tmp_path)
    url = next(urls)
    spool = tmp_path / "data" / "spool"
    try:
        acknowledged = _run_and_kill(url, spool, content)
        assert len(acknowledged) >= KILL_AFTER
        ids = [message_id for message_id, _ in acknowledged]
        assert [i for i, n in Counter(ids).items() if n > 1] == []

        engine = create_engine(url)  # "restart": a new process view of the same data

        async def check() -> None:
            async with MailQueue(engine, spool, content=content) as queue:
                for message_id, digest in acknowledged:
                    entry = await queue.get(message_id)
                    assert entry is not None, f"acknowledged message {message_id} is not in the queue"
                    assert entry.state is QueueState.QUEUED
                    if content is ContentStore.SPOOL:
                        assert entry.message_path == f"{message_id}.eml"
                    data = await queue.read(message_id)
                    assert hashlib.sha256(data).hexdigest() == digest, f"{message_id} is corrupt"
                rows = await queue.list()
                assert len(rows) >= len(acknowledged)  # commits whose "250" the kill cut off are fine
                for entry in rows:  # no row, acknowledged or not, points at a missing or torn file
                    if entry.message_path is not None:
                        assert (spool / entry.message_path).is_file()
                    await queue.read(entry.id)
                await queue.recover(grace_seconds=0)  # the child is dead: anything unreferenced is a leftover
                if content is ContentStore.SPOOL:
                    assert sorted(p.name for p in spool.iterdir()) == sorted(f"{e.id}.eml" for e in rows)

        asyncio.run(check())
        with engine.connect() as connection:
            in_queue = connection.scalar(select(func.count()).select_from(QueuedMessage).where(QueuedMessage.id.in_(ids)))
        engine.dispose()
        assert in_queue == len(ids)  # exactly once (the id is the primary key; this counts the hits)
    finally:
        urls.close()
