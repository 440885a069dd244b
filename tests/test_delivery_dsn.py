"""The DSN a sender gets for failed recipients: RFC 3464/6522 structure read back with ``email`` and with
our own bounce parser, the human part's advice, the original headers without the body, and header safety."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import cast

import pytest

from coldrelay import bounces
from coldrelay.errors import explain
from coldrelay.mta.delivery.dsn import FailedRecipient, build_dsn, status_of

NOW = datetime(2025, 3, 4, 10, 30, tzinfo=UTC)
ARRIVED = datetime(2025, 3, 4, 10, 29, 5, tzinfo=UTC)
BODY_MARKER = "Hi Bob, quick question about your hiring plans"
ORIGINAL = (
    "From: Anna Berg <anna@sender.test>\r\n"
    "To: bob@gmail.com, carl@outlook.com\r\n"
    "Subject: =?utf-8?q?Quick_question_about_Q3_=E2=80=93_hiring?=\r\n"
    "Message-ID: <c0ld.1@sender.test>\r\n"
    "Date: Tue, 04 Mar 2025 10:29:04 +0000\r\n"
    "\r\n"
    f"{BODY_MARKER}\r\n--\r\nAnna\r\n"
).encode()

GMAIL_5_1_1 = (
    "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the "
    "recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more information, go to 550 5.1.1 "
    "https://support.google.com/mail/?p=NoSuchUser d2e1a72fcca58-73a1 - gsmtp"
)
OUTLOOK_5_7_1 = (
    "550 5.7.1 Service unavailable, Client host [203.0.113.5] blocked using Spamhaus. To request removal from this list "
    "see https://www.spamhaus.org/query/ip/203.0.113.5 (AS3130). [BN1NAM02FT032.eop-nam02.prod.protection.outlook.com]"
)


def failure(recipient: str, reply: str, host: str | None, **extra: object) -> FailedRecipient:
    return FailedRecipient(recipient, reply, host, explain(reply, remote_host=host), **extra)  # type: ignore[arg-type]


FAILURES = [
    failure("bob@gmail.com", GMAIL_5_1_1, "gmail-smtp-in.l.google.com", last_attempt=NOW),
    failure("carl@outlook.com", OUTLOOK_5_7_1, "outlook-com.olc.protection.outlook.com", last_attempt=NOW),
    failure("dora@nullmx.test", "556 5.1.10 Recipient address has null MX", None),
]


def dsn(failures: list[FailedRecipient] = FAILURES, **options: object) -> bytes:
    arguments: dict[str, object] = {
        "reporting_mta": "box.sender.test",
        "original_sender": "anna@sender.test",
        "queue_id": "3f2a9c",
        "arrival_date": ARRIVED,
        "original_message": ORIGINAL,
        "failures": failures,
        "now": NOW,
    }
    arguments.update(options)
    return build_dsn(**arguments)  # type: ignore[arg-type]


def parts(raw: bytes) -> tuple[EmailMessage, str, list[Message], Message]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    human, status, headers = message.iter_parts()
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"
    blocks = status.get_payload()
    assert isinstance(blocks, list) and all(isinstance(block, Message) for block in blocks)
    return message, human.get_content(), cast(list[Message], blocks), headers


def words(text: str) -> str:
    return " ".join(text.split())


def test_structure_and_top_level_headers() -> None:
    raw = dsn()
    message, _human, _blocks, _headers = parts(raw)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert b'\r\nFrom: "Mail Delivery System" <MAILER-DAEMON@box.sender.test>\r\n' in b"\r\n" + raw
    assert message["From"].addresses[0].addr_spec == "MAILER-DAEMON@box.sender.test"
    assert b"\r\nTo: <anna@sender.test>\r\n" in raw
    assert message["Subject"] == "Undeliverable: your message to bob@gmail.com and 2 more"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<c0ld.1@sender.test>"
    assert message["Date"].datetime == NOW
    assert str(message["Message-ID"]).endswith("@box.sender.test>")
    assert message["Message-ID"] != email.message_from_bytes(dsn())["Message-ID"]  # fresh every time
    # Plain 7-bit mail with CRLF line ends and no over-long lines, whatever the reply lines' length.
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_delivery_status_fields() -> None:
    _message, _human, blocks, _headers = parts(dsn())
    per_message, *recipients = blocks
    assert per_message["Reporting-MTA"] == "dns; box.sender.test"
    assert per_message["X-Coldrelay-Queue-ID"] == "3f2a9c"
    assert per_message["Arrival-Date"] == "Tue, 04 Mar 2025 10:29:05 +0000"
    assert [block["Final-Recipient"] for block in recipients] == [
        "rfc822; bob@gmail.com",
        "rfc822; carl@outlook.com",
        "rfc822; dora@nullmx.test",
    ]
    assert [block["Action"] for block in recipients] == ["failed"] * 3
    assert [block["Status"] for block in recipients] == ["5.1.1", "5.7.1", "5.1.10"]
    assert recipients[0]["Remote-MTA"] == "dns; gmail-smtp-in.l.google.com"
    assert "Remote-MTA" not in recipients[2]  # no server answered: the null MX was found in DNS
    # Folded for line length, the reply comes back verbatim once unfolded.
    assert words(recipients[1]["Diagnostic-Code"]) == f"smtp; {OUTLOOK_5_7_1}"
    assert recipients[0]["Last-Attempt-Date"] == "Tue, 04 Mar 2025 10:30:00 +0000"
    assert recipients[2]["Last-Attempt-Date"] == "Tue, 04 Mar 2025 10:30:00 +0000"  # defaults to now


def test_our_bounce_parser_reads_it_back() -> None:
    records = bounces.parse(dsn())
    assert [r.recipient for r in records] == ["bob@gmail.com", "carl@outlook.com", "dora@nullmx.test"]
    assert [r.status for r in records] == ["5.1.1", "5.7.1", "5.1.10"]
    for record, sent in zip(records, FAILURES, strict=True):
        assert record.reason is sent.diagnosis.reason
        assert record.hard_bounce is sent.diagnosis.hard_bounce
        assert record.article == (sent.diagnosis.entry.slug if sent.diagnosis.entry else None)
        assert record.action == "failed"
        assert record.addresser == "anna@sender.test"
        assert record.message_id == "c0ld.1@sender.test"
    assert [r.reason.value for r in records] == ["userunknown", "blocked", "notaccept"]
    assert [r.hard_bounce for r in records] == [True, False, True]
    assert records[1].provider == "microsoft"


def test_human_part_explains_and_gives_the_articles_fix_steps() -> None:
    _message, human, _blocks, _headers = parts(dsn(base_url="https://coldrelay.example/"))
    text = words(human)
    assert "could not be delivered to 3 recipients" in text
    assert "Message: Quick question about Q3 – hiring" in text  # the original subject, decoded
    assert "Queue ID: 3f2a9c" in text
    for sent in FAILURES:
        assert sent.reply_line in human  # verbatim, on its own line
        entry = sent.diagnosis.entry
        assert entry is not None
        assert f"Read more: https://coldrelay.example{entry.url}" in text
        assert words(entry.title) in text
        for number, step in enumerate(entry.fix_steps, start=1):
            assert f"{number}. {words(step.title)}" in text
    gmail = FAILURES[0].diagnosis.entry
    outlook = FAILURES[1].diagnosis.entry
    assert gmail is not None and gmail.provider == "google" and gmail.enhanced_code == "5.1.1"
    assert outlook is not None and outlook.provider == "microsoft" and outlook.enhanced_code == "5.7.1"
    for step in (*gmail.fix_steps, *outlook.fix_steps):
        assert words(step.instructions) in text
    assert "Receiving provider: Gmail / Google Workspace" in text
    assert "Who must act: recipient" in text and "Who must act: sender" in text
    assert text.count("Hard bounce:") == 2  # bob and dora, not carl
    # Without a base URL the link is the site-relative path.
    assert f"Read more: {gmail.url}" in words(parts(dsn())[1])


def test_recipients_with_one_cause_share_one_explanation() -> None:
    same = [failure(f"u{i}@gmail.com", GMAIL_5_1_1, "gmail-smtp-in.l.google.com") for i in range(3)]
    _message, human, _blocks, _headers = parts(dsn(same))
    assert "3 recipients: u0@gmail.com, u1@gmail.com, u2@gmail.com" in words(human)
    assert human.count("How to fix it:") == 1
    assert len(bounces.parse(dsn(same))) == 3


def test_original_headers_without_the_body() -> None:
    raw = dsn()
    _message, _human, _blocks, headers = parts(raw)
    returned = headers.get_payload(decode=True)
    assert isinstance(returned, bytes)
    assert returned == ORIGINAL.split(b"\r\n\r\n")[0] + b"\r\n"
    assert BODY_MARKER.encode() not in raw


def test_recipient_and_sender_strings_cannot_add_headers() -> None:
    evil = [failure("dan@x.test\r\nBcc: victim@x.test", "550 5.1.1 user unknown", "mx.x.test\r\nX-Injected: 1")]
    raw = dsn(evil, original_sender="anna@sender.test\r\nCc: victim@x.test", queue_id="q\r\nX-Injected: 2")
    lines = raw.split(b"\r\n")
    assert not any(line.startswith((b"Bcc:", b"Cc:", b"X-Injected:")) for line in lines)
    message, _human, blocks, _headers = parts(raw)
    assert message["Bcc"] is None and message["Cc"] is None
    assert len(blocks) == 2  # the per-message block and one recipient block: no extra block was smuggled in
    assert "X-Injected" not in blocks[0] and "X-Injected" not in blocks[1]


def test_status_comes_from_the_basic_code_when_there_is_no_enhanced_one() -> None:
    assert status_of(failure("a@x.test", "550 no such user here", None)) == "5.0.0"
    assert status_of(failure("a@x.test", "421 too busy, try later", None)) == "4.0.0"
    gave_up = failure("a@x.test", "connection refused by mx.x.test for 5 days: giving up", None)
    assert gave_up.diagnosis.basic_code is None
    assert status_of(gave_up) == "5.0.0"
    assert status_of(failure("a@x.test", "connection timed out", None, action="delayed")) == "4.0.0"


def test_delay_warning() -> None:
    delayed = [failure("bob@slow.test", "451 4.7.1 Greylisted, try again later", "mx.slow.test", action="delayed")]
    raw = dsn(delayed)
    message, human, blocks, _headers = parts(raw)
    assert message["Subject"] == "Delivery delayed: your message to bob@slow.test"
    assert "has not reached 1 recipient yet" in words(human)
    assert (blocks[1]["Action"], blocks[1]["Status"]) == ("delayed", "4.7.1")
    [record] = bounces.parse(raw)
    assert (record.recipient, record.action, record.permanent, record.hard_bounce) == ("bob@slow.test", "delayed", False, False)


def test_international_recipient_is_escaped_in_the_status_part() -> None:
    raw = dsn([failure("jürgen@bücher.test", "550 5.1.1 user unknown", None)])
    _message, human, blocks, _headers = parts(raw)
    assert blocks[1]["Final-Recipient"] == "utf-8; j\\x{FC}rgen@b\\x{FC}cher.test"
    assert "jürgen@bücher.test" in human


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"original_sender": ""}, "null reverse-path"),
        ({"failures": []}, "at least one recipient"),
        ({"failures": [failure("a@x.test", "550 5.1.1 user unknown", None, action="relayed")]}, "action must be one of"),
    ],
)
def test_refuses_what_must_not_be_sent(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dsn(**options)  # type: ignore[arg-type]
