"""The SMTP probe against real servers on 127.0.0.1: aiosmtpd (plain, STARTTLS with trustme certificates) and
scripted peers for what aiosmtpd will not do (garbage, silence, hang-ups, refusals, broken TLS)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509

from coldrelay.dns.report import SectionStatus
from coldrelay.smtpcheck import FailureKind, ProbeResult, host_matches, probe_smtp
from coldrelay.smtpcheck.wire import SMTPReply, parse_extensions
from scripted_smtp import CLOSE, SILENT, Action, ScriptedServer, free_port, smtpd

# --- servers ------------------------------------------------------------------------------------------------


class Extensions:
    """aiosmtpd handler adding EHLO keywords (PIPELINING, CHUNKING ...) before the final line."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        return responses[:-1] + [f"250-{keyword}" for keyword in self.extra] + responses[-1:]


class RefuseEhlo:
    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        return ["502 5.5.1 EHLO not implemented"]


class RefuseEhloAndHelo(RefuseEhlo):
    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        return "550 5.7.1 Go away"


# --- certificates -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts only the test CA, with host name checking."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context


def server_context(ca: trustme.CA, *names: str, **dates: datetime) -> tuple[ssl.SSLContext, x509.Certificate]:
    leaf = ca.issue_cert(*names, **dates)  # type: ignore[arg-type]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context, x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())


def probe(port: int, **kwargs: Any) -> ProbeResult:
    return asyncio.run(probe_smtp("127.0.0.1", port, **kwargs))


def assert_serialisable(result: ProbeResult) -> None:
    text = json.dumps({"result": result.to_dict(), "section": result.section.to_dict()})
    assert json.loads(text)["section"]["findings"] == [f.to_dict() for f in result.section.findings]


# --- plain and ESMTP --------------------------------------------------------------------------------------------


def test_plain_server_banner_extensions_and_no_starttls() -> None:
    with smtpd(Extensions("PIPELINING", "CHUNKING"), enable_SMTPUTF8=True) as port:
        result = probe(port)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.starttls-missing"]
    assert result.section.effective_status is SectionStatus.FAIL
    assert result.connected and result.peer == "127.0.0.1"
    assert result.banner is not None and result.banner.code == 220
    assert result.banner_host == "mx.plain.test" and result.ehlo_host == "mx.plain.test"
    assert result.greeting_command == "EHLO" and result.ehlo_refusal is None
    assert result.extensions == {
        "SIZE": "33554432",
        "8BITMIME": "",
        "SMTPUTF8": "",
        "PIPELINING": "",
        "CHUNKING": "",
        "HELP": "",
    }
    assert result.size_limit == 33554432
    assert not result.starttls_offered and result.tls is None and result.extensions_after_tls is None
    assert result.quit_reply is not None and result.quit_reply.code == 221
    assert result.failure is None
    t = result.timings
    assert t.connect_ms is not None and t.banner_ms is not None and t.ehlo_ms is not None and t.total_ms is not None
    assert t.tls_ms is None and t.ehlo_after_tls_ms is None
    assert result.transcript[0].startswith("S: 220 mx.plain.test ")
    assert result.transcript[1] == "C: EHLO coldrelay.invalid"
    assert result.transcript[-2:] == ["C: QUIT", "S: 221 Bye"]
    assert result.section.records == result.transcript
    assert result.section.details["extensions"]["CHUNKING"] == ""
    assert "transcript" not in result.section.details
    assert_serialisable(result)


def test_ehlo_name_is_sent_as_given() -> None:
    with smtpd() as port:
        result = probe(port, ehlo_name="probe.example.org")
    assert "C: EHLO probe.example.org" in result.transcript


def test_ehlo_refused_falls_back_to_helo() -> None:
    with smtpd(RefuseEhlo()) as port:
        result = probe(port)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-unsupported", "smtp.starttls-missing"]
    assert result.greeting_command == "HELO"
    assert result.ehlo_refusal is not None and result.ehlo_refusal.code == 502
    assert result.ehlo is not None and result.ehlo.code == 250 and result.ehlo.lines == ("mx.plain.test",)
    assert result.extensions == {}
    assert "C: HELO coldrelay.invalid" in result.transcript


def test_ehlo_and_helo_refused() -> None:
    with smtpd(RefuseEhloAndHelo()) as port:
        result = probe(port)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.helo-rejected"]
    assert result.failure is not None and (result.failure.stage, result.failure.kind) == ("HELO", FailureKind.REJECTED)
    assert result.ehlo is None
    assert result.quit_reply is not None and result.quit_reply.code == 221


