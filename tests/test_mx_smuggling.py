"""SMTP smuggling and STARTTLS command injection against the MX: a message holding a bare LF, a bare CR or an
end-of-data lookalike (``<LF>.<CR><LF>``, ``<CR><LF>.<LF>``, ...; the 2023 advisories) is refused with a 550 and
nothing is stored, and the session stays in step; commands pipelined behind STARTTLS are discarded."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from mx_support import RawClient, RunningMX, start, stop, transaction

BARE_LF = "550 5.5.2 Message refused: bare <LF> received; lines must end with <CR><LF> (RFC 5321 2.3.8)"
BARE_CR = "550 5.5.2 Message refused: bare <CR> received; lines must end with <CR><LF> (RFC 5321 2.3.8)"
SMUGGLING = "550 5.5.2 Message refused: end-of-data sequence other than <CR><LF>.<CR><LF> (SMTP smuggling)"

SMUGGLED = b"MAIL FROM:<ceo@hosted.test>\r\nRCPT TO:<bob@hosted.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"

CASES = {
    # name: (data after the 354, through the true end-of-data, expected reply)
    "bare-lf": (b"Subject: x\r\n\r\nline one\nline two\r\n.\r\n", BARE_LF),
    "bare-lf-at-end": (b"Subject: x\r\n\r\nline one\n\r\n.\r\n", BARE_LF),
    "bare-cr": (b"Subject: x\r\n\r\nline one\rline two\r\n.\r\n", BARE_CR),
    "lf-dot-crlf": (b"Subject: x\r\n\r\nhello\n.\r\n" + SMUGGLED + b".\r\n", SMUGGLING),
    "crlf-dot-lf": (b"Subject: x\r\n\r\nhello\r\n.\n" + SMUGGLED + b".\r\n", SMUGGLING),
    "lf-dot-lf": (b"Subject: x\r\n\r\nhello\n.\n" + SMUGGLED + b".\r\n", SMUGGLING),
    "cr-dot-crlf": (b"Subject: x\r\n\r\nhello\r.\r\n" + SMUGGLED + b".\r\n", SMUGGLING),
    "crlf-dot-cr": (b"Subject: x\r\n\r\nhello\r\n.\r" + SMUGGLED + b".\r\n", SMUGGLING),
    "cr-dot-cr": (b"Subject: x\r\n\r\nhello\r.\r" + SMUGGLED + b".\r\n", SMUGGLING),
}


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMX]:
    running = start(tmp_path_factory.mktemp("mx-smuggling"))
    yield running
    stop(running)


@pytest.mark.parametrize(("data", "expected"), list(CASES.values()), ids=list(CASES))
def test_smuggling_data_is_refused_and_nothing_stored(mx: RunningMX, data: bytes, expected: str) -> None:
    client = transaction(mx.port)
    assert client.command("DATA") == "354 End data with <CR><LF>.<CR><LF>"
    client.send(data)
    assert client.reply() == expected
    # The smuggled commands were read as data: the session is in step, and the next transaction is clean.
    assert client.command("RCPT TO:<bob@hosted.test>") == "503 5.5.1 Need MAIL command first"
    assert client.command("NOOP") == "250 2.0.0 OK"
    assert client.command("QUIT") == "221 2.0.0 Bye"
    client.close()
    assert mx.all_stored() == []


def test_good_message_after_a_refused_one_in_the_same_session(tmp_path_factory: pytest.TempPathFactory) -> None:
    mx = start(tmp_path_factory.mktemp("mx-smuggling-session"))
    try:
        client = transaction(mx.port)
        client.command("DATA")
        client.send(b"Subject: one\r\n\r\nhello\n.\r\n" + SMUGGLED + b".\r\n")
        assert client.reply() == SMUGGLING
        assert client.command("MAIL FROM:<sender@example.net>") == "250 2.1.0 Sender OK"
        assert client.command("RCPT TO:<alice@hosted.test>") == "250 2.1.5 Recipient OK"
        assert client.command("DATA") == "354 End data with <CR><LF>.<CR><LF>"
        client.send(b"Subject: two\r\n\r\n..starts with a dot\r\nend\r\n.\r\n")
        assert client.reply() == "250 2.0.0 Message accepted for delivery"
        client.close()
        stored = mx.delivered("alice@hosted.test")
        assert len(stored) == 1
        assert stored[0].endswith(b"\nSubject: two\n\n.starts with a dot\nend\n")
        assert mx.delivered("bob@hosted.test") == []
    finally:
        stop(mx)


class Sink:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        self.contents.append(envelope.original_content)
        return "250 OK"


def test_stock_aiosmtpd_keeps_bare_lf_data_which_is_why_the_mx_reads_data_itself() -> None:
    """aiosmtpd 1.4.6 no longer ends DATA at <LF>.<LF>, but it accepts and keeps data holding the lookalike."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        client = RawClient(port)
        client.reply()
        client.command("EHLO client.example")
        client.command("MAIL FROM:<a@example.net>")
        client.command("RCPT TO:<b@example.org>")
        client.command("DATA")
        client.send(b"Subject: x\r\n\r\nhello\n.\r\nsmuggled\r\n.\r\n")
        assert client.reply() == "250 OK"
        client.close()
        assert sink.contents == [b"Subject: x\r\n\r\nhello\n.\r\nsmuggled\r\n"]
    finally:
        controller.stop()


