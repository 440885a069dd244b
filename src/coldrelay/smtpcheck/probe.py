"""Probe one SMTP server the way a sending MTA meets it: greeting, EHLO, STARTTLS, certificate, timings.

One conversation: connect, read the (possibly multi-line) banner, EHLO (HELO when
EHLO is refused), STARTTLS when offered, then the TLS version, cipher and the
certificate, EHLO again inside TLS (AUTH is often only offered there), QUIT.
Nothing is sent beyond that: no MAIL, no AUTH.

The certificate is verified during the handshake with the caller's context (or
the system's default trust store). When that fails the handshake is over, so the
probe opens a second connection without verification to read the certificate
anyway: "untrusted" alone does not tell a sender what to fix, the name list and
the expiry date do.

Every failure (refused, silent, closed, garbage, TLS) is a field of the result
and a finding in its ``Section`` (name ``smtp``); ``probe_smtp`` never raises
on a server's behaviour, only on arguments that cannot be right (ValueError).
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from coldrelay.dns.report import Section, Severity
from coldrelay.smtpcheck.certificate import CertificateInfo, parse_certificate
from coldrelay.smtpcheck.wire import (
    FailureKind,
    SessionError,
    SessionFailure,
    SMTPClient,
    SMTPReply,
    TLSSession,
    announced_host,
    auth_mechanisms,
    check_ehlo_name,
    check_target,
    elapsed_ms,
    greet,
    hello,
    parse_extensions,
    unverified_context,
)

SECTION_NAME = "smtp"

EXPIRY_WARNING_DAYS = 14
"""A certificate closer than this to its end date gets a warning: automated renewal runs 30 days ahead."""

OLD_TLS_VERSIONS = frozenset({"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"})
"""Versions RFC 8996 deprecated; a server that only reaches these is behind."""

CLEARTEXT_AUTH_MECHANISMS = frozenset({"PLAIN", "LOGIN"})
"""Mechanisms that carry the password itself, readable by anyone on the path without TLS."""

# OpenSSL X509_V_ERR_* codes the probe explains with its own, more specific findings.
_NOT_YET_VALID = 9
_EXPIRED = 10
_NAME_MISMATCH = frozenset({62, 64})  # hostname mismatch, IP address mismatch


@dataclass(slots=True)
class Timings:
    """Milliseconds for each step; None for a step that did not happen."""

    connect_ms: float | None = None
    banner_ms: float | None = None
    """From the established connection to the last line of the greeting."""
    ehlo_ms: float | None = None
    """EHLO (and HELO after a refused EHLO) until its reply."""
    tls_ms: float | None = None
    """The STARTTLS command and the handshake (the failed one, when verification failed)."""
    ehlo_after_tls_ms: float | None = None
    total_ms: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {
            "connect_ms": self.connect_ms,
            "banner_ms": self.banner_ms,
            "ehlo_ms": self.ehlo_ms,
            "tls_ms": self.tls_ms,
            "ehlo_after_tls_ms": self.ehlo_after_tls_ms,
            "total_ms": self.total_ms,
        }


@dataclass(slots=True)
class TLSInfo:
    """The STARTTLS outcome: what was negotiated, the certificate, and what verification said."""

    verified: bool
    """The handshake succeeded with the verifying context (chain, dates, and the name if the context checks it)."""
    verify_code: int | None = None
    """OpenSSL's X509 error number when verification failed (10 expired, 20 unknown issuer, 62 name mismatch ...)."""
    verify_error: str | None = None
    version: str | None = None
    cipher: str | None = None
    cipher_bits: int | None = None
    certificate: CertificateInfo | None = None
    certificate_error: str | None = None
    """Why the certificate details are missing, when they are."""
    hostname_matches: bool | None = None
    """Whether the certificate's names cover the probed host; None when the certificate could not be read."""
    second_connection: bool = False
    """The details come from a second, unverified connection because the verified handshake failed."""

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "verify_code": self.verify_code,
            "verify_error": self.verify_error,
            "version": self.version,
            "cipher": self.cipher,
            "cipher_bits": self.cipher_bits,
            "certificate": self.certificate.to_dict(now) if self.certificate else None,
            "certificate_error": self.certificate_error,
            "hostname_matches": self.hostname_matches,
            "second_connection": self.second_connection,
        }


def _reply_dict(reply: SMTPReply | None) -> dict[str, Any] | None:
    return reply.to_dict() if reply is not None else None


