"""The open-relay test against real servers on 127.0.0.1: aiosmtpd as a deliberate open relay, as a closed server
("550 5.7.1 Unable to relay"), as a naive one that only looks at the domain, as a greylister; scripted peers for
hang-ups and broken TLS. Outcomes are asserted trick by trick."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trustme

from coldrelay.dns.report import SectionStatus, Severity
from coldrelay.smtpcheck import RELAY_TRICKS, RelayOutcome, RelayTestResult, relay_test
from scripted_smtp import CLOSE, SILENT, Action, ScriptedServer, free_port, smtpd

TRICKS = [trick.name for trick in RELAY_TRICKS]

# --- servers ------------------------------------------------------------------------------------------------


def conversation(
    ehlo: bytes = b"250-mx.scripted.test\r\n250 8BITMIME\r\n",
    mail: Callable[[str], Action] = lambda line: b"250 2.1.0 Ok\r\n",
    rcpt: Callable[[str], Action] = lambda line: b"554 5.7.1 Relay access denied\r\n",
    starttls: Action = b"454 4.7.0 TLS not available\r\n",
) -> Callable[[str], Action]:
    """A ``respond`` for ScriptedServer with the usual verbs."""

    def respond(line: str) -> Action:
        verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
        if verb in {"EHLO", "HELO"}:
            return ehlo
        if verb == "MAIL":
            return mail(line)
        if verb == "RCPT":
            return rcpt(line)
        if verb == "RSET":
            return b"250 2.0.0 Ok\r\n"
        if verb == "STARTTLS":
            return starttls
        return b"502 5.5.2 Error: command not recognized\r\n"

    return respond


class Closed:
    """Refuses every recipient outside its own domain, and local parts that carry routing, like Postfix does."""

    local = "mx.closed.test"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        local_part, at, domain = address.rpartition("@")
        if not at:
            return f"504 5.5.2 <{address}>: Recipient address rejected: need fully-qualified address"
        if domain.lower() != self.local or any(c in local_part for c in "%!@"):
            return "550 5.7.1 Unable to relay"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"


class Naive:
    """Only looks at the text after the last @: the routing tricks get through."""

    local = "mx.naive.test"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        _, at, domain = address.rpartition("@")
        if at and domain.lower() != self.local:
            return "550 5.7.1 Unable to relay"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"


class Greylisting:
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        return "450 4.2.0 Recipient address rejected: Greylisted, try again later"


class SpoofGuard:
    """Refuses (or defers) MAIL FROM in its own domain from strangers, and relaying to foreign recipients."""

    def __init__(self, own_sender_reply: str) -> None:
        self.own_sender_reply = own_sender_reply

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        if address.lower().endswith("@mx.guard.test"):
            return self.own_sender_reply
        envelope.mail_from = address
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        return "550 5.7.1 Unable to relay"


def run(port: int, **kwargs: Any) -> RelayTestResult:
    return asyncio.run(relay_test("127.0.0.1", port, **kwargs))


def codes_and_severities(result: RelayTestResult) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in result.section.findings]


# --- the envelopes ------------------------------------------------------------------------------------------------


def test_every_trick_and_its_envelope() -> None:
    with ScriptedServer(b"220 mx.scripted.test ESMTP\r\n", conversation()) as server:
        result = run(server.port, server_domain="mail.example.org", probe_domain="probe.example.com", target_domain="target.test")
    envelopes = {a.trick: (a.mail_from, a.rcpt_to) for a in result.attempts}
    assert envelopes == {
        "plain": ("<relaytest@mail.example.org>", "<relaytest@target.test>"),
        "foreign-sender": ("<relaytest@probe.example.com>", "<relaytest@target.test>"),
        "null-sender": ("<>", "<relaytest@target.test>"),
        "percent-hack": ("<relaytest@mail.example.org>", "<relaytest%target.test@mail.example.org>"),
        "bang-path": ("<relaytest@mail.example.org>", "<target.test!relaytest@mail.example.org>"),
        "quoted-local-part": ("<relaytest@mail.example.org>", '<"relaytest@target.test"@mail.example.org>'),
        "source-route": ("<relaytest@mail.example.org>", "<@mail.example.org:relaytest@target.test>"),
        "address-literal": ("<relaytest@mail.example.org>", "<relaytest@[192.0.2.1]>"),
        "unqualified": ("<relaytest@mail.example.org>", "<relaytest>"),
        "double-at": ("<relaytest@mail.example.org>", "<relaytest@target.test@mail.example.org>"),
        "uppercase": ("<RELAYTEST@MAIL.EXAMPLE.ORG>", "<RELAYTEST@TARGET.TEST>"),
        "trailing-dot": ("<relaytest@mail.example.org>", "<relaytest@target.test.>"),
        "quoted-percent-hack": ("<relaytest@mail.example.org>", '<"relaytest%target.test"@mail.example.org>'),
        "percent-hack-literal": ("<relaytest@mail.example.org>", "<relaytest%target.test@[127.0.0.1]>"),
    }
    assert result.server_domain == "mail.example.org" and result.server_domain_source == "parameter"
    # Each trick is its own transaction: MAIL, RCPT, RSET, on one connection.
    assert [line for line in result.transcript if line.startswith("C: ")].count("C: RSET") == len(RELAY_TRICKS)
    assert result.connections == 1 and server.connections == 1
    assert "C: DATA" not in result.transcript
    assert codes_and_severities(result) == [("relay.refused", Severity.OK)]


def test_server_domain_comes_from_the_banner() -> None:
    with ScriptedServer(b"220 mx.banner.test ESMTP\r\n", conversation(ehlo=b"250 mx.ehlo.test\r\n")) as server:
        result = run(server.port)
    assert (result.server_domain, result.server_domain_source) == ("mx.banner.test", "banner")
    assert result.attempts[0].mail_from == "<relaytest@mx.banner.test>"
    assert result.attempts[1].mail_from == "<relaytest@relay-test.invalid>"  # the default probe domain
    assert result.attempts[0].rcpt_to == "<relaytest@example.net>"  # the default target domain


def test_server_domain_from_ehlo_then_address() -> None:
    with ScriptedServer(b"220 ESMTP ready\r\n", conversation(ehlo=b"250-mx.ehlo.test\r\n250 SIZE 1000\r\n")) as server:
        result = run(server.port)
    assert (result.server_domain, result.server_domain_source) == ("mx.ehlo.test", "ehlo")
    with ScriptedServer(b"220 ESMTP ready\r\n", conversation(ehlo=b"250 localhost\r\n")) as server:
        result = run(server.port)
    assert (result.server_domain, result.server_domain_source) == ("[127.0.0.1]", "address")
    assert result.attempts[3].rcpt_to == "<relaytest%example.net@[127.0.0.1]>"


# --- real servers ---------------------------------------------------------------------------------------------------

OPEN_RELAY_OUTCOMES = {
    "plain": "accepted",
    "foreign-sender": "accepted",
    "null-sender": "accepted",
    "percent-hack": "accepted",
    "bang-path": "accepted",
    "quoted-local-part": "accepted",
    "source-route": "accepted",
    "address-literal": "accepted",
    "unqualified": "accepted",
    "double-at": "rejected",  # aiosmtpd's parser: 553 5.1.3 malformed address
    "uppercase": "accepted",
    "trailing-dot": "rejected",  # ditto
    "quoted-percent-hack": "accepted",
    "percent-hack-literal": "accepted",
}


def test_open_relay() -> None:
    with smtpd(server_hostname="mx.open.test") as port:
        result = run(port)
    assert result.outcomes() == OPEN_RELAY_OUTCOMES
    accepted = [t for t in TRICKS if OPEN_RELAY_OUTCOMES[t] == "accepted"]
    assert result.accepted == accepted and result.open_relay
    assert codes_and_severities(result) == [
        (f"relay.accepted.{t}", Severity.WARNING if t == "unqualified" else Severity.ERROR) for t in accepted
    ]
    assert result.section.effective_status is SectionStatus.FAIL
    plain = result.attempts[0]
    assert plain.mail_reply is not None and plain.mail_reply.code == 250
    assert plain.rcpt_reply is not None and str(plain.rcpt_reply) == "250 OK"
    double_at = result.attempts[TRICKS.index("double-at")]
    assert double_at.rcpt_reply is not None and str(double_at.rcpt_reply) == "553 5.1.3 Error: malformed address"
    assert result.server_domain == "mx.open.test" and not result.tls_used and result.connections == 1
    finding = result.section.findings[0]
    assert "MAIL FROM:<relaytest@mx.open.test> RCPT TO:<relaytest@example.net>" in finding.message
    assert "/smtp-errors/postfix-554-5-7-1-relay-access-denied" in finding.fix
    assert "allow_untrusted_routing" in result.section.findings[TRICKS.index("percent-hack")].fix
    assert "allow_untrusted_routing" not in finding.fix
    data = json.loads(json.dumps(result.section.to_dict()))
    assert data["details"]["accepted"] == accepted and data["details"]["open_relay"] is True
    assert data["records"] == result.transcript


def test_open_relay_behind_required_starttls(tmp_path: Any) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.open.test").configure_cert(context)
    with smtpd(server_hostname="mx.open.test", tls_context=context, require_starttls=True) as port:
        result = run(port)
    assert result.tls_used
    assert result.outcomes() == OPEN_RELAY_OUTCOMES
    assert any(line.startswith("-- TLS established") for line in result.transcript)


CLOSED_OUTCOMES = {
    "plain": "rejected",
    "foreign-sender": "rejected",
    "null-sender": "rejected",
    "percent-hack": "rejected",
    "bang-path": "rejected",
    "quoted-local-part": "rejected",
    "source-route": "rejected",
    "address-literal": "rejected",
    "unqualified": "rejected",
    "double-at": "rejected",
    "uppercase": "rejected",
    "trailing-dot": "rejected",
    "quoted-percent-hack": "rejected",
    "percent-hack-literal": "rejected",
}


def test_closed_server() -> None:
    with smtpd(Closed(), server_hostname="mx.closed.test") as port:
        result = run(port)
    assert result.outcomes() == CLOSED_OUTCOMES
    assert result.accepted == [] and not result.open_relay
    assert codes_and_severities(result) == [("relay.refused", Severity.OK)]
    assert result.section.effective_status is SectionStatus.PASS
    replies = {a.trick: str(a.rcpt_reply) for a in result.attempts}
    assert replies["plain"] == "550 5.7.1 Unable to relay"
    assert replies["percent-hack"] == "550 5.7.1 Unable to relay"
    assert replies["unqualified"] == "504 5.5.2 <relaytest>: Recipient address rejected: need fully-qualified address"
    assert replies["trailing-dot"] == "553 5.1.3 Error: malformed address"


def test_naive_server_falls_for_the_routing_tricks() -> None:
    with smtpd(Naive(), server_hostname="mx.naive.test") as port:
        result = run(port)
    assert result.outcomes() == {
        "plain": "rejected",
        "foreign-sender": "rejected",
        "null-sender": "rejected",
        "percent-hack": "accepted",
        "bang-path": "accepted",
        "quoted-local-part": "accepted",
        "source-route": "rejected",  # the parser strips the route: relaytest@example.net
        "address-literal": "rejected",
        "unqualified": "accepted",
        "double-at": "rejected",
        "uppercase": "rejected",
        "trailing-dot": "rejected",
        "quoted-percent-hack": "accepted",
        "percent-hack-literal": "rejected",  # [127.0.0.1] is not its domain
    }
    assert codes_and_severities(result) == [
        ("relay.accepted.percent-hack", Severity.ERROR),
        ("relay.accepted.bang-path", Severity.ERROR),
        ("relay.accepted.quoted-local-part", Severity.ERROR),
        ("relay.accepted.unqualified", Severity.WARNING),
        ("relay.accepted.quoted-percent-hack", Severity.ERROR),
    ]


def test_unqualified_alone_is_not_an_open_relay() -> None:
    def rcpt(line: str) -> Action:
        return b"250 2.1.5 Ok\r\n" if line == "RCPT TO:<relaytest>" else b"550 5.7.1 Unable to relay\r\n"

    with ScriptedServer(b"220 mx.lax.test ESMTP\r\n", conversation(rcpt=rcpt)) as server:
        result = run(server.port)
    assert result.accepted == ["unqualified"] and not result.open_relay
    assert codes_and_severities(result) == [("relay.accepted.unqualified", Severity.WARNING), ("relay.refused", Severity.OK)]


def test_server_accepting_anything_names_every_trick() -> None:
    with ScriptedServer(b"220 mx.any.test ESMTP\r\n", conversation(rcpt=lambda line: b"250 2.1.5 Ok\r\n")) as server:
        result = run(server.port)
    assert result.accepted == TRICKS
    assert result.section.codes() == [f"relay.accepted.{t}" for t in TRICKS]


def test_greylisting_is_inconclusive() -> None:
    with smtpd(Greylisting(), server_hostname="mx.grey.test") as port:
        result = run(port)
    expected = {t: "deferred" for t in TRICKS} | {"double-at": "rejected", "trailing-dot": "rejected"}
    assert result.outcomes() == expected
    assert codes_and_severities(result) == [("relay.inconclusive", Severity.WARNING)]
    assert "11 deferred" in result.section.findings[0].message


@pytest.mark.parametrize(
    ("reply", "own_outcome", "code"),
    [
        ("553 5.7.1 Sender address rejected: not logged in", "sender-rejected", "relay.refused"),
        ("451 4.3.0 Try again later", "sender-deferred", "relay.inconclusive"),
    ],
)
def test_sender_refused_before_the_recipient(reply: str, own_outcome: str, code: str) -> None:
    with smtpd(SpoofGuard(reply), server_hostname="mx.guard.test") as port:
        result = run(port)
    outcomes = result.outcomes()
    assert outcomes.pop("foreign-sender") == "rejected" and outcomes.pop("null-sender") == "rejected"
    assert set(outcomes.values()) == {own_outcome}
    own = result.attempts[0]
    assert own.outcome is RelayOutcome(own_outcome) and own.rcpt_reply is None
    assert own.mail_reply is not None and str(own.mail_reply) == reply
    assert result.section.codes() == [code]


# --- trouble --------------------------------------------------------------------------------------------------------


def test_hang_up_mid_test_reconnects_for_the_next_trick() -> None:
    def rcpt(line: str) -> Action:
        return CLOSE if "!" in line else b"550 5.7.1 Unable to relay\r\n"

    with ScriptedServer(b"220 mx.drop.test ESMTP\r\n", conversation(rcpt=rcpt)) as server:
        result = run(server.port)
    expected = {t: "rejected" for t in TRICKS} | {"bang-path": "error"}
    assert result.outcomes() == expected
    bang = result.attempts[TRICKS.index("bang-path")]
    assert bang.detail == "RCPT: the server closed the connection" and bang.rcpt_reply is None
    assert result.connections == 2 and server.connections == 2
    assert codes_and_severities(result) == [("relay.inconclusive", Severity.WARNING)]
    assert "1 error" in result.section.findings[0].message


def test_rset_refused_starts_a_new_connection() -> None:
    respond = conversation()

    def no_rset(line: str) -> Action:
        return b"502 5.5.1 RSET not here\r\n" if line == "RSET" else respond(line)

    with ScriptedServer(b"220 mx.norset.test ESMTP\r\n", no_rset) as server:
        result = run(server.port)
    assert result.connections == len(RELAY_TRICKS)
    assert result.section.codes() == ["relay.refused"]


def test_broken_tls_falls_back_to_plain_text() -> None:
    respond = conversation(
        ehlo=b"250-mx.badtls.test\r\n250 STARTTLS\r\n",
        starttls=(b"220 2.0.0 Ready to start TLS\r\n", b"not a TLS record\r\n", CLOSE),
    )
    with ScriptedServer(b"220 mx.badtls.test ESMTP\r\n", respond) as server:
        result = run(server.port)
    assert not result.tls_used and result.connections == 2
    assert "-- TLS failed; retrying without STARTTLS" in result.transcript
    assert result.outcomes() == {t: "rejected" for t in TRICKS}
    assert result.section.codes() == ["relay.refused"]


def test_connection_refused_means_not_tested() -> None:
    result = run(free_port())
    assert result.section.codes() == ["relay.not-tested"]
    assert result.section.findings[0].severity is Severity.WARNING
    assert result.outcomes() == {t: "not-tried" for t in TRICKS}
    assert result.failure is not None and result.failure.stage == "connect"
    assert result.attempts[0].detail.startswith("connect: ")
    assert result.attempts[0].rcpt_to == "<relaytest@example.net>"
    json.dumps(result.to_dict())


def test_silent_server_means_not_tested() -> None:
    with ScriptedServer(SILENT, conversation()) as server:
        result = run(server.port, timeout=0.3)
    assert result.section.codes() == ["relay.not-tested"]
    assert result.failure is not None and (result.failure.stage, result.failure.kind.value) == ("banner", "timeout")


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        asyncio.run(relay_test("127.0.0.1", 25, target_domain="user@example.net"))
    with pytest.raises(ValueError):
        asyncio.run(relay_test("127.0.0.1", 25, server_domain="two words"))
    with pytest.raises(ValueError):
        asyncio.run(relay_test("127.0.0.1", 70000))
