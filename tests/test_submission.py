"""Submission over real sockets on 127.0.0.1: TLS before AUTH, AUTH PLAIN/LOGIN and its throttling, the
sender checks, the daily cap, SIZE and recipient limits, added headers, the DKIM signature (verified with
dkimpy against the key in the database, no DNS), the queue after 250, and the self-signed certificate."""

from __future__ import annotations

import base64
import smtplib
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
import pytest
import trustme
from sqlalchemy import select

from coldrelay.db import DkimKey, Domain, create_domain, create_mailbox, session_factory
from coldrelay.mta.dkim import DkimSigner
from coldrelay.mta.edge import DatabaseAccounts, SubmissionGuards, SubmissionLimits, SubmissionServer, start_submission
from coldrelay.mta.edge.submission import FailureThrottle
from coldrelay.mta.queue import MailQueue, QueueEntry
from coldrelay.mta.tls import SELF_SIGNED_CERT, SELF_SIGNED_KEY, TLS_DIR_NAME, ensure_certificate
from mx_support import LoopThread, RawClient, make_database

PASSWORD = "a long enough password"
CAPPED = "capped@hosted.test"  # daily cap 2
RACED = "raced@hosted.test"  # daily cap 1
SIZE = 20_000
LIMITS = SubmissionLimits(
    max_message_size=SIZE,
    max_recipients=3,
    auth_failures_per_user=3,
    auth_failures_per_ip=1000,
    auth_failure_delay=0,
)


@dataclass
class Submission:
    loop: LoopThread
    starttls: SubmissionServer
    implicit: SubmissionServer
    queue: MailQueue
    engine: Any
    ca: trustme.CA
    tls_context: ssl.SSLContext

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def connect(self) -> smtplib.SMTP:
        """A client on the STARTTLS port, after EHLO, STARTTLS and EHLO again."""
        client = smtplib.SMTP("127.0.0.1", self.starttls.port, timeout=10)
        client.ehlo("client.example")
        client.starttls(context=self.client_context())
        client.ehlo("client.example")
        return client

    def logged_in(self, address: str = "alice@hosted.test") -> smtplib.SMTP:
        client = self.connect()
        assert client.login(address, PASSWORD)[0] == 235
        return client

    def entries(self) -> list[QueueEntry]:
        return self.loop.run(self.queue.list())

    def read(self, queue_id: str) -> bytes:
        return self.loop.run(self.queue.read(queue_id))

    def queued_with(self, token: bytes) -> list[bytes]:
        return [data for data in (self.read(entry.id) for entry in self.entries()) if token in data]


def start_listeners(
    loop: LoopThread, engine: Any, queue: MailQueue, tls_context: ssl.SSLContext, limits: SubmissionLimits
) -> tuple[SubmissionServer, SubmissionServer]:
    sessions = session_factory(engine)
    accounts, signer, guards = DatabaseAccounts(sessions), DkimSigner(sessions), SubmissionGuards(limits)
    servers = []
    for implicit_tls in (False, True):
        servers.append(
            loop.run(
                start_submission(
                    "127.0.0.1",
                    0,
                    implicit_tls=implicit_tls,
                    tls_context=tls_context,
                    accounts=accounts,
                    queue=queue,
                    signer=signer,
                    limits=limits,
                    hostname="box.hosted.test",
                    guards=guards,
                )
            )
        )
    return servers[0], servers[1]


@pytest.fixture(scope="module")
def sub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Submission]:
    tmp = tmp_path_factory.mktemp("submission")
    engine = make_database(tmp)
    with session_factory(engine)() as session:
        create_mailbox(session, CAPPED, PASSWORD, daily_cap=2)
        create_mailbox(session, RACED, PASSWORD, daily_cap=1)
        session.commit()
    ca = trustme.CA()
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "box.hosted.test").configure_cert(tls_context)
    loop = LoopThread()
    queue = MailQueue(engine, tmp / "spool")
    starttls, implicit = start_listeners(loop, engine, queue, tls_context, LIMITS)
    yield Submission(loop, starttls, implicit, queue, engine, ca, tls_context)
    loop.run(starttls.stop())
    loop.run(implicit.stop())
    loop.run(queue.close())
    loop.close()
    engine.dispose()


