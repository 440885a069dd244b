"""Open-relay test: does the server take mail for a domain it does not host from a stranger?

Each trick is one SMTP transaction (MAIL FROM, RCPT TO, then RSET): the classic
address forms that fooled relay checks over the years (percent hack, bang path,
source route, quoted local part, ...). The test stops at RCPT: a 2xx reply to
RCPT is the server taking responsibility for the recipient, which is all an
open relay needs, so no DATA and no message is ever sent.

``<server>`` in the tricks is the domain the server names in its banner or EHLO
reply (or ``server_domain``), so the addresses look local to it; its IP literal
is used when it names none. When the server offers STARTTLS the test uses it, as
any sending MTA would, without checking the certificate (the probe does that).

If the server drops the connection in the middle of a trick, that trick is
marked ``error`` and the next one starts on a new connection.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from coldrelay.dns.report import Section, Severity
from coldrelay.smtpcheck.wire import (
    FailureKind,
    SessionError,
    SessionFailure,
    SMTPClient,
    SMTPReply,
    announced_host,
    check_target,
    elapsed_ms,
    greet,
    parse_extensions,
    unverified_context,
)

SECTION_NAME = "relay"

PROBE_USER = "relaytest"
"""The local part of every address the test uses."""

FOREIGN_LITERAL = "192.0.2.1"
"""An address in TEST-NET-1 (RFC 5737): certainly not the server's own."""

EHLO_NAME = "coldrelay.invalid"

_RELAY_ARTICLE = "/smtp-errors/postfix-554-5-7-1-relay-access-denied"


@dataclass(frozen=True, slots=True)
class TrickNames:
    """The names the tricks are built from."""

    server: str
    """The server's own domain (or its address literal)."""
    server_literal: str
    """The server's address as an address literal: ``[192.0.2.25]`` or ``[IPv6:2001:db8::25]``."""
    probe: str
    """Our sender domain: foreign to the server."""
    target: str
    """The foreign destination a relay would forward to."""


@dataclass(frozen=True, slots=True)
class RelayTrick:
    """One way of asking the server to relay."""

    name: str
    """Stable: the finding for an accepted trick is ``relay.accepted.<name>``."""
    description: str
    build: Callable[[TrickNames], tuple[str, str]]
    """The MAIL FROM and RCPT TO paths, brackets included."""
    foreign: bool = True
    """A 2xx to this recipient means mail can leave for a domain the server does not host."""


def _u(domain: str) -> str:
    return f"{PROBE_USER}@{domain}"


def _local(n: TrickNames) -> str:
    return f"<{_u(n.server)}>"


RELAY_TRICKS: tuple[RelayTrick, ...] = (
    RelayTrick(
        "plain",
        "a foreign recipient, sender in the server's own domain",
        lambda n: (_local(n), f"<{_u(n.target)}>"),
    ),
    RelayTrick(
        "foreign-sender",
        "foreign sender and foreign recipient",
        lambda n: (f"<{_u(n.probe)}>", f"<{_u(n.target)}>"),
    ),
    RelayTrick(
        "null-sender",
        "the null reverse-path of bounces",
        lambda n: ("<>", f"<{_u(n.target)}>"),
    ),
    RelayTrick(
        "percent-hack",
        "user%foreign@server",
        lambda n: (_local(n), f"<{PROBE_USER}%{n.target}@{n.server}>"),
    ),
    RelayTrick(
        "bang-path",
        "foreign!user@server (UUCP style)",
        lambda n: (_local(n), f"<{n.target}!{PROBE_USER}@{n.server}>"),
    ),
    RelayTrick(
        "quoted-local-part",
        '"user@foreign"@server',
        lambda n: (_local(n), f'<"{PROBE_USER}@{n.target}"@{n.server}>'),
    ),
    RelayTrick(
        "source-route",
        "@server:user@foreign (RFC 821 source route)",
        lambda n: (_local(n), f"<@{n.server}:{_u(n.target)}>"),
    ),
    RelayTrick(
        "address-literal",
        "a recipient at a foreign IP literal",
        lambda n: (_local(n), f"<{_u(f'[{FOREIGN_LITERAL}]')}>"),
    ),
    RelayTrick(
        "unqualified",
        "a recipient without a domain",
        lambda n: (_local(n), f"<{PROBE_USER}>"),
        foreign=False,
    ),
    RelayTrick(
        "double-at",
        "user@foreign@server",
        lambda n: (_local(n), f"<{_u(n.target)}@{n.server}>"),
    ),
    RelayTrick(
        "uppercase",
        "the foreign recipient in upper case",
        lambda n: (_local(n).upper(), f"<{_u(n.target).upper()}>"),
    ),
    RelayTrick(
        "trailing-dot",
        "the foreign domain written with a final dot",
        lambda n: (_local(n), f"<{_u(n.target)}.>"),
    ),
    RelayTrick(
        "quoted-percent-hack",
        '"user%foreign"@server',
        lambda n: (_local(n), f'<"{PROBE_USER}%{n.target}"@{n.server}>'),
    ),
    RelayTrick(
        "percent-hack-literal",
        "user%foreign@[server address]",
        lambda n: (_local(n), f"<{PROBE_USER}%{n.target}@{n.server_literal}>"),
    ),
)
_ROUTING_TRICKS = frozenset(
    {"percent-hack", "bang-path", "quoted-local-part", "double-at", "quoted-percent-hack", "percent-hack-literal"}
)
"""Tricks that hide the foreign destination inside the local part."""
TRICKS_BY_NAME = {trick.name: trick for trick in RELAY_TRICKS}


