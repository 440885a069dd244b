"""The MX takes mail only for existing, enabled mailboxes of hosted domains: every relay trick is refused with
exactly ``550 5.7.1 Unable to relay``, unknown users with ``550 5.1.1``, disabled mailboxes with ``550 5.2.1``,
and nothing is stored for a refused recipient. Real listener on 127.0.0.1, real SQLite database."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator

import pytest

from coldrelay.mta import replies
from coldrelay.mta.edge import MailboxState, RecipientPolicy, parse_plain_address, split_forward_path
from coldrelay.smtpcheck import relay_test
from mx_support import RawClient, RunningMX, start, stop

RELAY_TRICKS = {
    "foreign": "<someone@elsewhere.example>",
    "foreign-uppercase": "<SOMEONE@ELSEWHERE.EXAMPLE>",
    "percent-hack": "<someone%elsewhere.example@hosted.test>",
    "percent-hack-hosted-user": "<alice%hosted.test@hosted.test>",
    "percent-hack-foreign-end": "<alice%hosted.test@elsewhere.example>",
    "percent-hack-literal": "<someone%elsewhere.example@[127.0.0.1]>",
    "bang-path": "<elsewhere.example!someone@hosted.test>",
    "bang-path-hosted-user": "<hosted.test!alice@hosted.test>",
    "quoted-local-part": '<"someone@elsewhere.example"@hosted.test>',
    "quoted-plain-local-part": '<"alice"@hosted.test>',
    "quoted-percent-hack": '<"someone%elsewhere.example"@hosted.test>',
    "quoted-with-bracket": '<"alice>x"@hosted.test>',
    "source-route-to-foreign": "<@hosted.test:someone@elsewhere.example>",
    "source-route-to-hosted": "<@elsewhere.example:alice@hosted.test>",
    "source-route-two-hops": "<@a.example,@hosted.test:alice@hosted.test>",
    "address-literal-foreign": "<someone@[192.0.2.1]>",
    "address-literal-loopback": "<alice@[127.0.0.1]>",
    "address-literal-ipv6": "<alice@[IPv6:::1]>",
    "dotted-quad-domain": "<alice@127.0.0.1>",
    "double-at": "<someone@elsewhere.example@hosted.test>",
    "double-at-adjacent": "<alice@@hosted.test>",
    "trailing-dot-domain": "<alice@hosted.test.>",
    "trailing-dot-foreign": "<someone@elsewhere.example.>",
    "double-dot-domain": "<alice@hosted..test>",
    "leading-dot-local": "<.alice@hosted.test>",
    "trailing-dot-local": "<alice.@hosted.test>",
    "double-dot-local": "<al..ice@hosted.test>",
    "url-encoded-at": "<someone%40elsewhere.example@hosted.test>",
    "qp-encoded-at": "<someone=40elsewhere.example@hosted.test>",
    "backslash-escaped-at": "<someone\\@elsewhere.example@hosted.test>",
    "comment": "<alice(comment)@hosted.test>",
    "space-in-path": "<alice @hosted.test>",
    "tab-in-path": "<alice\t@hosted.test>",
    "control-character": "<ali\x01ce@hosted.test>",
    "list": "<alice@hosted.test,someone@elsewhere.example>",
    "colon-in-local": "<elsewhere.example:alice@hosted.test>",
    "unqualified": "<alice>",
    "postmaster-unqualified": "<postmaster>",
    "null-path": "<>",
    "subdomain-of-hosted": "<alice@sub.hosted.test>",
    "hosted-as-prefix": "<alice@hosted.test.elsewhere.example>",
    "hosted-as-suffix": "<alice@evilhosted.test>",
    "underscore-domain": "<alice@hosted_test.test>",
    "hyphen-edge-label": "<alice@-hosted.test>",
    "overlong-local-part": f"<{'a' * 65}@hosted.test>",
    "overlong-path": f"<{'a' * 60}@{'b' * 60}.{'c' * 60}.{'d' * 60}.hosted.test>",
}


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMX]:
    running = start(tmp_path_factory.mktemp("mx-relay"))
    yield running
    stop(running)


def rcpt(mx: RunningMX, path: str) -> tuple[int, bytes]:
    """One transaction with a foreign sender and this forward-path; returns the RCPT reply, then tries DATA."""
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=10) as client:
        client.ehlo("client.example")
        assert client.mail("sender@example.net") == (250, b"2.1.0 Sender OK")
        reply = client.docmd(f"RCPT TO:{path}")
        if reply[0] != 250:
            assert client.docmd("DATA") == (503, b"5.5.1 Need RCPT command first")
        return reply


@pytest.mark.parametrize("path", list(RELAY_TRICKS.values()), ids=list(RELAY_TRICKS))
def test_relay_trick_is_refused_with_550_5_7_1(mx: RunningMX, path: str) -> None:
    assert rcpt(mx, path) == (550, b"5.7.1 Unable to relay")
    assert mx.all_stored() == []


def test_unknown_user_at_hosted_domain_gets_550_5_1_1(mx: RunningMX) -> None:
    assert rcpt(mx, "<nobody@hosted.test>") == (550, b"5.1.1 Recipient address rejected: user unknown")
    assert rcpt(mx, "<nobody+tag@second.test>") == (550, b"5.1.1 Recipient address rejected: user unknown")
    assert rcpt(mx, "<+tag@hosted.test>") == (550, b"5.1.1 Recipient address rejected: user unknown")
    assert mx.all_stored() == []


def test_disabled_mailbox_gets_550_5_2_1(mx: RunningMX) -> None:
    assert rcpt(mx, "<gone@hosted.test>") == (550, b"5.2.1 Recipient address rejected: mailbox disabled")
    assert mx.all_stored() == []


def test_recipient_syntax_outside_brackets_gets_501_and_parameters_555(mx: RunningMX) -> None:
    assert rcpt(mx, "alice@hosted.test") == (501, b"5.5.4 Syntax: RCPT TO:<address>")
    assert rcpt(mx, "<alice@hosted.test>junk") == (501, b"5.5.4 Syntax: RCPT TO:<address>")
    assert rcpt(mx, "<alice@hosted.test") == (501, b"5.5.4 Syntax: RCPT TO:<address>")
    assert rcpt(mx, "<<alice@hosted.test>>") == (501, b"5.5.4 Syntax: RCPT TO:<address>")
    assert rcpt(mx, "<alice@hosted.test> NOTIFY=NEVER") == (555, b"5.5.4 RCPT TO parameters not recognized or not implemented")
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=10) as client:
        client.ehlo("client.example")
        client.mail("sender@example.net")
        assert client.docmd("RCPT", "FROM:<alice@hosted.test>") == (501, b"5.5.4 Syntax: RCPT TO:<address>")
    assert mx.all_stored() == []


def test_non_ascii_recipient_is_refused_before_the_policy(mx: RunningMX) -> None:
    client = RawClient(mx.port)
    client.reply()
    client.command("EHLO client.example")
    client.command("MAIL FROM:<sender@example.net>")
    client.send("RCPT TO:<alïce@hosted.test>\r\n".encode())
    assert client.reply() == "500 5.5.2 Non-ASCII command arguments are not accepted without SMTPUTF8"
    client.close()


def test_rcpt_out_of_sequence(mx: RunningMX) -> None:
    client = RawClient(mx.port)
    client.reply()
    assert client.command("RCPT TO:<alice@hosted.test>") == "503 5.5.1 Send EHLO or HELO first"
    client.command("EHLO client.example")
    assert client.command("RCPT TO:<alice@hosted.test>") == "503 5.5.1 Need MAIL command first"
    assert client.command("QUIT") == "221 2.0.0 Bye"
    client.close()


def test_hosted_mailboxes_receive_the_message(mx: RunningMX) -> None:
    before = len(mx.delivered("alice@hosted.test")), len(mx.delivered("carol@second.test"))
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=10) as client:
        client.ehlo("client.example")
        assert client.mail("") == (250, b"2.1.0 Sender OK")  # a bounce: null reverse-path
        assert client.rcpt("alice@hosted.test") == (250, b"2.1.5 Recipient OK")
        assert client.docmd("RCPT TO:<ALICE+News@Hosted.TEST>") == (250, b"2.1.5 Recipient OK")
        assert client.rcpt("carol@second.test") == (250, b"2.1.5 Recipient OK")
        assert client.rcpt("someone@elsewhere.example") == (550, b"5.7.1 Unable to relay")
        assert client.data(b"Subject: reply\r\n\r\nthanks\r\n") == (250, b"2.0.0 Message accepted for delivery")
    alice, carol = mx.delivered("alice@hosted.test"), mx.delivered("carol@second.test")
    assert (len(alice), len(carol)) == (before[0] + 1, before[1] + 1)  # alice once, though named twice
    assert alice[-1].startswith(b"Return-Path: <>\nReceived: from client.example ([127.0.0.1])\n")
    assert b"\tfor <alice@hosted.test>; " in alice[-1]
    assert alice[-1].endswith(b"\nSubject: reply\n\nthanks\n")
    assert b"\tfor <carol@second.test>; " in carol[-1]
    assert not (mx.data_dir / "mail" / "elsewhere.example").exists()


def test_coldrelay_relay_tester_finds_no_open_door(mx: RunningMX) -> None:
    result = asyncio.run(relay_test("127.0.0.1", mx.port, timeout=10, server_domain="hosted.test"))
    assert result.failure is None
    assert result.attempts and result.accepted == []
    assert not result.open_relay
    for attempt in result.attempts:
        assert attempt.rcpt_reply is not None
        assert (attempt.rcpt_reply.code, attempt.rcpt_reply.enhanced_code) in {(550, "5.7.1"), (550, "5.1.1")}, attempt.trick


# --- the policy itself ------------------------------------------------------------------------------------------


class FakeDirectory:
    """Only for the parser-level checks below: records every lookup the policy makes."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def lookup(self, address: str) -> MailboxState:
        self.lookups.append(address)
        return MailboxState.ACTIVE if address == "alice@hosted.test" else MailboxState.NOT_HOSTED