def message(sender: str = "alice@hosted.test", token: str = "hello", extra: str = "") -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: Someone <someone@elsewhere.example>\r\nSubject: {token}\r\n{extra}"
        f"\r\nHi, this is {token}.\r\n"
    ).encode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- TLS before AUTH ---------------------------------------------------------------------------------------------


def test_plain_ehlo_offers_starttls_and_no_auth(sub: Submission) -> None:
    with smtplib.SMTP("127.0.0.1", sub.starttls.port, timeout=10) as client:
        client.ehlo("client.example")
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert client.esmtp_features["size"] == str(SIZE)


@pytest.mark.parametrize("command", ["AUTH PLAIN " + b64("\0alice@hosted.test\0" + PASSWORD), "AUTH LOGIN", "MAIL FROM:<a@b.c>"])
def test_auth_and_mail_before_tls_are_refused(sub: Submission, command: str) -> None:
    client = RawClient(sub.starttls.port)
    assert client.reply().startswith("220 box.hosted.test")
    assert client.command("EHLO client.example").startswith("250-")
    assert client.command(command) == "530 5.7.0 Must issue a STARTTLS command first"
    client.close()


def test_after_starttls_auth_is_offered_and_mail_needs_it(sub: Submission) -> None:
    with sub.connect() as client:
        assert client.has_extn("auth") and set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        assert not client.has_extn("starttls")
        code, text = client.mail("alice@hosted.test")
        assert (code, text) == (530, b"5.7.0 Authentication required")


@pytest.mark.parametrize(("mechanism", "initial"), [("PLAIN", True), ("PLAIN", False), ("LOGIN", True), ("LOGIN", False)])
def test_auth_with_the_right_password_is_accepted(sub: Submission, mechanism: str, initial: bool) -> None:
    with sub.connect() as client:
        client.user, client.password = "alice@hosted.test", PASSWORD
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, text = client.auth(mechanism, method, initial_response_ok=initial)
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        assert client.docmd("AUTH", "PLAIN")[0] == 503  # once per session


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_a_wrong_password_is_refused(sub: Submission, mechanism: str) -> None:
    with sub.connect() as client:
        client.user, client.password = "carol@second.test", "not the password"
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth(mechanism, method)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")


def test_auth_edge_cases(sub: Submission) -> None:
    with sub.connect() as client:
        assert client.docmd("AUTH", "CRAM-MD5") == (504, b"5.5.4 Unrecognized authentication type")
        assert client.docmd("AUTH", "PLAIN not-base64!") == (501, b"5.5.2 Cannot decode base64")
        assert client.docmd("AUTH", "LOGIN") == (334, b"VXNlcm5hbWU6")
        assert client.docmd("*") == (501, b"5.7.0 Authentication aborted")
        # An authorization identity other than the login: acting for another mailbox is not offered.
        assert client.docmd("AUTH", "PLAIN " + b64("bob@hosted.test\0alice@hosted.test\0" + PASSWORD))[0] == 535
        assert client.docmd("AUTH", "PLAIN " + b64("alice@hosted.test\0alice@hosted.test\0" + PASSWORD))[0] == 235


def test_disabled_and_unknown_mailboxes_cannot_log_in(sub: Submission) -> None:
    for login in ("gone@hosted.test", "nobody@hosted.test", "not an address"):
        with sub.connect() as client, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(login, PASSWORD)
        assert refused.value.smtp_code == 535


def test_repeated_failures_for_one_login_are_throttled(sub: Submission) -> None:
    with sub.connect() as client:
        for _ in range(LIMITS.auth_failures_per_user):
            assert client.docmd("AUTH", "PLAIN " + b64("\0bob@hosted.test\0wrong password"))[0] == 535
        # Now even the right password is not looked at, in this session or another.
        assert client.docmd("AUTH", "PLAIN " + b64("\0bob@hosted.test\0" + PASSWORD)) == (
            454,
            b"4.7.0 Too many failed authentication attempts, try again later",
        )
    with sub.connect() as client:
        assert client.docmd("AUTH", "PLAIN " + b64("\0BOB@hosted.test\0" + PASSWORD))[0] == 454
        # Other logins from the same address are not affected by bob's count.
        assert client.docmd("AUTH", "PLAIN " + b64("\0alice@hosted.test\0" + PASSWORD))[0] == 235