class RelayOutcome(StrEnum):
    ACCEPTED = "accepted"
    """RCPT got a 2xx: the server took the recipient."""
    REJECTED = "rejected"
    """RCPT got a 5xx."""
    DEFERRED = "deferred"
    """RCPT got a 4xx (greylisting, a temporary policy): no conclusion."""
    SENDER_REJECTED = "sender-rejected"
    """MAIL FROM got a 5xx, so the recipient was never tried."""
    SENDER_DEFERRED = "sender-deferred"
    ERROR = "error"
    """The connection broke, timed out or the server sent garbage during this trick."""
    NOT_TRIED = "not-tried"
    """No connection could be made for this trick."""


_REFUSED = frozenset({RelayOutcome.REJECTED, RelayOutcome.SENDER_REJECTED})


@dataclass(slots=True)
class RelayAttempt:
    """One trick: the envelope it used, the server's replies and what they mean."""

    trick: str
    mail_from: str
    rcpt_to: str
    outcome: RelayOutcome
    mail_reply: SMTPReply | None = None
    rcpt_reply: SMTPReply | None = None
    detail: str = ""
    """For ``error`` and ``not-tried``: what went wrong."""

    @property
    def accepted(self) -> bool:
        return self.outcome is RelayOutcome.ACCEPTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "trick": self.trick,
            "mail_from": self.mail_from,
            "rcpt_to": self.rcpt_to,
            "outcome": self.outcome.value,
            "mail_reply": self.mail_reply.to_dict() if self.mail_reply else None,
            "rcpt_reply": self.rcpt_reply.to_dict() if self.rcpt_reply else None,
            "detail": self.detail,
        }


@dataclass(slots=True)
class RelayTestResult:
    host: str
    port: int
    probe_domain: str
    target_domain: str
    server_domain: str | None = None
    server_domain_source: str | None = None
    """``parameter``, ``banner``, ``ehlo``, ``host`` or ``address``: where ``server_domain`` came from."""
    peer: str | None = None
    banner: SMTPReply | None = None
    tls_used: bool = False
    """The tricks ran inside STARTTLS (at least on the first connection)."""
    connections: int = 0
    attempts: list[RelayAttempt] = field(default_factory=list)
    failure: SessionFailure | None = None
    """Why tricks could not be tried, when a connection could not be (re)opened."""
    total_ms: float | None = None
    transcript: list[str] = field(default_factory=list)
    section: Section = field(default_factory=lambda: Section(SECTION_NAME))

    @property
    def accepted(self) -> list[str]:
        """The tricks the server accepted, in test order."""
        return [a.trick for a in self.attempts if a.accepted]

    @property
    def open_relay(self) -> bool:
        return any(a.accepted and TRICKS_BY_NAME[a.trick].foreign for a in self.attempts)

    def outcomes(self) -> dict[str, str]:
        return {a.trick: a.outcome.value for a in self.attempts}

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "probe_domain": self.probe_domain,
            "target_domain": self.target_domain,
            "server_domain": self.server_domain,
            "server_domain_source": self.server_domain_source,
            "peer": self.peer,
            "banner": self.banner.to_dict() if self.banner else None,
            "tls_used": self.tls_used,
            "connections": self.connections,
            "open_relay": self.open_relay,
            "accepted": self.accepted,
            "attempts": [a.to_dict() for a in self.attempts],
            "failure": self.failure.to_dict() if self.failure else None,
            "total_ms": self.total_ms,
            "transcript": list(self.transcript),
        }