def test_multiline_banner_and_old_style_auth() -> None:
    script = {
        "EHLO": b"250-mx.multi.test Hello\r\n250-SIZE\r\n250-AUTH=LOGIN\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250 8BITMIME\r\n",
    }
    banner = b"220-mx.multi.test ESMTP\r\n220-Unsolicited bulk mail is not welcome here\r\n220 ready\r\n"
    with ScriptedServer(banner, script) as server:
        result = probe(server.port)
    assert result.banner == SMTPReply(220, ("mx.multi.test ESMTP", "Unsolicited bulk mail is not welcome here", "ready"))
    assert result.banner.wire_lines()[-1] == "220 ready"
    assert result.banner_host == "mx.multi.test"
    assert result.extensions == {"SIZE": "", "AUTH": "LOGIN PLAIN CRAM-MD5", "8BITMIME": ""}
    assert result.size_limit is None
    assert result.auth_mechanisms == ["LOGIN", "PLAIN", "CRAM-MD5"]
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.auth-before-tls", "smtp.starttls-missing"]


# --- STARTTLS and certificates ----------------------------------------------------------------------------------


def test_starttls_with_a_trusted_certificate(ca: trustme.CA, trusting: ssl.SSLContext) -> None:
    context, leaf = server_context(ca, "mx.tls.test", "127.0.0.1")
    with smtpd(tls_context=context, server_hostname="mx.tls.test") as port:
        result = probe(port, tls_context=trusting)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.tls-ok"]
    assert result.section.effective_status is SectionStatus.PASS
    assert result.starttls_offered and result.starttls_reply is not None and result.starttls_reply.code == 220
    tls = result.tls
    assert tls is not None and tls.verified and tls.verify_code is None and not tls.second_connection
    assert tls.version == "TLSv1.3" and tls.cipher and tls.cipher_bits
    assert tls.hostname_matches is True
    cert = tls.certificate
    assert cert is not None
    assert cert.dns_names == ("mx.tls.test",) and cert.ip_addresses == ("127.0.0.1",)
    assert cert.issuer == leaf.issuer.rfc4514_string() and not cert.self_signed
    assert cert.not_after == leaf.not_valid_after_utc and cert.key_type == "EC secp256r1"
    # AUTH is offered only inside TLS; STARTTLS is not offered twice.
    assert result.auth_mechanisms == [] and result.auth_mechanisms_after_tls == ["LOGIN", "PLAIN"]
    assert result.extensions_after_tls is not None and "STARTTLS" not in result.extensions_after_tls
    assert result.transcript.count("C: EHLO coldrelay.invalid") == 2
    assert result.timings.tls_ms is not None and result.timings.ehlo_after_tls_ms is not None
    assert result.section.details["tls"]["certificate"]["dns_names"] == ["mx.tls.test"]
    assert_serialisable(result)


def test_certificate_by_host_name(ca: trustme.CA, trusting: ssl.SSLContext) -> None:
    context, _ = server_context(ca, "localhost")
    with smtpd(tls_context=context) as port:
        result = asyncio.run(probe_smtp("localhost", port, tls_context=trusting))
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.tls-ok"]
    assert result.tls is not None and result.tls.hostname_matches is True


def test_untrusted_ca_with_the_default_trust_store(ca: trustme.CA) -> None:
    context, _ = server_context(ca, "127.0.0.1")
    with smtpd(tls_context=context) as port:
        result = probe(port)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.cert-untrusted"]
    tls = result.tls
    assert tls is not None and not tls.verified and tls.verify_code == 20
    assert tls.verify_error == "unable to get local issuer certificate"
    # The second, unverified connection still read the certificate and finished the conversation.
    assert tls.second_connection and tls.certificate is not None and tls.hostname_matches is True
    assert tls.version == "TLSv1.3"
    assert result.auth_mechanisms_after_tls == ["LOGIN", "PLAIN"]
    assert "-- second connection: reading the certificate without verifying it" in result.transcript
    assert result.failure is None


def test_self_signed_certificate_is_named(ca: trustme.CA, tmp_path: Path) -> None:
    pair = tmp_path / "self-signed.pem"  # the CA's own certificate: self-signed, no names
    pair.write_bytes(ca.private_key_pem.bytes() + ca.cert_pem.bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pair)
    with smtpd(tls_context=context) as port:
        result = probe(port)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.cert-name-mismatch", "smtp.cert-untrusted"]
    tls = result.tls
    assert tls is not None and tls.certificate is not None and tls.certificate.self_signed
    assert tls.verify_code == 18 and tls.certificate.dns_names == ()
    assert "no name" in result.section.findings[-2].message
    assert "it is self-signed" in result.section.findings[-1].message


def test_certificate_name_mismatch(ca: trustme.CA, trusting: ssl.SSLContext) -> None:
    context, _ = server_context(ca, "mx.other.test")
    with smtpd(tls_context=context) as port:
        result = probe(port, tls_context=trusting)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.cert-name-mismatch"]
    tls = result.tls
    assert tls is not None and not tls.verified and tls.verify_code == 64  # IP address mismatch
    assert tls.hostname_matches is False and tls.certificate is not None and tls.certificate.dns_names == ("mx.other.test",)
    assert "mx.other.test" in result.section.findings[-1].message