def test_repeated_failures_from_one_address_are_throttled(sub: Submission, tmp_path: Path) -> None:
    limits = SubmissionLimits(auth_failures_per_ip=2, auth_failures_per_user=100, auth_failure_delay=0)
    queue = MailQueue(sub.engine, tmp_path / "spool")
    starttls, implicit = start_listeners(sub.loop, sub.engine, queue, sub.tls_context, limits)
    try:
        for login in ("x1@hosted.test", "x2@hosted.test"):
            with (
                smtplib.SMTP_SSL("127.0.0.1", implicit.port, context=sub.client_context(), timeout=10) as client,
                pytest.raises(smtplib.SMTPAuthenticationError),
            ):
                client.login(login, "guess")
        # The count is shared by both ports of the listener pair.
        with smtplib.SMTP("127.0.0.1", starttls.port, timeout=10) as client:
            client.starttls(context=sub.client_context())
            client.ehlo("client.example")
            assert client.docmd("AUTH", "PLAIN " + b64("\0alice@hosted.test\0" + PASSWORD))[0] == 454
    finally:
        sub.loop.run(starttls.stop())
        sub.loop.run(implicit.stop())
        sub.loop.run(queue.close())


def test_failures_age_out_of_the_window() -> None:
    now = [1000.0]
    throttle = FailureThrottle(limit=2, window=600, clock=lambda: now[0])
    throttle.record("k")
    now[0] += 300
    throttle.record("k")
    assert throttle.blocked("k")
    now[0] += 301  # the first failure is now older than the window
    assert not throttle.blocked("k")
    throttle.record("k")
    assert throttle.blocked("k")
    throttle.clear("k")
    assert not throttle.blocked("k")


# --- implicit TLS ------------------------------------------------------------------------------------------------


def test_implicit_tls_port_authenticates_and_queues(sub: Submission) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", sub.implicit.port, context=sub.client_context(), timeout=10) as client:
        client.ehlo("client.example")
        assert client.has_extn("auth") and not client.has_extn("starttls")
        assert client.login("alice@hosted.test", PASSWORD)[0] == 235
        client.mail("alice@hosted.test")
        client.rcpt("someone@elsewhere.example")
        assert client.data(message(token="implicit-tls")) == (250, b"2.0.0 Message accepted for delivery")
    assert len(sub.queued_with(b"implicit-tls")) == 1


# --- sender checks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["bob@hosted.test", "alice@elsewhere.example", "alice+tag@hosted.test"])
def test_mail_from_must_be_the_mailbox(sub: Submission, sender: str) -> None:
    with sub.logged_in() as client:
        assert client.mail(sender) == (553, b"5.7.1 Sender address rejected: not owned by the authenticated user")
        assert client.mail("ALICE@hosted.test") == (250, b"2.1.0 Sender OK")


@pytest.mark.parametrize(
    "header",
    [
        b"From: Bob <bob@hosted.test>\r\n",
        b"From: alice@hosted.test, bob@hosted.test\r\n",
        b"From: alice@hosted.test\r\nFrom: bob@hosted.test\r\n",
        b"",  # no From at all
        b'From: "alice@hosted.test" <bob@hosted.test>\r\n',
    ],
)
def test_from_header_must_be_the_mailbox(sub: Submission, header: bytes) -> None:
    token = f"from-check-{len(header)}-{header.count(b'@')}".encode()
    with sub.logged_in() as client:
        client.mail("alice@hosted.test")
        client.rcpt("someone@elsewhere.example")
        code, text = client.data(header + b"To: someone@elsewhere.example\r\nSubject: " + token + b"\r\n\r\nbody\r\n")
    assert (code, text) == (553, b"5.7.1 From header rejected: it must be the authenticated mailbox, and only it")
    assert sub.queued_with(token) == []