def _size_limit(extensions: dict[str, str] | None) -> int | None:
    """The SIZE extension's declared maximum (RFC 1870); 0 means the server declares no fixed limit."""
    if not extensions or "SIZE" not in extensions:
        return None
    value = extensions["SIZE"].strip()
    return int(value) if value.isdigit() else None


@dataclass(slots=True)
class ProbeResult:
    """Everything the probe saw, plus its findings in ``section``."""

    host: str
    port: int
    ehlo_name: str
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    connected: bool = False
    peer: str | None = None
    banner: SMTPReply | None = None
    banner_host: str | None = None
    """The host name the 220 greeting announces."""
    greeting_command: str | None = None
    """``EHLO``, or ``HELO`` when the server refused EHLO."""
    ehlo: SMTPReply | None = None
    """The accepted reply to the greeting command (EHLO, or HELO after the fallback)."""
    ehlo_refusal: SMTPReply | None = None
    ehlo_host: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    """EHLO keywords before TLS, upper case, to their parameters (``{"SIZE": "35882577", "STARTTLS": ""}``)."""
    starttls_reply: SMTPReply | None = None
    tls: TLSInfo | None = None
    ehlo_after_tls: SMTPReply | None = None
    extensions_after_tls: dict[str, str] | None = None
    quit_reply: SMTPReply | None = None
    failure: SessionFailure | None = None
    """The step that ended the conversation early, if one did."""
    timings: Timings = field(default_factory=Timings)
    transcript: list[str] = field(default_factory=list)
    section: Section = field(default_factory=lambda: Section(SECTION_NAME))

    @property
    def starttls_offered(self) -> bool:
        return "STARTTLS" in self.extensions

    @property
    def auth_mechanisms(self) -> list[str]:
        """AUTH mechanisms offered before TLS."""
        return auth_mechanisms(self.extensions)

    @property
    def auth_mechanisms_after_tls(self) -> list[str]:
        return auth_mechanisms(self.extensions_after_tls)

    @property
    def size_limit(self) -> int | None:
        return _size_limit(self.extensions_after_tls if self.extensions_after_tls is not None else self.extensions)

    def to_dict(self) -> dict[str, Any]:
        """The structured result, JSON-serialisable; the findings are in ``section``."""
        return {
            "host": self.host,
            "port": self.port,
            "ehlo_name": self.ehlo_name,
            "checked_at": self.checked_at.isoformat(),
            "connected": self.connected,
            "peer": self.peer,
            "banner": _reply_dict(self.banner),
            "banner_host": self.banner_host,
            "greeting_command": self.greeting_command,
            "ehlo": _reply_dict(self.ehlo),
            "ehlo_refusal": _reply_dict(self.ehlo_refusal),
            "ehlo_host": self.ehlo_host,
            "extensions": dict(self.extensions),
            "auth_mechanisms": self.auth_mechanisms,
            "size_limit": self.size_limit,
            "starttls_offered": self.starttls_offered,
            "starttls_reply": _reply_dict(self.starttls_reply),
            "tls": self.tls.to_dict(self.checked_at) if self.tls else None,
            "ehlo_after_tls": _reply_dict(self.ehlo_after_tls),
            "extensions_after_tls": dict(self.extensions_after_tls) if self.extensions_after_tls is not None else None,
            "auth_mechanisms_after_tls": self.auth_mechanisms_after_tls,
            "quit_reply": _reply_dict(self.quit_reply),
            "failure": self.failure.to_dict() if self.failure else None,
            "timings": self.timings.to_dict(),
            "transcript": list(self.transcript),
        }


async def probe_smtp(
    host: str,
    port: int = 25,
    *,
    timeout: float = 10.0,
    ehlo_name: str = "coldrelay.invalid",
    tls_context: ssl.SSLContext | None = None,
) -> ProbeResult:
    """Talk to ``host:port`` up to STARTTLS and back out, and report what a sending server would meet.

    ``timeout`` applies to each step (connect, each reply, the handshake), not to the whole probe.
    ``tls_context`` decides what "verified" means; by default the system's trust store with host
    name checking. Raises ValueError only for arguments that cannot work.
    """
    check_target(port, timeout)
    check_ehlo_name(ehlo_name)
    result = ProbeResult(host=host, port=port, ehlo_name=ehlo_name)
    started = time.perf_counter()
    verifying = tls_context if tls_context is not None else ssl.create_default_context()
    await _converse(result, verifying, timeout)
    result.timings.total_ms = elapsed_ms(started)
    result.section = assess(result)
    return result


