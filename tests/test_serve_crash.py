"""The crash test of the whole mail host: `coldrelay serve` as a process takes concurrent submissions over
STARTTLS + AUTH and is killed with SIGKILL part-way. Every message that got its 250 must be in the queue
exactly once, readable and intact, no row may point at a missing spool file, and serve must come back up
on the same data directory with the queue as it was (tests/test_queue_crash.py does the same for the
queue alone)."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import ssl
import threading
import time
import uuid
from pathlib import Path

from coldrelay.db import create_engine, create_mailbox, session_factory
from coldrelay.mta.queue import MailQueue, QueueEntry, QueueState
from conftest import MAILBOX, PASSWORD, ServeHost

MESSAGES = 60
SESSIONS = 12  # concurrent submission sessions, each sending MESSAGES // SESSIONS in turn
KILL_AFTER = MESSAGES // 2  # acknowledged messages before the SIGKILL
RECIPIENT = "lead@elsewhere.example"
# Submission serialises each mailbox's enqueues (its daily cap), so several senders are what puts
# several messages into one group commit at the moment of the kill.
SENDERS = [MAILBOX, "bo@hosted.test", "cy@hosted.test", "di@hosted.test"]


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the self-signed certificate serve made at first start
    return context


def _message(sender: str, marker: str) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: {RECIPIENT}\r\nSubject: crash test {marker}\r\n"
        f"Message-ID: <{marker}@hosted.test>\r\n\r\nbody of {marker}\r\n"
    ).encode()


class Submitter:
    """SESSIONS threads submitting MESSAGES messages; ``acked`` holds the markers that got 250 after DATA."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.markers = [uuid.uuid4().hex for _ in range(MESSAGES)]
        self.sender_of = {marker: SENDERS[i % SESSIONS % len(SENDERS)] for i, marker in enumerate(self.markers)}
        self.acked: list[str] = []
        self.errors: list[str] = []  # failures before the kill: the test's own problem, not the crash's
        self.killed = threading.Event()
        self.progress = threading.Condition()
        self.threads = [
            threading.Thread(target=self._session, args=(SENDERS[i % len(SENDERS)], self.markers[i::SESSIONS]), daemon=True)
            for i in range(SESSIONS)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _session(self, sender: str, markers: list[str]) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                client.ehlo("platform.example")
                client.starttls(context=_unverified())
                client.ehlo("platform.example")
                client.login(sender, PASSWORD)
                for marker in markers:
                    client.sendmail(sender, [RECIPIENT], _message(sender, marker))  # returns only after 250 to DATA
                    with self.progress:
                        self.acked.append(marker)
                        self.progress.notify_all()
        except (smtplib.SMTPException, OSError) as exc:
            if not self.killed.is_set():
                self.errors.append(repr(exc))
        finally:
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.progress:
            while len(self.acked) < count and not self.errors and time.monotonic() < deadline:
                self.progress.wait(timeout=0.5)
        assert not self.errors, self.errors
        assert len(self.acked) >= count, f"only {len(self.acked)} messages acknowledged within {timeout} s"

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=15)
            assert not thread.is_alive(), "a submission session hung after the kill"


async def _snapshot(data: Path) -> dict[str, tuple[QueueEntry, bytes]]:
    """Every queued row and its bytes, read through MailQueue over serve's own database and spool directory."""
    engine = create_engine(f"sqlite:///{data / 'coldrelay.db'}")
    try:
        queue = MailQueue(engine, data / "spool")
        entries = await queue.list()
        for entry in entries:  # no row points at a missing spool file
            assert entry.message_path is not None, entry
            assert (data / "spool" / entry.message_path).is_file(), f"row {entry.id} names a missing spool file"
        return {entry.id: (entry, await queue.read(entry.id)) for entry in entries}
    finally:
        engine.dispose()


def _add_senders(data: Path) -> None:
    """The extra mailboxes, straight into serve's database (quicker than one CLI run each), all with a high cap."""
    engine = create_engine(f"sqlite:///{data / 'coldrelay.db'}")
    try:
        with session_factory(engine).begin() as session:
            for address in SENDERS[1:]:
                create_mailbox(session, address, PASSWORD, daily_cap=1000)
    finally:
        engine.dispose()


def test_serve_killed_mid_stream_loses_no_acknowledged_message(serve_host: ServeHost) -> None:
    _add_senders(serve_host.data)
    with (serve_host.data / "coldrelay.toml").open("a", encoding="utf-8") as config:
        config.write("[limits]\ndaily_cap = 1000\n")  # anna's cap is the default (50): raise it for the stream
    # No delivery workers: this test is about what acceptance makes durable, so the queue must stay as the edge left it.
    served = serve_host.start("--no-delivery")
    submitter = Submitter(served.submission)
    submitter.start()
    submitter.wait_for(KILL_AFTER, timeout=20)
    submitter.killed.set()
    os.kill(served.process.pid, signal.SIGKILL)  # mid-stream: other sessions are in DATA, signing or committing
    assert served.process.wait(timeout=10) == -signal.SIGKILL
    submitter.join()
    acked = list(submitter.acked)
    assert KILL_AFTER <= len(acked) < MESSAGES, f"{len(acked)} acknowledged: the kill was not part-way"
    assert len(set(acked)) == len(acked)

    queued = asyncio.run(_snapshot(serve_host.data))
    for marker in submitter.markers:  # each message at most once, an acknowledged one exactly once, intact
        holding = [(entry, data) for entry, data in queued.values() if marker.encode() in data]
        assert len(holding) <= 1, f"{marker} is queued {len(holding)} times"
        assert holding or marker not in acked, f"{marker} got 250 but is not in the queue"
        for entry, data in holding:
            sender = submitter.sender_of[marker]
            assert (entry.sender, entry.recipients, entry.state) == (sender, [RECIPIENT], QueueState.QUEUED)
            assert data.startswith(b"DKIM-Signature: ")
            assert data.endswith(f"\r\n\r\nbody of {marker}\r\n".encode())
    assert len(queued) >= len(acked)

    # Restart on the same data directory: it comes up (start waits for the web page) and the queue is as it was.
    restarted = serve_host.start("--no-delivery")
    assert asyncio.run(_snapshot(serve_host.data)) == queued
    with smtplib.SMTP("127.0.0.1", restarted.submission, timeout=10) as client:
        client.starttls(context=_unverified())
        client.login(MAILBOX, PASSWORD)
        client.sendmail(MAILBOX, [RECIPIENT], _message(MAILBOX, uuid.uuid4().hex))
    assert len(asyncio.run(_snapshot(serve_host.data))) == len(queued) + 1