def test_malformed_header_is_refused(sub: Submission) -> None:
    with sub.logged_in() as client:
        client.mail("alice@hosted.test")
        client.rcpt("someone@elsewhere.example")
        assert client.data(b"From: alice@hosted.test\r\nthis is no header field\r\n\r\nbody\r\n") == (
            554,
            b"5.6.0 Message header malformed",
        )


# --- daily cap ---------------------------------------------------------------------------------------------------


def test_daily_cap_is_answered_450_at_mail_from(sub: Submission) -> None:
    with sub.logged_in(CAPPED) as client:
        for number in range(2):
            assert client.mail(CAPPED)[0] == 250
            client.rcpt("someone@elsewhere.example")
            assert client.data(message(CAPPED, f"capped-{number}"))[0] == 250
        assert client.mail(CAPPED) == (450, b"4.7.1 Daily sending cap reached for this mailbox, try again after 00:00 UTC")
    assert len([entry for entry in sub.entries() if entry.sender == CAPPED]) == 2


def test_daily_cap_is_checked_again_before_queueing(sub: Submission) -> None:
    """Two sessions of a mailbox with one message left: the second to finish DATA gets the 450."""
    with sub.logged_in(RACED) as first, sub.logged_in(RACED) as second:
        for client in (first, second):
            assert client.mail(RACED)[0] == 250
            client.rcpt("someone@elsewhere.example")
        assert second.data(message(RACED, "raced-second"))[0] == 250
        assert first.data(message(RACED, "raced-first")) == (
            450,
            b"4.7.1 Daily sending cap reached for this mailbox, try again after 00:00 UTC",
        )
    assert sub.queued_with(b"raced-first") == []


def test_default_daily_cap_comes_from_the_limits() -> None:
    from coldrelay.mta.edge.submission import AuthenticatedMailbox, SubmissionHandler

    handler = SubmissionHandler(None, None, None, SubmissionLimits(daily_cap=7), SubmissionGuards(LIMITS))  # type: ignore[arg-type]
    assert handler.cap_of(AuthenticatedMailbox("a@b.example", None)) == 7
    assert handler.cap_of(AuthenticatedMailbox("a@b.example", 0)) == 0


# --- size and recipients -----------------------------------------------------------------------------------------


def test_size_over_the_limit_is_refused(sub: Submission) -> None:
    with sub.logged_in() as client:
        assert client.mail("alice@hosted.test", [f"SIZE={SIZE + 1}"]) == (552, b"5.3.4 Message size exceeds fixed limit")
        assert client.mail("alice@hosted.test", [f"SIZE={SIZE}"])[0] == 250
        client.rcpt("someone@elsewhere.example")
        code, _ = client.data(message(token="too-big", extra="X-Pad: " + "x" * 900 + "\r\n") + (b"y" * 98 + b"\r\n") * 200)
        assert code == 552
    assert sub.queued_with(b"too-big") == []


def test_recipient_limit_and_syntax(sub: Submission) -> None:
    with sub.logged_in() as client:
        client.mail("alice@hosted.test")
        assert client.rcpt("<a@[192.0.2.1]>") == (501, b"5.1.3 Bad recipient address syntax")
        assert client.rcpt('"quoted"@elsewhere.example') == (501, b"5.1.3 Bad recipient address syntax")
        for number in range(LIMITS.max_recipients):
            assert client.rcpt(f"r{number}@Elsewhere.Example") == (250, b"2.1.5 Recipient OK")
        assert client.rcpt("one-more@elsewhere.example") == (452, b"4.5.3 Too many recipients")
        assert client.data(message(token="three-recipients"))[0] == 250
    [entry] = [entry for entry in sub.entries() if b"three-recipients" in sub.read(entry.id)]
    assert entry.recipients == ["r0@elsewhere.example", "r1@elsewhere.example", "r2@elsewhere.example"]