async def _converse(result: ProbeResult, verifying: ssl.SSLContext, timeout: float) -> None:
    client = SMTPClient(result.host, result.port, timeout, result.transcript)
    try:
        result.timings.connect_ms = await client.connect()
        result.connected, result.peer = True, client.peer

        started = time.perf_counter()
        banner = await client.read_reply("banner")
        result.timings.banner_ms = elapsed_ms(started)
        result.banner, result.banner_host = banner, announced_host(banner)
        if banner.code != 220:
            raise SessionError(SessionFailure("banner", FailureKind.REJECTED, f"the greeting was {banner}"))

        started = time.perf_counter()
        greeting = await hello(client, banner, result.ehlo_name)
        result.timings.ehlo_ms = elapsed_ms(started)
        result.greeting_command, result.ehlo, result.ehlo_refusal = greeting.command, greeting.reply, greeting.ehlo_refusal
        result.ehlo_host = announced_host(greeting.reply)
        if greeting.command == "EHLO":
            result.extensions = parse_extensions(greeting.reply)
        if not result.starttls_offered:
            result.quit_reply = await client.quit()
            return

        started = time.perf_counter()
        result.starttls_reply = await client.command("STARTTLS", "STARTTLS")
        if result.starttls_reply.code != 220:
            result.quit_reply = await client.quit()
            return
        try:
            session = await client.starttls(verifying, result.host)
        except SessionError as error:
            result.timings.tls_ms = elapsed_ms(started)
            if error.verify_code is None:
                raise
            await client.close()
            result.tls = TLSInfo(verified=False, verify_code=error.verify_code, verify_error=error.verify_message)
            await _second_look(result, result.tls, timeout)
            return
        result.timings.tls_ms = elapsed_ms(started)
        result.tls = TLSInfo(verified=True)
        _describe_tls(result, result.tls, session)
        await _ehlo_after_tls(client, result)
        result.quit_reply = await client.quit()
    except SessionError as error:
        result.failure = error.failure
        if error.failure.kind is FailureKind.REJECTED:
            result.quit_reply = await client.quit()
    finally:
        await client.close()


def _describe_tls(result: ProbeResult, tls: TLSInfo, session: TLSSession) -> None:
    tls.version, tls.cipher, tls.cipher_bits = session.version, session.cipher, session.cipher_bits
    if session.certificate_der is None:
        tls.certificate_error = "the server sent no certificate"
        return
    try:
        tls.certificate = parse_certificate(session.certificate_der)
    except ValueError as error:
        tls.certificate_error = f"the certificate does not parse: {error}"
        return
    tls.hostname_matches = tls.certificate.matches(result.host)


async def _ehlo_after_tls(client: SMTPClient, result: ProbeResult) -> None:
    """RFC 3207 4.2: everything learnt before TLS is forgotten, so EHLO again."""
    started = time.perf_counter()
    reply = await client.command(f"EHLO {result.ehlo_name}", "EHLO after TLS")
    result.timings.ehlo_after_tls_ms = elapsed_ms(started)
    result.ehlo_after_tls = reply
    if reply.code != 250:
        raise SessionError(SessionFailure("EHLO after TLS", FailureKind.REJECTED, f"EHLO inside TLS was answered with {reply}"))
    result.extensions_after_tls = parse_extensions(reply)


async def _second_look(result: ProbeResult, tls: TLSInfo, timeout: float) -> None:
    """Reconnect without verification to read the certificate the verified handshake refused."""
    result.transcript.append("-- second connection: reading the certificate without verifying it")
    tls.second_connection = True
    client = SMTPClient(result.host, result.port, timeout, result.transcript)
    handshake_done = False
    try:
        await client.connect()
        greeting = await greet(client, result.ehlo_name)
        if "STARTTLS" not in parse_extensions(greeting.reply):
            tls.certificate_error = "the second connection was not offered STARTTLS"
            await client.quit()
            return
        reply = await client.command("STARTTLS", "STARTTLS")
        if reply.code != 220:
            tls.certificate_error = f"the second connection's STARTTLS was answered with {reply}"
            await client.quit()
            return
        session = await client.starttls(unverified_context(), result.host)
        handshake_done = True
        _describe_tls(result, tls, session)
        await _ehlo_after_tls(client, result)
        result.quit_reply = await client.quit()
    except SessionError as error:
        if handshake_done:
            result.failure = error.failure
        else:
            tls.certificate_error = f"the second connection failed at {error.failure.stage}: {error.failure.detail}"
    finally:
        await client.close()