def _literal(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"[{address}]"
    return f"[IPv6:{ip.compressed}]" if ip.version == 6 else f"[{ip}]"


def _looks_like_domain(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "." in host.strip(".")
    return False


async def _open(result: RelayTestResult, timeout: float, *, use_tls: bool) -> tuple[SMTPClient, bool]:
    """Connect and greet; STARTTLS when offered and wanted. Returns the client and whether TLS is up."""
    client = SMTPClient(result.host, result.port, timeout, result.transcript)
    result.connections += 1
    if result.connections > 1:
        result.transcript.append(f"-- connection {result.connections}")
    try:
        await client.connect()
        greeting = await greet(client, EHLO_NAME)
        if result.banner is None:
            result.peer, result.banner = client.peer, greeting.banner
            _settle_server_domain(result, greeting.banner, greeting.reply if greeting.command == "EHLO" else None)
        if not use_tls or greeting.command != "EHLO" or "STARTTLS" not in parse_extensions(greeting.reply):
            return client, False
        reply = await client.command("STARTTLS", "STARTTLS")
        if reply.code != 220:
            return client, False
        await client.starttls(unverified_context(), result.host)
        after = await client.command(f"EHLO {EHLO_NAME}", "EHLO after TLS")
        if after.code != 250:
            helo = await client.command(f"HELO {EHLO_NAME}", "HELO after TLS")
            if helo.code != 250:
                raise SessionError(
                    SessionFailure("HELO after TLS", FailureKind.REJECTED, f"HELO inside TLS was answered with {helo}")
                )
        return client, True
    except SessionError:
        await client.close()
        raise


def _settle_server_domain(result: RelayTestResult, banner: SMTPReply, ehlo: SMTPReply | None) -> None:
    if result.server_domain is not None:
        return
    for source, reply in (("banner", banner), ("ehlo", ehlo)):
        name = announced_host(reply)
        if name is not None:
            result.server_domain, result.server_domain_source = name, source
            return
    if _looks_like_domain(result.host):
        result.server_domain, result.server_domain_source = result.host.rstrip(".").lower(), "host"
    else:
        result.server_domain, result.server_domain_source = _literal(result.peer or result.host), "address"


async def _try(client: SMTPClient, trick: RelayTrick, names: TrickNames) -> RelayAttempt:
    mail_from, rcpt_to = trick.build(names)
    attempt = RelayAttempt(trick.name, mail_from, rcpt_to, RelayOutcome.ERROR)
    client.transcript.append(f"-- trick {trick.name}")
    try:
        attempt.mail_reply = await client.command(f"MAIL FROM:{mail_from}", "MAIL")
        if not attempt.mail_reply.positive:
            attempt.outcome = RelayOutcome.SENDER_DEFERRED if attempt.mail_reply.transient else RelayOutcome.SENDER_REJECTED
            return attempt
        attempt.rcpt_reply = await client.command(f"RCPT TO:{rcpt_to}", "RCPT")
    except SessionError as error:
        attempt.detail = f"{error.failure.stage}: {error.failure.detail}"
        return attempt
    reply = attempt.rcpt_reply
    if 200 <= reply.code < 300:
        attempt.outcome = RelayOutcome.ACCEPTED
    elif reply.transient:
        attempt.outcome = RelayOutcome.DEFERRED
    elif reply.permanent:
        attempt.outcome = RelayOutcome.REJECTED
    else:  # a 3xx to RCPT is a protocol error; count it as not accepted, but not as a refusal either
        attempt.detail = f"RCPT answered with {reply}"
    return attempt


async def relay_test(
    host: str,
    port: int = 25,
    *,
    timeout: float = 10.0,
    probe_domain: str = "relay-test.invalid",
    target_domain: str = "example.net",
    server_domain: str | None = None,
) -> RelayTestResult:
    """Try every trick in ``RELAY_TRICKS`` against ``host:port`` and report which the server accepted.

    ``probe_domain`` is the foreign sender domain, ``target_domain`` the foreign destination;
    ``server_domain`` overrides the domain read from the banner. ``timeout`` applies to each step.
    Never raises on the server's behaviour; ValueError for arguments that cannot work.
    """
    check_target(port, timeout)
    for label, value in (("probe_domain", probe_domain), ("target_domain", target_domain), ("server_domain", server_domain)):
        if value is not None and (not value.isascii() or not value or any(c.isspace() or c in '@<>"' for c in value)):
            raise ValueError(f"{label} must be an ASCII domain name, got {value!r}")
    result = RelayTestResult(host=host, port=port, probe_domain=probe_domain, target_domain=target_domain)
    if server_domain is not None:
        result.server_domain, result.server_domain_source = server_domain.rstrip(".").lower(), "parameter"
    started = time.perf_counter()
    await _run(result, timeout)
    result.total_ms = elapsed_ms(started)
    result.section = assess(result)
    return result


async def _connect_for_trick(result: RelayTestResult, timeout: float, use_tls: bool) -> tuple[SMTPClient | None, bool, bool]:
    """A greeted connection, or None after recording why. Returns (client, TLS is up, use TLS from now on)."""
    try:
        client, tls_up = await _open(result, timeout, use_tls=use_tls)
        return client, tls_up, use_tls
    except SessionError as error:
        failure = error.failure
    if failure.stage == "TLS" and use_tls:
        # The server offers TLS it cannot complete: test in plain text, as a sending server would fall back.
        result.transcript.append("-- TLS failed; retrying without STARTTLS")
        try:
            client, tls_up = await _open(result, timeout, use_tls=False)
            return client, tls_up, False
        except SessionError as error:
            failure = error.failure
    result.failure = failure
    return None, False, use_tls


async def _run(result: RelayTestResult, timeout: float) -> None:
    client: SMTPClient | None = None
    use_tls = True
    try:
        for index, trick in enumerate(RELAY_TRICKS):
            if client is None:
                client, tls_up, use_tls = await _connect_for_trick(result, timeout, use_tls)
                if client is None:
                    assert result.failure is not None
                    _not_tried(result, RELAY_TRICKS[index:], result.failure)
                    return
                if not result.attempts:
                    result.tls_used = tls_up
            attempt = await _try(client, trick, _names(result))
            result.attempts.append(attempt)
            if attempt.outcome is RelayOutcome.ERROR and attempt.rcpt_reply is None:
                await client.close()
                client = None
                continue
            try:
                reset: SMTPReply | None = await client.command("RSET", "RSET")
            except SessionError:
                reset = None
            if reset is None or reset.code != 250:
                await client.close()
                client = None
    finally:
        if client is not None:
            await client.quit()


def _names(result: RelayTestResult) -> TrickNames:
    server = result.server_domain or _literal(result.peer or result.host)
    return TrickNames(server, _literal(result.peer or result.host), result.probe_domain, result.target_domain)


def _not_tried(result: RelayTestResult, tricks: tuple[RelayTrick, ...], failure: SessionFailure) -> None:
    names = _names(result)
    for trick in tricks:
        mail_from, rcpt_to = trick.build(names)
        result.attempts.append(
            RelayAttempt(trick.name, mail_from, rcpt_to, RelayOutcome.NOT_TRIED, detail=f"{failure.stage}: {failure.detail}")
        )


# --- findings -------------------------------------------------------------------------------------------------

_RELAY_FIX = (
    "Relay only for authenticated or trusted clients. Postfix: smtpd_relay_restrictions = permit_mynetworks, "
    "permit_sasl_authenticated, reject_unauth_destination, with mynetworks limited to your own hosts. Exim: in "
    "acl_check_rcpt accept only domains = +local_domains : +relay_to_domains, or hosts = +relay_from_hosts, or "
    "authenticated = *. Exchange: remove Ms-Exch-SMTP-Accept-Any-Recipient from anonymous users on the receive "
    "connector. Then check the server's IPs on the blocklists (/tools/blocklist): open relays get listed within hours."
)

_ROUTING_FIX = (
    " The server also honours sender-specified routing in the local part; refuse it from untrusted clients "
    "(Postfix: allow_untrusted_routing = no, the default; Sendmail: drop FEATURE(`loose_relay_check'))."
)


def _accepted_finding(section: Section, result: RelayTestResult, attempt: RelayAttempt) -> None:
    trick = TRICKS_BY_NAME[attempt.trick]
    where = f"{result.host} port {result.port}"
    envelope = f"MAIL FROM:{attempt.mail_from} RCPT TO:{attempt.rcpt_to}"
    if not trick.foreign:
        section.add(
            Severity.WARNING,
            f"relay.accepted.{trick.name}",
            f"{where} accepted a recipient with no domain ({envelope}: {attempt.rcpt_reply}).",
            "Refuse recipients that are not fully qualified (RFC 5321 2.3.5): Postfix reject_non_fqdn_recipient in "
            "smtpd_recipient_restrictions; a bare name is completed with the server's own domain and invites guessing.",
        )
        return
    routing = trick.name in _ROUTING_TRICKS
    if routing:
        message = (
            f"{where} accepted a recipient that hides the foreign domain {result.target_domain} in its local part "
            f"({trick.description}: {envelope}, answered {attempt.rcpt_reply}); a server that routes such addresses "
            "for strangers is an open relay."
        )
    else:
        message = (
            f"{where} accepted a recipient in a domain it does not host from an unauthenticated client "
            f"({trick.description}: {envelope}, answered {attempt.rcpt_reply}), so anyone can send mail through it: "
            "it is an open relay."
        )
    section.add(
        Severity.ERROR,
        f"relay.accepted.{trick.name}",
        message,
        _RELAY_FIX + (_ROUTING_FIX if routing else "") + f" See {_RELAY_ARTICLE} for what the refusal should look like.",
    )


def assess(result: RelayTestResult) -> Section:
    """The findings for a finished relay test."""
    section = Section(SECTION_NAME, records=list(result.transcript))
    details = result.to_dict()
    del details["transcript"]
    section.details = details
    where = f"{result.host} port {result.port}"
    tried = [a for a in result.attempts if a.outcome is not RelayOutcome.NOT_TRIED]
    if not tried:
        failure = result.failure
        detail = f"{failure.stage}: {failure.detail}" if failure is not None else "no connection"
        section.add(
            Severity.WARNING,
            "relay.not-tested",
            f"The relay test could not run against {where}: {detail}.",
            "Make the server reachable on this port first (the SMTP probe shows why it is not), then run the test again.",
        )
        return section
    for attempt in result.attempts:
        if attempt.accepted:
            _accepted_finding(section, result, attempt)
    foreign = [a for a in result.attempts if TRICKS_BY_NAME[a.trick].foreign]
    if any(a.accepted for a in foreign):
        return section
    unsettled = [a for a in foreign if a.outcome not in _REFUSED]
    if not unsettled:
        section.add(Severity.OK, "relay.refused", f"{where} refused all {len(foreign)} attempts to relay to a foreign domain.")
        return section
    counts: dict[str, int] = {}
    for attempt in unsettled:
        counts[attempt.outcome.value] = counts.get(attempt.outcome.value, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    section.add(
        Severity.WARNING,
        "relay.inconclusive",
        f"{where} accepted no relay attempt, but {len(unsettled)} of {len(foreign)} got no final answer ({summary}).",
        "Temporary refusals (greylisting) and dropped connections hide the real answer: run the test again in a few "
        "minutes, and check the server's log for the tricks listed as deferred or error.",
    )
    return section