def test_smuggling_sequences_are_refused(sub: Submission) -> None:
    client = RawClient(sub.implicit.port)
    client.sock = sub.client_context().wrap_socket(client.sock, server_hostname="127.0.0.1")
    assert client.reply().startswith("220 ")
    client.command("EHLO client.example")
    assert client.command("AUTH PLAIN " + b64("\0alice@hosted.test\0" + PASSWORD)).startswith("235 ")
    assert client.command("MAIL FROM:<alice@hosted.test>").startswith("250 ")
    assert client.command("RCPT TO:<someone@elsewhere.example>").startswith("250 ")
    assert client.command("DATA").startswith("354 ")
    client.send(b"From: alice@hosted.test\r\nSubject: smuggled\r\n\r\nbody\n.\r\nMAIL FROM:<x@y.z>\r\n.\r\n")
    assert client.reply().startswith("550 5.5.2 ")
    client.close()
    assert sub.queued_with(b"smuggled") == []


# --- what is queued ----------------------------------------------------------------------------------------------


def dkim_txt(engine: Any) -> Any:
    """A dkimpy dnsfunc answering ``<selector>._domainkey.<domain>`` from the database."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        selector, _, domain = name.decode().rstrip(".").partition("._domainkey.")
        with session_factory(engine)() as session:
            key = session.scalars(
                select(DkimKey).join(Domain).where(Domain.name == domain, DkimKey.selector == selector)
            ).one_or_none()
            return None if key is None else key.txt_value.encode()

    return lookup


def test_accepted_message_is_queued_signed_and_completed(sub: Submission) -> None:
    with sub.logged_in() as client:
        client.mail("alice@hosted.test")
        client.rcpt("someone@elsewhere.example")
        client.rcpt("other@elsewhere.example")
        assert client.data(message(token="signed-one")) == (250, b"2.0.0 Message accepted for delivery")
    [entry] = [entry for entry in sub.entries() if b"signed-one" in sub.read(entry.id)]
    assert entry.sender == "alice@hosted.test"
    assert entry.recipients == ["someone@elsewhere.example", "other@elsewhere.example"]
    assert entry.state == "queued"
    data = sub.read(entry.id)
    assert data.startswith(b"DKIM-Signature: ")
    header = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nMessage-ID: <" in header and b"@hosted.test>\r\n" in header
    assert b"\r\nDate: " in header
    assert data.endswith(b"\r\nHi, this is signed-one.\r\n")
    assert dkim.verify(data, dnsfunc=dkim_txt(sub.engine))
    signature = dkim.DKIM(data)
    signature.verify(dnsfunc=dkim_txt(sub.engine))
    fields = signature.signature_fields
    assert (fields[b"d"], fields[b"s"], fields[b"c"]) == (b"hosted.test", b"s1", b"relaxed/relaxed")
    signed = fields[b"h"].split(b":")
    assert {b"from", b"to", b"subject", b"date", b"message-id"} <= {name.strip() for name in signed}
    # Tampering breaks it: a changed subject, and an added second From (oversigned).
    assert not dkim.verify(data.replace(b"Subject: signed-one", b"Subject: signed-two"), dnsfunc=dkim_txt(sub.engine))
    added_from = data.replace(b"\r\n\r\n", b"\r\nFrom: mallory@hosted.test\r\n\r\n", 1)
    assert not dkim.verify(added_from, dnsfunc=dkim_txt(sub.engine))


def test_existing_message_id_and_date_are_kept(sub: Submission) -> None:
    extra = "Message-ID: <given@client.example>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    with sub.logged_in() as client:
        client.mail("alice@hosted.test")
        client.rcpt("someone@elsewhere.example")
        assert client.data(message(token="kept-headers", extra=extra))[0] == 250
    [data] = sub.queued_with(b"kept-headers")
    header = data.split(b"\r\n\r\n", 1)[0]
    assert header.count(b"Message-ID:") == 1 and b"Message-ID: <given@client.example>" in header
    assert header.count(b"\r\nDate:") == 1
    assert dkim.verify(data, dnsfunc=dkim_txt(sub.engine))


def test_a_domain_without_an_active_key_is_not_sent_unsigned(sub: Submission) -> None:
    with session_factory(sub.engine)() as session:
        for key in session.scalars(select(DkimKey).join(Domain).where(Domain.name == "second.test")):
            key.active = False
        session.commit()
    with sub.logged_in("carol@second.test") as client:
        client.mail("carol@second.test")
        client.rcpt("someone@elsewhere.example")
        assert client.data(message("carol@second.test", "unsigned")) == (
            451,
            b"4.7.0 Temporary failure signing the message (DKIM), try again later",
        )
    assert sub.queued_with(b"unsigned") == []


# --- the certificate ---------------------------------------------------------------------------------------------


def test_self_signed_certificate_is_made_once_and_reused(tmp_path: Path) -> None:
    context = ensure_certificate(tmp_path, "box.hosted.test")
    cert, key = tmp_path / TLS_DIR_NAME / SELF_SIGNED_CERT, tmp_path / TLS_DIR_NAME / SELF_SIGNED_KEY
    assert isinstance(context, ssl.SSLContext)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / TLS_DIR_NAME).stat().st_mode) == 0o700
    first = cert.read_bytes()
    ensure_certificate(tmp_path, "box.hosted.test")
    assert cert.read_bytes() == first
    ensure_certificate(tmp_path, "box.renamed.test")  # a new host name gets a new certificate
    assert cert.read_bytes() != first


def test_configured_certificate_is_used(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("box.hosted.test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    assert isinstance(ensure_certificate(tmp_path, "box.hosted.test", cert, key), ssl.SSLContext)
    assert not (tmp_path / TLS_DIR_NAME).exists()


def test_paused_sender_is_told_at_mail_from(sub: Submission) -> None:
    """A mailbox the reputation guard paused gets 450 4.7.1 at MAIL FROM, and nothing is queued."""

    class Paused:
        def __init__(self) -> None:
            self.asked: list[str] = []

        async def paused(self, sender: str) -> object | None:
            self.asked.append(sender)
            return object() if sender == "alice@hosted.test" else None

    pauses = Paused()
    sessions = session_factory(sub.engine)
    server = sub.loop.run(
        start_submission(
            "127.0.0.1",
            0,
            implicit_tls=False,
            tls_context=sub.tls_context,
            accounts=DatabaseAccounts(sessions),
            queue=sub.queue,
            signer=DkimSigner(sessions),
            limits=LIMITS,
            hostname="box.hosted.test",
            pauses=pauses,
        )
    )
    before = len(sub.entries())
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.starttls(context=sub.client_context())
            assert client.login("alice@hosted.test", PASSWORD)[0] == 235
            code, text = client.mail("alice@hosted.test")
            assert code == 450 and b"4.7.1" in text and b"paused" in text
    finally:
        sub.loop.run(server.stop())
    assert pauses.asked == ["alice@hosted.test"]
    assert len(sub.entries()) == before


def test_a_domain_with_an_ed25519_key_gets_both_signatures(sub: Submission) -> None:
    """RFC 8463: Ed25519 beside RSA. Both signatures verify against the published records."""
    with session_factory(sub.engine)() as session:
        create_domain(session, "dual.test", ed25519_selector="ed-s1")
        create_mailbox(session, "dina@dual.test", PASSWORD)
        session.commit()
    with sub.logged_in("dina@dual.test") as client:
        client.mail("dina@dual.test")
        client.rcpt("someone@elsewhere.example")
        assert client.data(message("dina@dual.test", token="dual-signed"))[0] == 250
    [data] = sub.queued_with(b"dual-signed")
    checker = dkim.DKIM(data)
    found = {}
    for index in range(2):
        assert checker.verify(idx=index, dnsfunc=dkim_txt(sub.engine)), index
        found[checker.signature_fields[b"a"]] = checker.signature_fields[b"s"]
    assert found == {b"rsa-sha256": b"s1", b"ed25519-sha256": b"ed-s1"}
    tampered = data.replace(b"Subject: dual-signed", b"Subject: dual-changed")
    assert not dkim.DKIM(tampered).verify(idx=1, dnsfunc=dkim_txt(sub.engine))
