"""The new user's check with the real `swaks` (Debian package, installed by scripts/system-deps.sh and .ci/run)
against `coldrelay serve` as a process: submission over STARTTLS + AUTH queues a DKIM-signed message, the MX
refuses to relay, AUTH is neither offered nor usable before TLS, and a spoofed sender is refused. Each case
checks swaks' exit code and the server's exact reply in swaks' transcript."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dkim
import pytest

from coldrelay.db import create_engine
from coldrelay.mta.queue import MailQueue, QueueState
from conftest import MAILBOX, PASSWORD, Served, prepare_serve_host
from test_submission import dkim_txt

RECIPIENT = "someone@elsewhere.example"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, dns_server: Any) -> Iterator[Served]:
    """One `coldrelay serve` for the module (conftest's ``served`` starts one per test)."""
    host = prepare_serve_host(tmp_path_factory.mktemp("swaks"), dns_server.address)
    try:
        yield host.start()
    finally:
        host.stop()


@dataclass
class Swaks:
    returncode: int
    transcript: str

    def replies(self) -> list[str]:
        """The server's replies as swaks shows them: ``<-``/``<~`` in clear/TLS, ``<**``/``<~*`` for errors."""
        return [line.split(" ", 1)[1].strip() for line in self.transcript.splitlines() if line.startswith(("<-", "<~", "<*"))]


def swaks(*args: str) -> Swaks:
    binary = shutil.which("swaks")
    if binary is None:
        pytest.fail(
            "swaks is not installed: these tests drive the real binary. Install it with `make system-deps` "
            "(scripts/system-deps.sh) or `apt-get install swaks`; CI installs it in .ci/run.",
            pytrace=False,
        )
    # stdin closed: swaks prompts for anything missing, and a test must not wait for an answer.
    result = subprocess.run(
        [binary, "--helo", "client.example", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return Swaks(result.returncode, result.stdout + result.stderr)


def login(*, tls: bool = True, auth: str = "--auth") -> list[str]:
    return [*(["--tls"] if tls else []), auth, "LOGIN", "--auth-user", MAILBOX, "--auth-password", PASSWORD]


def test_authenticated_submission_over_starttls_queues_a_signed_message(served: Served) -> None:
    marker = f"new-user-check-{uuid.uuid4().hex}"
    sent = swaks(
        "--server", f"127.0.0.1:{served.submission}", *login(), "--from", MAILBOX, "--to", RECIPIENT,
        "--header", f"Subject: {marker}",
    )  # fmt: skip
    assert sent.returncode == 0, sent.transcript
    replies = sent.replies()
    assert "220 2.0.0 Ready to start TLS" in replies
    assert "250-AUTH LOGIN PLAIN" in replies
    assert "235 2.7.0 Authentication successful" in replies
    assert replies[-2:] == ["250 2.0.0 Message accepted for delivery", "221 2.0.0 Bye"]

    engine = create_engine(f"sqlite:///{served.data / 'coldrelay.db'}")
    try:
        queue = MailQueue(engine, served.data / "spool")
        entries = asyncio.run(queue.list())
        contents = {entry.id: asyncio.run(queue.read(entry.id)) for entry in entries}
        [entry] = [entry for entry in entries if marker.encode() in contents[entry.id]]
        assert (entry.sender, entry.recipients, entry.state) == (MAILBOX, [RECIPIENT], QueueState.QUEUED)
        data = contents[entry.id]
        assert data.startswith(b"DKIM-Signature: ") and b"d=hosted.test" in data
        assert dkim.verify(data, dnsfunc=dkim_txt(engine))  # against the domain's key in the database
    finally:
        engine.dispose()


def test_mx_refuses_to_relay(served: Served) -> None:
    refused = swaks("--server", f"127.0.0.1:{served.mx}", "--to", RECIPIENT)
    assert refused.returncode == 24, refused.transcript  # swaks: no RCPTs accepted
    assert "550 5.7.1 Unable to relay" in refused.replies()
    assert "<** 550 5.7.1 Unable to relay" in refused.transcript


def test_auth_without_tls_is_refused(served: Served) -> None:
    server = f"127.0.0.1:{served.submission}"
    required = swaks("--server", server, *login(tls=False), "--from", MAILBOX, "--to", RECIPIENT)
    assert required.returncode == 28, required.transcript  # swaks: error in AUTH transaction
    assert "*** Host did not advertise authentication" in required.transcript
    assert "250-STARTTLS" in required.replies() and not any("AUTH" in reply for reply in required.replies())
    # Told to go on without AUTH, swaks tries to send anyway: MAIL FROM is refused until TLS.
    optional = swaks("--server", server, *login(tls=False, auth="--auth-optional"), "--from", MAILBOX, "--to", RECIPIENT)
    assert optional.returncode == 23, optional.transcript  # swaks: error in MAIL transaction
    assert "530 5.7.0 Must issue a STARTTLS command first" in optional.replies()
    assert "<** 530 5.7.0 Must issue a STARTTLS command first" in optional.transcript


def test_spoofed_sender_is_refused(served: Served) -> None:
    server = f"127.0.0.1:{served.submission}"
    envelope = swaks("--server", server, *login(), "--from", "boss@hosted.test", "--to", RECIPIENT)
    assert envelope.returncode == 23, envelope.transcript  # swaks: error in MAIL transaction
    assert "235 2.7.0 Authentication successful" in envelope.replies()
    assert "553 5.7.1 Sender address rejected: not owned by the authenticated user" in envelope.replies()
    header = swaks("--server", server, *login(), "--from", MAILBOX, "--to", RECIPIENT, "--header", "From: boss@hosted.test")
    assert header.returncode == 26, header.transcript  # swaks: server did not accept mail following data
    assert "250 2.1.0 Sender OK" in header.replies()
    assert header.replies()[-2:] == [
        "553 5.7.1 From header rejected: it must be the authenticated mailbox, and only it",
        "221 2.0.0 Bye",
    ]
    assert "<~* 553 5.7.1 From header rejected" in header.transcript