# --- findings -------------------------------------------------------------------------------------------------

_STARTTLS_ARTICLE = "/smtp-errors/google-550-5-7-29-tls-required"
_HELO_ARTICLE = "/smtp-errors/postfix-450-4-7-1-helo-host-not-found"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def _where(result: ProbeResult) -> str:
    return f"{result.host} port {result.port}"


def _failure_finding(section: Section, result: ProbeResult, failure: SessionFailure) -> None:
    where, stage, kind, detail = _where(result), failure.stage, failure.kind, failure.detail
    if stage == "connect":
        if kind is FailureKind.REFUSED:
            section.add(
                Severity.ERROR,
                "smtp.connect-refused",
                f"Nothing accepted a connection on {where}: the connection was refused.",
                f"Start the mail server or let it listen on the public address: on the host, `ss -ltn 'sport = :{result.port}'` "
                f"must show a listener on 0.0.0.0:{result.port} (Postfix: inet_interfaces = all), and the firewall must allow "
                f"inbound TCP {result.port}. Check that the MX points at this host: /tools/mx-lookup.",
            )
        elif kind is FailureKind.TIMEOUT:
            section.add(
                Severity.ERROR,
                "smtp.connect-timeout",
                f"Connecting to {where} got no answer at all ({detail}).",
                f"A firewall or cloud security group is silently dropping TCP {result.port}: allow it inbound on the host "
                f"and in the provider's network rules. If this check runs from a network that blocks outgoing port 25 "
                f"(many ISPs and cloud providers do), run it from elsewhere before changing the server.",
            )
        else:
            section.add(
                Severity.ERROR,
                "smtp.connect-failed",
                f"Could not connect to {where}: {detail}.",
                f"Check that {result.host} resolves to the mail server's address (/tools/mx-lookup) and that the host is up.",
            )
        return
    if stage == "banner":
        if kind is FailureKind.TIMEOUT:
            section.add(
                Severity.ERROR,
                "smtp.banner-timeout",
                f"{where} accepted the connection but never sent its 220 greeting ({detail}).",
                "Check that the SMTP daemon is running and not overloaded (its process limit, e.g. Postfix "
                "default_process_limit) and that no proxy or load balancer in front of it holds the greeting back. "
                "A port that expects TLS from the first byte (465) stays silent like this; probe it with implicit TLS.",
            )
        elif kind is FailureKind.CLOSED:
            section.add(
                Severity.ERROR,
                "smtp.banner-closed",
                f"{where} closed the connection before greeting.",
                "The server drops this client before any SMTP: look in its log for the connection (a connection "
                "limit, fail2ban, tcp wrappers or a crash on connect) and allow mail servers from any address on port 25.",
            )
        elif kind is FailureKind.GARBAGE:
            section.add(
                Severity.ERROR,
                "smtp.banner-garbage",
                f"What answers on {where} is not an SMTP server: {detail}.",
                f"Point port {result.port} at the mail server: another program (the line it sent is shown) is listening there, "
                "or a port forwarding rule sends the traffic to the wrong service.",
            )
        else:
            section.add(
                Severity.ERROR,
                "smtp.banner-refused",
                f"{where} refused service in its greeting: {result.banner}.",
                "A 554 greeting means the server turns this client away before any mail (its reply text says why, often a "
                "blocklist or postscreen decision); a 421 means it is overloaded or shutting down, so try again later and "
                "check its connection limits.",
            )
        return
    if stage == "TLS":
        section.add(
            Severity.ERROR,
            "smtp.tls-handshake-failed",
            f"{where} accepted STARTTLS but the TLS handshake failed: {detail}.",
            "Check the server's TLS setup: the certificate and key files must be readable by the SMTP daemon and belong "
            "together, and TLS 1.2 and 1.3 must be enabled (Postfix: smtpd_tls_protocols = >=TLSv1.2; "
            "`openssl s_client -starttls smtp -connect host:25` shows the handshake error from the server's side).",
        )
        return
    if kind is FailureKind.REJECTED:
        section.add(
            Severity.ERROR,
            "smtp.helo-rejected",
            f"{where} refused to continue after our greeting at {stage}: {detail}.",
            f"Servers that refuse HELO names they cannot resolve also refuse real senders; accept any syntactically valid "
            f"name (Postfix: drop reject_unknown_helo_hostname from smtpd_helo_restrictions). See {_HELO_ARTICLE}.",
        )
    elif kind is FailureKind.TIMEOUT:
        section.add(
            Severity.ERROR,
            "smtp.reply-timeout",
            f"{where} stopped answering at {stage} ({detail}).",
            "The server hangs mid-conversation: check its log for this session, its load, and any content or "
            "policy service it waits on (a milter or policy daemon that does not answer).",
        )
    elif kind is FailureKind.GARBAGE:
        section.add(
            Severity.ERROR,
            "smtp.bad-reply",
            f"{where} answered {stage} with something that is not an SMTP reply: {detail}.",
            "A proxy or filter in front of the server is mangling the conversation, or the server is broken; "
            "compare with `openssl s_client -starttls smtp` or `swaks --quit-after EHLO` run next to the server.",
        )
    else:
        section.add(
            Severity.ERROR,
            "smtp.connection-closed",
            f"{where} closed the connection at {stage}.",
            "The server hangs up mid-conversation: look in its log for this session (a crash, a per-client limit, "
            "or an intrusion-prevention system cutting the connection).",
        )