# --- STARTTLS ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_mx(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[RunningMX]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.hosted.test", "127.0.0.1").configure_cert(context)
    running = start(tmp_path_factory.mktemp("mx-tls"), tls_context=context)
    yield running
    stop(running)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_starttls_is_offered_and_mail_over_it_is_marked_esmtps(tls_mx: RunningMX, ca: trustme.CA) -> None:
    with smtplib.SMTP("127.0.0.1", tls_mx.port, timeout=10) as client:
        client.ehlo("client.example")
        assert client.has_extn("starttls")
        assert client.starttls(context=client_context(ca)) == (220, b"2.0.0 Ready to start TLS")
        client.ehlo("client.example")
        assert not client.has_extn("starttls")
        client.sendmail("sender@example.net", ["bob@hosted.test"], b"Subject: tls\r\n\r\nsecret\r\n")
    stored = tls_mx.delivered("bob@hosted.test")
    assert len(stored) == 1 and b" with ESMTPS id " in stored[0]


def test_commands_pipelined_before_starttls_completes_are_discarded(tls_mx: RunningMX, ca: trustme.CA) -> None:
    raw = socket.create_connection(("127.0.0.1", tls_mx.port), timeout=10)
    plain = RawClient.__new__(RawClient)
    plain.sock, plain.buffer = raw, b""
    assert plain.reply().startswith("220 ")
    assert plain.command("EHLO client.example").endswith("250 HELP")
    # The injection: STARTTLS and, in the same packet, commands an attacker wants run inside the TLS session.
    plain.send(b"STARTTLS\r\nEHLO injected.example\r\nMAIL FROM:<injected@example.net>\r\nRCPT TO:<alice@hosted.test>\r\n")
    assert plain.reply() == "220 2.0.0 Ready to start TLS"
    assert plain.buffer == b""
    tls_sock = client_context(ca).wrap_socket(raw, server_hostname="mx.hosted.test")
    secure = RawClient.__new__(RawClient)
    secure.sock, secure.buffer = tls_sock, b""
    # Had the injected EHLO/MAIL run, these would be answered differently (and replies would be waiting).
    assert secure.command("MAIL FROM:<sender@example.net>") == "503 5.5.1 Send EHLO or HELO first"
    assert secure.command("EHLO client.example").endswith("250 HELP")
    assert secure.command("RCPT TO:<alice@hosted.test>") == "503 5.5.1 Need MAIL command first"
    assert secure.command("QUIT") == "221 2.0.0 Bye"
    tls_sock.close()
    assert tls_mx.delivered("alice@hosted.test") == []