@pytest.mark.parametrize("path", list(RELAY_TRICKS.values()), ids=list(RELAY_TRICKS))
def test_policy_refuses_tricks_without_looking_them_up_unless_plain(path: str) -> None:
    directory = FakeDirectory()
    decision = asyncio.run(RecipientPolicy(directory).decide(path))
    assert decision.reply == replies.UNABLE_TO_RELAY
    assert decision.mailbox is None and not decision.accepted
    if parse_plain_address(path) is None:
        assert directory.lookups == []


def test_policy_maps_subaddress_and_case_to_the_mailbox() -> None:
    directory = FakeDirectory()
    decision = asyncio.run(RecipientPolicy(directory).decide("<Alice+Promo@HOSTED.test>"))
    assert decision.reply == replies.RECIPIENT_OK
    assert decision.mailbox == "alice@hosted.test"
    assert directory.lookups == ["alice@hosted.test"]


def test_split_forward_path() -> None:
    assert split_forward_path("<a@b.test>") == ("<a@b.test>", "")
    assert split_forward_path("<a@b.test> SIZE=10") == ("<a@b.test>", "SIZE=10")
    assert split_forward_path('<"x>y"@b.test>') == ('<"x>y"@b.test>', "")
    assert split_forward_path("a@b.test") is None
    assert split_forward_path("<a@b.test>x") is None
    assert split_forward_path("<a@b.test") is None


def test_reply_wire_form() -> None:
    assert str(replies.UNABLE_TO_RELAY) == "550 5.7.1 Unable to relay"
    assert str(replies.START_MAIL_INPUT) == "354 End data with <CR><LF>.<CR><LF>"
    assert replies.USER_UNKNOWN.is_permanent and replies.TOO_MANY_RECIPIENTS.is_transient and replies.OK.is_positive
    assert replies.library_reply("503 Error: need MAIL command") == "503 5.5.1 Need MAIL command first"
    assert replies.library_reply("501 Syntax: NOOP [ignored]") == "501 5.5.4 Syntax: NOOP [ignored]"
    assert replies.library_reply("550 5.7.1 Unable to relay") == "550 5.7.1 Unable to relay"
    assert replies.library_reply("250-SIZE 100") == "250-SIZE 100"
    assert replies.library_reply("220 mx.test ESMTP coldrelay") == "220 mx.test ESMTP coldrelay"
