"""Several delivery nodes on one PostgreSQL queue: three `coldrelay serve --role delivery` processes,
each with its own data directory as on its own machine, deliver a full queue to a sink on loopback.
In normal operation every message arrives exactly once; when one node is killed with SIGKILL in the
middle of its batch, the others take its messages once the leases expire and every message arrives
(at least once: the killed node may have finished a transaction it never got to record)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from coldrelay.db import MessageState, QueuedMessage, create_engine
from coldrelay.mta.queue import MailQueue
from conftest import COLDRELAY
from scripted_smtp import free_port

pytest_plugins = ["helpers.queue_db"]

MESSAGE_ID = re.compile(rb"^Message-ID: <([^>]+)>", re.MULTILINE | re.IGNORECASE)


class CountingSink:
    """An SMTP sink on 127.0.0.1 that records the Message-ID of every message it accepts.

    ``delay`` seconds before answering DATA stretches a run so a node can be killed part-way.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[str] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, server_hostname="mx.sink.test")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        match = MESSAGE_ID.search(envelope.original_content or b"")
        with self._lock:
            self.received.append(match.group(1).decode() if match else "?")
        return "250 2.0.0 Ok: queued"

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def __enter__(self) -> CountingSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def node_data_dir(base: Path, number: int, url: str, sink: CountingSink, nameserver: str) -> Path:
    data = base / f"node{number}"
    data.mkdir(mode=0o700)
    (data / "coldrelay.toml").write_text(
        f'database_url = "{url}"\nhostname = "node{number}.send.test"\n'
        f'[dns]\nnameservers = ["{nameserver}"]\n'
        '[delivery]\nlease_seconds = "3s"\npoll_interval = "0.2s"\nconcurrency = 4\nbatch_size = 2\n'
        f'[transports]\n"sink.test" = "127.0.0.1:{sink.port}"\n',
        encoding="utf-8",
    )
    return data


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def start_node(data: Path, started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [str(COLDRELAY), "--data-dir", str(data), "serve", "--role", "delivery"],
        stdin=subprocess.DEVNULL,
        stdout=(data / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    started.append(process)
    return process


def fill_queue(url: str, spool: Path, count: int) -> list[str]:
    async def fill() -> list[str]:
        engine = create_engine(url)
        try:
            async with MailQueue(engine, spool) as queue:
                for number in range(count):
                    data = (
                        f"From: alice@send.test\r\nTo: lead{number}@sink.test\r\nSubject: hello {number}\r\n"
                        f"Message-ID: <m{number}@send.test>\r\n\r\nHello lead {number}\r\n"
                    ).encode()
                    await queue.enqueue("alice@send.test", [f"lead{number}@sink.test"], data)
        finally:
            engine.dispose()
        return [f"m{number}@send.test" for number in range(count)]

    return asyncio.run(fill())


def delivered_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(QueuedMessage).where(QueuedMessage.state == MessageState.DELIVERED)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def wait_until_delivered(url: str, count: int, processes: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while delivered_count(url) < count:
        assert any(p.poll() is None for p in processes), "every delivery node exited"
        assert time.monotonic() < deadline, f"only {delivered_count(url)} of {count} delivered in {timeout} s"
        time.sleep(0.3)


def stop_and_report(process: subprocess.Popen[str], data: Path) -> int:
    """SIGTERM a node; returns how many recipients it says it delivered."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, (data / "serve.log").read_text()
    log = (data / "serve.log").read_text()
    found = re.search(r"stopped after \d+ tries: (\d+) delivered", log)
    assert found, log
    return int(found.group(1))


def test_three_nodes_deliver_every_message_exactly_once(
    queue_pg_url: str, tmp_path: Path, dns_server: Any, nodes: list[subprocess.Popen[str]]
) -> None:
    expected = fill_queue(queue_pg_url, tmp_path / "spool", 150)
    with CountingSink(delay=0.01) as sink:
        dirs = [node_data_dir(tmp_path, n, queue_pg_url, sink, dns_server.address) for n in range(3)]
        for data in dirs:
            start_node(data, nodes)
        wait_until_delivered(queue_pg_url, len(expected), nodes, timeout=90)
        per_node = [stop_and_report(process, data) for process, data in zip(nodes, dirs, strict=True)]
    counts = Counter(sink.received)
    assert sorted(counts) == sorted(expected)
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v > 1}
    assert sum(per_node) == len(expected)
    assert sum(1 for delivered in per_node if delivered) >= 2, per_node  # the work was shared


def test_a_killed_node_loses_nothing(
    queue_pg_url: str, tmp_path: Path, dns_server: Any, nodes: list[subprocess.Popen[str]]
) -> None:
    expected = fill_queue(queue_pg_url, tmp_path / "spool", 90)
    with CountingSink(delay=0.25) as sink:
        dirs = [node_data_dir(tmp_path, n, queue_pg_url, sink, dns_server.address) for n in range(3)]
        for data in dirs:
            start_node(data, nodes)
        deadline = time.monotonic() + 60
        while sink.count() < 15:
            assert time.monotonic() < deadline, "the nodes never got going"
            time.sleep(0.05)
        nodes[0].send_signal(signal.SIGKILL)  # mid-batch: it holds leases on messages in delivery
        assert nodes[0].wait(timeout=10) == -signal.SIGKILL
        assert delivered_count(queue_pg_url) < len(expected), "the kill came too late to be part-way"
        wait_until_delivered(queue_pg_url, len(expected), nodes[1:], timeout=90)
        for process, data in zip(nodes[1:], dirs[1:], strict=True):
            stop_and_report(process, data)
    counts = Counter(sink.received)
    assert sorted(counts) == sorted(expected)  # every message arrived
    duplicated = sum(count - 1 for count in counts.values())
    assert duplicated <= 4 + 2, counts  # at most what the killed node had in flight (concurrency + one batch)
