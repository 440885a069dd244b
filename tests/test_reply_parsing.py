"""Replies as people paste them: bare, multi-line, inside DSN lines and MTA sentences."""

from __future__ import annotations

import pytest

from coldrelay.errors import parse_reply


@pytest.mark.parametrize(
    ("raw", "basic", "enhanced"),
    [
        ("550 5.7.1 Unable to relay", 550, "5.7.1"),
        ("550-5.7.26 This mail is unauthenticated\n550-5.7.26 second line\n550 5.7.26 last line - gsmtp", 550, "5.7.26"),
        ("550-5.7.26 first\r\n550 5.7.26 last", 550, "5.7.26"),
        ("Diagnostic-Code: smtp; 550 5.1.1 <a@example.org>: Recipient address rejected", 550, "5.1.1"),
        ("smtp; 452 4.2.2 The email account that you tried to reach is over quota", 452, "4.2.2"),
        ("host mx.example.org[192.0.2.1] said: 554 5.7.1 Service unavailable (in reply to RCPT TO command)", 554, "5.7.1"),
        ("550 5.7.606 Access denied, banned sending IP [192.0.2.1]", 550, "5.7.606"),
        ("421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred", 421, "4.7.0"),
        ("#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##", 550, "5.1.1"),
        ("Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'", 550, "5.1.10"),
        ("554 delivery error: dd This user doesn't have a yahoo.com account", 554, None),
        ("Status: 5.4.7 (delivery time expired)", None, "5.4.7"),
        ("mailbox full", None, None),
        ("", None, None),
    ],
)
def test_codes_are_found(raw: str, basic: int | None, enhanced: str | None) -> None:
    parsed = parse_reply(raw)
    assert (parsed.basic_code, parsed.enhanced_code) == (basic, enhanced)


def test_continuation_prefixes_are_removed_and_lines_joined() -> None:
    parsed = parse_reply("550-5.7.26 This mail has been blocked\n550-5.7.26 because the sender\n550 5.7.26 is unauthenticated.")
    assert parsed.text == "550 5.7.26 This mail has been blocked because the sender is unauthenticated."


def test_ip_addresses_are_not_taken_for_codes() -> None:
    parsed = parse_reply("Connection refused by 192.0.2.5 port 25")
    assert parsed.enhanced_code is None
    assert parsed.basic_code is None


def test_mismatched_class_follows_the_basic_code() -> None:
    # Some servers send "421 5.7.0": the basic code decides whether to retry.
    assert parse_reply("421 5.7.0 Try again later").enhanced_code == "4.7.0"


def test_reply_class() -> None:
    assert parse_reply("451 4.7.1 Greylisted").reply_class == 4
    assert parse_reply("Status 5.1.1").reply_class == 5
    assert parse_reply("no code").reply_class is None


def test_unfolded_multiline_reply_loses_its_inner_markers() -> None:
    # DSNs often unfold "550-5.7.26 ...\n550 5.7.26 ..." onto one line.
    parsed = parse_reply("smtp; 550-5.7.26 This mail is blocked 550-5.7.26 because the sender 550 5.7.26 is unauthenticated")
    assert parsed.text == "550 5.7.26 This mail is blocked because the sender is unauthenticated"


def test_embedded_reply_keeps_its_own_code() -> None:
    parsed = parse_reply("host mx.example.org[192.0.2.1] said: 452 4.3.1 Insufficient system storage")
    assert "said: 452 4.3.1 Insufficient system storage" in parsed.text
    assert (parsed.basic_code, parsed.enhanced_code) == (452, "4.3.1")


def test_numbers_in_text_are_not_markers() -> None:
    assert parse_reply("552 5.3.4 message of 550 kB refused").text == "552 5.3.4 message of 550 kB refused"