def test_expired_certificate(ca: trustme.CA, trusting: ssl.SSLContext) -> None:
    now = datetime.now(UTC)
    context, leaf = server_context(ca, "127.0.0.1", not_before=now - timedelta(days=90), not_after=now - timedelta(days=2))
    with smtpd(tls_context=context) as port:
        result = probe(port, tls_context=trusting)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.cert-expired"]
    assert result.tls is not None and result.tls.verify_code == 10
    assert result.section.details["tls"]["certificate"]["days_left"] < -1
    assert leaf.not_valid_after_utc.date().isoformat() in result.section.findings[-1].message


def test_not_yet_valid_certificate(ca: trustme.CA, trusting: ssl.SSLContext) -> None:
    now = datetime.now(UTC)
    context, _ = server_context(ca, "127.0.0.1", not_before=now + timedelta(days=3), not_after=now + timedelta(days=90))
    with smtpd(tls_context=context) as port:
        result = probe(port, tls_context=trusting)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.cert-not-yet-valid"]
    assert result.tls is not None and result.tls.verify_code == 9


def test_certificate_expiring_soon(ca: trustme.CA, trusting: ssl.SSLContext) -> None:
    now = datetime.now(UTC)
    context, _ = server_context(ca, "127.0.0.1", not_before=now - timedelta(days=80), not_after=now + timedelta(days=5))
    with smtpd(tls_context=context) as port:
        result = probe(port, tls_context=trusting)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.tls-ok", "smtp.cert-expires-soon"]
    assert result.section.effective_status is SectionStatus.WARN


def test_auth_offered_before_tls(ca: trustme.CA, trusting: ssl.SSLContext) -> None:
    context, _ = server_context(ca, "127.0.0.1")
    with smtpd(tls_context=context, auth_require_tls=False) as port:
        result = probe(port, tls_context=trusting)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.auth-before-tls", "smtp.tls-ok"]
    assert result.auth_mechanisms == ["LOGIN", "PLAIN"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_tls_version(ca: trustme.CA) -> None:
    context, _ = server_context(ca, "127.0.0.1")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    client.minimum_version = ssl.TLSVersion.TLSv1
    client.set_ciphers("DEFAULT:@SECLEVEL=0")
    with smtpd(tls_context=context) as port:
        result = probe(port, tls_context=client)
    assert result.tls is not None and result.tls.version == "TLSv1.1"
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.tls-old-protocol", "smtp.tls-ok"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_tls_version_refused_by_a_modern_context(ca: trustme.CA, trusting: ssl.SSLContext) -> None:
    context, _ = server_context(ca, "127.0.0.1")
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with smtpd(tls_context=context) as port:
        result = probe(port, tls_context=trusting)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.tls-handshake-failed"]
    assert result.failure is not None and result.failure.stage == "TLS" and result.tls is None


def test_starttls_advertised_but_refused() -> None:
    with smtpd(Extensions("STARTTLS")) as port:  # no tls_context: aiosmtpd answers 454
        result = probe(port)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.starttls-refused"]
    assert result.starttls_reply is not None and result.starttls_reply.code == 454
    assert result.tls is None and result.quit_reply is not None and result.quit_reply.code == 221


def test_tls_handshake_failure() -> None:
    script: dict[str, Action] = {
        "EHLO": b"250-mx.broken.test\r\n250 STARTTLS\r\n",
        "STARTTLS": (b"220 2.0.0 go ahead\r\n", b"this is not a TLS record at all\r\n", CLOSE),
    }
    with ScriptedServer(b"220 mx.broken.test ESMTP\r\n", script) as server:
        result = probe(server.port)
    assert result.section.codes() == ["smtp.banner-ok", "smtp.ehlo-ok", "smtp.tls-handshake-failed"]
    assert result.failure is not None and (result.failure.stage, result.failure.kind) == ("TLS", FailureKind.TLS)
    assert result.tls is None and result.timings.tls_ms is not None


# --- servers that misbehave -------------------------------------------------------------------------------------


def test_connection_refused() -> None:
    result = probe(free_port())
    assert result.section.codes() == ["smtp.connect-refused"]
    assert not result.connected and result.failure is not None and result.failure.kind is FailureKind.REFUSED
    assert result.banner is None and result.timings.connect_ms is None and result.timings.total_ms is not None
    assert_serialisable(result)


def test_connect_timeout_when_the_backlog_is_full() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())  # fills the accept queue; further SYNs are dropped
    try:
        started = time.monotonic()
        result = probe(listener.getsockname()[1], timeout=0.4)
        assert time.monotonic() - started < 2
    finally:
        filler.close()
        listener.close()
    assert result.section.codes() == ["smtp.connect-timeout"]


