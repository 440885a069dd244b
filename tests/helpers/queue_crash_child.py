"""The process the crash test kills: a tiny "edge" that enqueues messages concurrently and prints
``<id> <sha256 of the bytes>`` for each one only after ``enqueue`` returned (its "250").

Usage: python queue_crash_child.py DATABASE_URL SPOOL_DIR CONTENT(spool|row) CONCURRENCY
It runs until killed. Every line is flushed at once, so what the parent reads is exactly what
this process had acknowledged.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

from coldrelay.db import create_engine
from coldrelay.mta.queue import ContentStore, MailQueue


async def session(queue: MailQueue, number: int) -> None:
    sequence = 0
    while True:
        sequence += 1
        body = f"session {number} message {sequence}\r\n".encode() * (1 + sequence % 40)
        data = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: crash test\r\n\r\n" + body + os.urandom(16).hex().encode()
        message_id = await queue.enqueue("a@example.com", ["b@example.net"], data)
        sys.stdout.write(f"{message_id} {hashlib.sha256(data).hexdigest()}\n")
        sys.stdout.flush()


async def main(url: str, spool: str, content: str, concurrency: int) -> None:
    engine = create_engine(url)
    queue = MailQueue(engine, Path(spool), content=ContentStore(content))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(session(queue, n) for n in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