def _tls_findings(section: Section, result: ProbeResult, tls: TLSInfo) -> None:
    where, cert, now = _where(result), tls.certificate, result.checked_at
    code = tls.verify_code
    name_ok = tls.hostname_matches if cert is not None else (False if code in _NAME_MISMATCH else None)
    expired = cert.expired(now) if cert is not None else code == _EXPIRED
    not_yet = cert.not_yet_valid(now) if cert is not None else code == _NOT_YET_VALID
    explained = False
    if name_ok is False:
        names = (
            ", ".join(cert.dns_names + cert.ip_addresses)
            if cert is not None and (cert.dns_names or cert.ip_addresses)
            else "no name"
        )
        if _is_ip(result.host):
            fix = (
                "Mail server certificates name hosts, not addresses: probe the server by the host name its MX record "
                f"gives, and make sure the certificate lists that name ({names} now)."
            )
        else:
            fix = (
                f"Issue a certificate whose subject alternative names include {result.host} (for an MX, the exact host "
                f"name the MX record gives), e.g. `certbot certonly --standalone -d {result.host}`, and point the server "
                "at it (Postfix: smtpd_tls_chain_files). Senders that enforce MTA-STS or DANE refuse a certificate "
                "without the name."
            )
        section.add(
            Severity.ERROR, "smtp.cert-name-mismatch", f"The certificate on {where} is for {names}, not for {result.host}.", fix
        )
        explained = explained or code in _NAME_MISMATCH
    if expired and cert is not None:
        section.add(
            Severity.ERROR,
            "smtp.cert-expired",
            f"The certificate on {where} expired on {cert.not_after.date().isoformat()}.",
            "Renew it (`certbot renew`), make renewal automatic, and reload the mail server afterwards so it serves the "
            "new file (a deploy hook such as `--deploy-hook 'systemctl reload postfix'`).",
        )
        explained = explained or code == _EXPIRED
    elif expired:
        section.add(
            Severity.ERROR,
            "smtp.cert-expired",
            f"The certificate on {where} has expired.",
            "Renew it (`certbot renew`), make renewal automatic, and reload the mail server afterwards.",
        )
        explained = True
    if not_yet:
        starts = f" until {cert.not_before.date().isoformat()}" if cert is not None else ""
        section.add(
            Severity.ERROR,
            "smtp.cert-not-yet-valid",
            f"The certificate on {where} is not valid yet{starts}.",
            "Check the server's clock (timedatectl; enable NTP) and, if the clock is right, install the certificate "
            "that is valid now.",
        )
        explained = explained or code == _NOT_YET_VALID
    if not tls.verified and not explained:
        self_signed = cert is not None and cert.self_signed
        why = "it is self-signed" if self_signed else tls.verify_error or "verification failed"
        section.add(
            Severity.ERROR,
            "smtp.cert-untrusted",
            f"The certificate on {where} does not validate: {why}.",
            "Use a certificate from a public CA (Let's Encrypt is free) and serve the full chain, leaf first and then "
            "the intermediates (Postfix: smtpd_tls_chain_files = /etc/letsencrypt/live/HOST/privkey.pem, "
            "/etc/letsencrypt/live/HOST/fullchain.pem).",
        )
    if tls.version in OLD_TLS_VERSIONS:
        section.add(
            Severity.WARNING,
            "smtp.tls-old-protocol",
            f"{where} negotiated {tls.version}, which RFC 8996 deprecates.",
            "Enable TLS 1.2 and 1.3 on the server (Postfix: smtpd_tls_protocols = >=TLSv1.2 and "
            "smtpd_tls_mandatory_protocols = >=TLSv1.2) and update OpenSSL if it cannot do them.",
        )
    if tls.verified and name_ok is not False and not expired and not not_yet:
        days = cert.days_left(now) if cert is not None else None
        about = (
            f"; certificate for {', '.join(cert.dns_names + cert.ip_addresses) or cert.subject} issued by "
            f"{cert.issuer_common_name or cert.issuer}, valid until {cert.not_after.date().isoformat()}"
            if cert is not None
            else ""
        )
        section.add(Severity.OK, "smtp.tls-ok", f"STARTTLS works on {where}: {tls.version} with {tls.cipher}{about}.")
        if cert is not None and days is not None and days < EXPIRY_WARNING_DAYS:
            section.add(
                Severity.WARNING,
                "smtp.cert-expires-soon",
                f"The certificate on {where} expires in {max(days, 0):.0f} days, on {cert.not_after.date().isoformat()}.",
                "Renew it now (`certbot renew`) and check why automatic renewal has not run (`systemctl list-timers`); "
                "reload the mail server after renewal so it serves the new file.",
            )