def test_invalid_host_name_fails_without_dns() -> None:
    result = asyncio.run(probe_smtp("bad..name", 25, timeout=1))
    assert result.section.codes() == ["smtp.connect-failed"]
    assert result.failure is not None and result.failure.kind is FailureKind.UNREACHABLE


def test_server_that_never_answers() -> None:
    with ScriptedServer(SILENT) as server:
        started = time.monotonic()
        result = probe(server.port, timeout=0.3)
        assert time.monotonic() - started < 2
    assert result.section.codes() == ["smtp.banner-timeout"]
    assert result.connected and result.timings.connect_ms is not None and result.banner is None
    assert result.failure is not None and (result.failure.stage, result.failure.kind) == ("banner", FailureKind.TIMEOUT)


def test_server_that_closes_at_once() -> None:
    with ScriptedServer(CLOSE) as server:
        result = probe(server.port)
    assert result.section.codes() == ["smtp.banner-closed"]
    assert result.transcript == ["S: <connection closed>"]


def test_garbage_instead_of_a_banner() -> None:
    with ScriptedServer(b"SSH-2.0-OpenSSH_9.6\r\n") as server:
        result = probe(server.port)
    assert result.section.codes() == ["smtp.banner-garbage"]
    assert result.failure is not None and "SSH-2.0-OpenSSH_9.6" in result.failure.detail


def test_banner_refusing_service() -> None:
    with ScriptedServer(b"554 5.7.1 mx.block.test No SMTP service here\r\n") as server:
        result = probe(server.port)
    assert result.section.codes() == ["smtp.banner-refused"]
    assert result.banner is not None and result.banner.code == 554 and result.banner.enhanced_code == "5.7.1"
    assert result.quit_reply is not None and result.quit_reply.code == 221  # RFC 5321 3.1: wait for QUIT after 554


@pytest.mark.parametrize(
    ("ehlo", "code", "kind"),
    [
        (CLOSE, "smtp.connection-closed", FailureKind.CLOSED),
        (SILENT, "smtp.reply-timeout", FailureKind.TIMEOUT),
        (b"HTTP/1.1 400 Bad Request\r\n", "smtp.bad-reply", FailureKind.GARBAGE),
        (b"250-mx.mixed.test\r\n251 SIZE\r\n", "smtp.bad-reply", FailureKind.GARBAGE),
        (b"421 4.3.2 Shutting down\r\n", "smtp.helo-rejected", FailureKind.REJECTED),
    ],
)
def test_trouble_after_the_banner(ehlo: Action, code: str, kind: FailureKind) -> None:
    with ScriptedServer(b"220 mx.flaky.test ESMTP\r\n", {"EHLO": ehlo}) as server:
        result = probe(server.port, timeout=0.3)
    assert result.section.codes() == ["smtp.banner-ok", code]
    assert result.failure is not None and (result.failure.stage, result.failure.kind) == ("EHLO", kind)


def test_overlong_reply_line_is_garbage() -> None:
    with ScriptedServer(b"220 " + b"x" * 10000 + b"\r\n") as server:
        result = probe(server.port)
    assert result.section.codes() == ["smtp.banner-garbage"]


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        asyncio.run(probe_smtp("127.0.0.1", 0))
    with pytest.raises(ValueError):
        asyncio.run(probe_smtp("127.0.0.1", 25, ehlo_name="two words"))
    with pytest.raises(ValueError):
        asyncio.run(probe_smtp("127.0.0.1", 25, timeout=0))


# --- pure helpers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "dns_names", "ips", "expected"),
    [
        ("mx.example.com", ["mx.example.com"], [], True),
        ("MX.Example.com.", ["mx.example.com"], [], True),
        ("mx.example.com", ["*.example.com"], [], True),
        ("a.mx.example.com", ["*.example.com"], [], False),
        ("example.com", ["*.example.com"], [], False),
        ("mx.com", ["*.com"], [], False),
        ("mx.example.com", ["example.com"], [], False),
        ("192.0.2.25", ["192.0.2.25"], [], False),
        ("192.0.2.25", [], ["192.0.2.25"], True),
        ("2001:db8::25", [], ["2001:db8:0::25"], True),
        ("mx.example.com", [], ["192.0.2.25"], False),
    ],
)
def test_host_matching(host: str, dns_names: Sequence[str], ips: Sequence[str], expected: bool) -> None:
    assert host_matches(host, list(dns_names), list(ips)) is expected


def test_extension_parsing() -> None:
    reply = SMTPReply(250, ("mx.test greets you", "size 1000", "AUTH=PLAIN", "AUTH LOGIN", "starttls"))
    assert parse_extensions(reply) == {"SIZE": "1000", "AUTH": "PLAIN LOGIN", "STARTTLS": ""}
