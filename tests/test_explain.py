"""explain(): provider, reason, permanence and the article, for the replies senders see most."""

from __future__ import annotations

import json

import pytest

from coldrelay.errors import Reason, WhoActs, explain


def test_unable_to_relay_names_microsoft_and_the_fix() -> None:
    d = explain("550 5.7.1 Unable to relay")
    assert d.provider == "microsoft"
    assert d.reason is Reason.NORELAYING
    assert d.who_acts is WhoActs.SENDER
    assert d.permanent and not d.hard_bounce
    assert d.entry is not None and d.entry.fix_steps


def test_gmail_multiline_unauthenticated() -> None:
    reply = (
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all\n"
        "550-5.7.26 senders to authenticate with either SPF or DKIM.\n"
        "550 5.7.26 Authentication results: DKIM = did not pass SPF [example.com] with ip: [192.0.2.1] = did not pass - gsmtp"
    )
    d = explain(reply, remote_host="gmail-smtp-in.l.google.com")
    assert (d.basic_code, d.enhanced_code, d.provider, d.reason) == (550, "5.7.26", "google", Reason.AUTHFAILURE)
    assert d.who_acts is WhoActs.SENDER


def test_gmail_unknown_user_is_a_hard_bounce() -> None:
    d = explain(
        "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's "
        "email address for typos or unnecessary spaces. - gsmtp"
    )
    assert d.provider == "google"
    assert d.reason is Reason.USERUNKNOWN
    assert d.hard_bounce and d.permanent
    assert d.who_acts is WhoActs.RECIPIENT


def test_yahoo_vendor_code_is_temporary_reputation() -> None:
    d = explain("421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints")
    assert d.provider == "yahoo"
    assert d.reason is Reason.BADREPUTATION
    assert not d.permanent and not d.hard_bounce


def test_outlook_block_list_code() -> None:
    d = explain(
        "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider "
        "since part of their network is on our block list (S3150). You can also refer your provider to "
        "http://mail.live.com/mail/troubleshooting.aspx#errors."
    )
    assert d.provider == "microsoft"
    assert d.reason is Reason.BLOCKED


def test_exchange_three_digit_detail() -> None:
    d = explain("550 5.7.606 Access denied, banned sending IP [192.0.2.1]")
    assert d.provider == "microsoft"
    assert d.reason is Reason.BLOCKED


def test_remote_host_sharpens_the_provider() -> None:
    bare = explain("550 5.1.1 User unknown")
    hosted = explain("550 5.1.1 User unknown", remote_host="example-com.mail.protection.outlook.com")
    assert hosted.provider == "microsoft"
    assert bare.reason is Reason.USERUNKNOWN and hosted.reason is Reason.USERUNKNOWN


def test_unmatched_text_still_gets_the_code_meaning() -> None:
    d = explain("550 5.1.1 zzqx wibble frobnicated")
    assert d.reason is Reason.USERUNKNOWN
    assert "Bad destination mailbox address" in d.meaning
    assert d.entry is not None and d.entry.slug.startswith("generic-")


def test_unregistered_code_without_any_entry() -> None:
    d = explain("599 9.9.9 nothing we know")
    assert d.entry is None
    assert d.reason is Reason.UNDEFINED
    assert d.confidence < 0.3


@pytest.mark.parametrize("garbage", ["", "   ", "\x00\x01\x02", "🙂" * 1000, "5" * 5000, "550-\n550-\n550 ", "a" * 200_000])
def test_garbage_never_raises(garbage: str) -> None:
    d = explain(garbage)
    json.dumps(d.to_dict())


def test_temporary_reply_is_never_permanent_or_hard() -> None:
    d = explain(
        "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages - gsmtp"
    )
    assert not d.permanent and not d.hard_bounce
    assert d.reason is Reason.SPEEDING


def test_to_dict_is_plain_json() -> None:
    data = explain("550 5.7.1 Unable to relay").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) >= {"basic_code", "enhanced_code", "provider", "reason", "permanent", "hard_bounce", "who_acts", "entry"}
    assert data["entry"]["url"].startswith("/smtp-errors/")
    assert data["entry"]["fix_steps"][0]["title"]


def test_every_2xx_is_a_delivery_whatever_its_enhanced_code() -> None:
    """Exchange Online accepts with "250 2.6.0 ... Queued mail for delivery"; X.6.0 must not read as a content error."""
    from coldrelay.errors import Reason, explain

    reply = "250 2.6.0 <q1@send.test> [InternalId=123, Hostname=AM0PR01MB1234.eurprd01.prod.outlook.com] Queued mail for delivery"
    diagnosis = explain(reply, remote_host="contoso-com.mail.protection.outlook.com")
    assert (diagnosis.reason, diagnosis.permanent, diagnosis.hard_bounce) == (Reason.DELIVERED, False, False)
    assert diagnosis.provider == "microsoft"