def assess(result: ProbeResult) -> Section:
    """The findings for a finished probe (also usable on a result rebuilt from stored data)."""
    section = Section(SECTION_NAME, records=list(result.transcript))
    details = result.to_dict()
    del details["transcript"]
    section.details = details
    where = _where(result)
    banner = result.banner
    if banner is not None and banner.code == 220:
        ms = f" in {_ms(result.timings.banner_ms)}" if result.timings.banner_ms is not None else ""
        name = f", announcing itself as {result.banner_host}" if result.banner_host else ""
        section.add(Severity.OK, "smtp.banner-ok", f"{where} greeted with 220{ms}{name}.")
    if result.ehlo is not None:
        if result.greeting_command == "EHLO":
            names = " ".join(sorted(result.extensions)) or "none"
            section.add(Severity.OK, "smtp.ehlo-ok", f"{where} accepted EHLO and offers these extensions: {names}.")
        else:
            section.add(
                Severity.WARNING,
                "smtp.ehlo-unsupported",
                f"{where} refused EHLO ({result.ehlo_refusal}) and only speaks HELO, so it offers no STARTTLS, SIZE or 8BITMIME.",
                "Enable ESMTP in the server (it is the default of every current MTA); an old appliance or a proxy that "
                "filters EHLO (some firewalls' 'SMTP fixup') is the usual cause.",
            )
        cleartext = [m for m in result.auth_mechanisms if m in CLEARTEXT_AUTH_MECHANISMS]
        if cleartext:
            section.add(
                Severity.WARNING,
                "smtp.auth-before-tls",
                f"{where} offers AUTH {' '.join(cleartext)} before STARTTLS, so a client can send its password unencrypted.",
                "Offer authentication only inside TLS: Postfix smtpd_tls_auth_only = yes; Exim server_advertise_condition "
                "= ${if def:tls_in_cipher} on each authenticator; Exchange: require TLS on the receive connector.",
            )
        if not result.starttls_offered:
            section.add(
                Severity.ERROR,
                "smtp.starttls-missing",
                f"{where} does not offer STARTTLS, so mail to it travels unencrypted.",
                "Install a certificate and enable STARTTLS: Postfix smtpd_tls_chain_files = key and full chain, "
                "smtpd_tls_security_level = may; Exim tls_certificate, tls_privatekey and tls_advertise_hosts = *. "
                f"Large receivers already refuse plain-text mail: {_STARTTLS_ARTICLE}.",
            )
        elif result.starttls_reply is not None and result.starttls_reply.code != 220:
            section.add(
                Severity.ERROR,
                "smtp.starttls-refused",
                f"{where} advertises STARTTLS but answered it with {result.starttls_reply}.",
                "The server announces TLS it cannot start, usually because its certificate or key is missing or unreadable; "
                "check the SMTP daemon's log at startup for TLS warnings and fix the file paths and permissions "
                f"(Postfix: smtpd_tls_chain_files). See {_STARTTLS_ARTICLE}.",
            )
    if result.tls is not None:
        _tls_findings(section, result, result.tls)
    if result.failure is not None:
        _failure_finding(section, result, result.failure)
    return section
