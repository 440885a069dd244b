"""Maildir delivery: the file lands whole in new/ with Return-Path and Received added, after an fsync of the file
and of new/; concurrent deliveries get distinct names; and the MX says 250 only once the store has finished."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coldrelay.mta.store import InboundMessage, MaildirStore, deliver_to_maildir, maildir_path
from coldrelay.mta.store.maildir import UnsafeAddress, unique_name
from mx_support import RawClient, start, stop, transaction

HOST = "mx.hosted.test"


def message(content: bytes = b"Subject: hi\r\n\r\nbody\r\n", sender: str = "sender@example.net") -> InboundMessage:
    return InboundMessage(
        sender=sender,
        recipients=("alice@hosted.test",),
        content=content,
        peer_ip="192.0.2.7",
        helo="client.example",
        received_at=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        queue_id="0123456789abcdef",
    )


def test_delivery_lands_in_new_with_trace_headers(tmp_path: Path) -> None:
    path = deliver_to_maildir(tmp_path, "alice@hosted.test", message(), hostname=HOST)
    root = tmp_path / "mail" / "hosted.test" / "alice" / "Maildir"
    assert path.parent == root / "new"
    assert sorted(p.name for p in root.iterdir()) == ["cur", "new", "tmp"]
    assert list((root / "tmp").iterdir()) == [] and list((root / "cur").iterdir()) == []
    assert path.read_bytes() == (
        b"Return-Path: <sender@example.net>\n"
        b"Received: from client.example ([192.0.2.7])\n"
        b"\tby mx.hosted.test (coldrelay) with ESMTP id 0123456789abcdef\n"
        b"\tfor <alice@hosted.test>; Mon, 06 May 2024 07:08:09 +0000\n"
        b"Subject: hi\n\nbody\n"
    )
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "mail").stat().st_mode & 0o777 == 0o700


def test_null_sender_and_hostile_helo_are_written_safely(tmp_path: Path) -> None:
    odd = InboundMessage(
        sender="",
        recipients=("alice@hosted.test",),
        content=b"x\r\n",
        peer_ip="192.0.2.7",
        helo="evil\rInjected: yes",
    )
    text = deliver_to_maildir(tmp_path, "alice@hosted.test", odd, hostname=HOST).read_bytes()
    assert text.startswith(b"Return-Path: <>\nReceived: from evil_Injected:_yes ([192.0.2.7])\n")
    assert b"\r" not in text


def test_fsync_of_file_then_new_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    root = tmp_path / "mail" / "hosted.test" / "alice" / "Maildir"
    first = deliver_to_maildir(tmp_path, "alice@hosted.test", message(), hostname=HOST)
    # First delivery: each new directory's parent, then the file (still in tmp/), then new/.
    assert synced[-2:] == [str(root / "tmp" / first.name), str(root / "new")]
    for created in (tmp_path / "mail", root.parent.parent, root.parent, root):
        assert str(created.parent) in synced
    synced.clear()
    second = deliver_to_maildir(tmp_path, "alice@hosted.test", message(), hostname=HOST)
    assert synced == [str(root / "tmp" / second.name), str(root / "new")]


def test_failed_fsync_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deliver_to_maildir(tmp_path, "alice@hosted.test", message(), hostname=HOST)  # the directories exist

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        deliver_to_maildir(tmp_path, "alice@hosted.test", message(), hostname=HOST)
    root = tmp_path / "mail" / "hosted.test" / "alice" / "Maildir"
    assert list((root / "tmp").iterdir()) == []
    assert len(list((root / "new").iterdir())) == 1


def test_concurrent_deliveries_get_unique_names(tmp_path: Path) -> None:
    count = 64

    def deliver(index: int) -> Path:
        return deliver_to_maildir(tmp_path, "alice@hosted.test", message(f"Subject: {index}\r\n\r\n".encode()), hostname=HOST)

    with ThreadPoolExecutor(max_workers=16) as pool:
        paths = list(pool.map(deliver, range(count)))
    assert len({p.name for p in paths}) == count
    new = tmp_path / "mail" / "hosted.test" / "alice" / "Maildir" / "new"
    subjects = sorted(int(p.read_bytes().split(b"Subject: ")[1].split(b"\n")[0]) for p in new.iterdir())
    assert subjects == list(range(count))


def test_unique_name_shape_and_escaping() -> None:
    name = unique_name("box/one:two")
    assert re.fullmatch(r"\d+\.M\d+P\d+Q\d+R[0-9a-f]{16}\.box\\057one\\072two", name)
    assert unique_name("h") != unique_name("h")


@pytest.mark.parametrize(
    "address",
    ["../x@hosted.test", "a/b@hosted.test", "x@../etc", ".x@hosted.test", "x@hosted", "x", "x@hosted.test/..", "A@hosted.test"],
)
def test_maildir_path_refuses_what_is_not_a_mailbox(tmp_path: Path, address: str) -> None:
    with pytest.raises(UnsafeAddress):
        maildir_path(tmp_path, address)


def test_store_writes_one_copy_per_mailbox(tmp_path: Path) -> None:
    both = InboundMessage(
        sender="s@example.net",
        recipients=("alice@hosted.test", "bob@hosted.test", "alice@hosted.test"),
        content=b"Subject: x\r\n\r\ny\r\n",
        peer_ip="192.0.2.7",
        helo="client.example",
    )
    asyncio.run(MaildirStore(tmp_path).store(both, hostname=HOST))
    alice = list((tmp_path / "mail" / "hosted.test" / "alice" / "Maildir" / "new").iterdir())
    bob = list((tmp_path / "mail" / "hosted.test" / "bob" / "Maildir" / "new").iterdir())
    assert (len(alice), len(bob)) == (1, 1)
    assert b"\tfor <bob@hosted.test>; " in bob[0].read_bytes()


# --- the MX answers 250 only after the store ----------------------------------------------------------------------


class GatedStore:
    """The Maildir store behind a gate the test opens: shows when the MX replies relative to the store."""

    def __init__(self, data_dir: Path) -> None:
        self.inner = MaildirStore(data_dir)
        self.gate = threading.Event()
        self.fail = False

    async def store(self, message: InboundMessage, *, hostname: str) -> None:
        await asyncio.to_thread(self.gate.wait, 10)
        if self.fail:
            raise OSError(28, "No space left on device")
        await self.inner.store(message, hostname=hostname)


def test_mx_replies_250_only_after_the_store_committed(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "data")
    mx = start(tmp_path, store=store)
    try:
        client = transaction(mx.port)
        assert client.command("DATA") == "354 End data with <CR><LF>.<CR><LF>"
        client.send(b"Subject: durable\r\n\r\nx\r\n.\r\n")
        client.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            client.reply()  # no answer while the store has not finished
        assert mx.delivered("alice@hosted.test") == []
        store.gate.set()
        client.sock.settimeout(10)
        assert client.reply() == "250 2.0.0 Message accepted for delivery"
        assert len(mx.delivered("alice@hosted.test")) == 1
        client.close()
    finally:
        stop(mx)


def test_mx_store_failure_is_a_451_and_no_250(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "data")
    store.fail = True
    store.gate.set()
    mx = start(tmp_path, store=store)
    try:
        client = transaction(mx.port)
        client.command("DATA")
        client.send(b"Subject: lost disk\r\n\r\nx\r\n.\r\n")
        assert client.reply() == "451 4.3.0 Temporary failure storing the message, try again later"
        assert client.command("QUIT") == "221 2.0.0 Bye"
        client.close()
        assert mx.all_stored() == []
    finally:
        stop(mx)


def test_raw_client_helper_sees_greeting(tmp_path: Path) -> None:
    mx = start(tmp_path)
    try:
        client = RawClient(mx.port)
        assert client.reply() == "220 mx.hosted.test ESMTP coldrelay"
        client.close()
    finally:
        stop(mx)
