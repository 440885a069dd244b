"""Standard delivery status notifications (RFC 3464, RFC 6533).

Most MTAs send a ``message/delivery-status`` part; this module reads it and
borrows the human-readable part for a diagnostic when the DSN leaves it out.
Format modules for specific MTAs call ``findings_from_dsn`` too.

A DSN whose MIME structure is broken (a boundary that does not match the one
declared, a boundary line indented by a space) still carries its fields as
text; those are read from the notification when no part was found.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.dsn import split_delivery_status, untyped
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "rfc3464"
PRIORITY = 50

_ORIGINAL_PART = re.compile(r"^content-type:[ \t]*(?:message/rfc822|text/rfc822-headers|message/rfc822-headers)", re.I | re.M)
_TRANSCRIPT = re.compile(r"^[ \t]*-+[ \t]*Transcript of session follows[ \t]*-+[ \t]*$", re.IGNORECASE | re.MULTILINE)
_REPLY_LINE = re.compile(r"^\s*(?:<<<\s*)?[245]\d\d[ -]\S")
_DAEMON = re.compile(r"^(?:mailer-daemon|mail-daemon|mailerdaemon|postmaster|double-bounce)@", re.IGNORECASE)
_FAILURE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (?:status|failure|failed|notification|problem)|failure notice|mail failed"
    r"|non-?delivery|could not be delivered",
    re.IGNORECASE,
)
_FAILED_SECTION = re.compile(
    r"^\|?-+ ?Failed addresses follow:? ?-*\|?[ \t]*\n(.*?)^\|?-+ ?Message text follows", re.IGNORECASE | re.MULTILINE | re.DOTALL
)
_FAILED_LINE = re.compile(r"^\s*<?([^\s<>]+@[^\s<>]+?)>?\s+\.\.\.\s*(.+?)\s*$", re.MULTILINE)


def findings_from_dsn(text: str) -> list[Finding]:
    """One finding per recipient block of a delivery-status text."""
    per_message, recipients = split_delivery_status(text)
    reporting = untyped(per_message.get("reporting-mta", ""))
    arrival = per_message.get("arrival-date", "")
    findings = []
    for block in recipients:
        recipient = untyped(
            block.get("final-recipient") or block.get("original-recipient") or block.get("x-actual-recipient", "")
        )
        findings.append(
            Finding(
                recipient=recipient,
                action=block.get("action", "").split()[0] if block.get("action") else "",
                status=block.get("status", ""),
                diagnostic=untyped(block.get("diagnostic-code", "")),
                remote_mta=untyped(block.get("remote-mta", "")),
                reporting_mta=reporting,
                timestamp=block.get("last-attempt-date", "") or arrival,
            )
        )
    return findings


def _embedded_dsn(text: str) -> str:
    """The delivery-status fields written in a text, or '' when it holds none."""
    cut = _ORIGINAL_PART.search(text)
    head = text[: cut.start()] if cut else text
    _per_message, recipients = split_delivery_status(head)
    if any("final-recipient" in block and ("action" in block or "status" in block) for block in recipients):
        return head
    return ""


def _transcript_replies(text: str) -> str:
    """The reply lines of a "Transcript of session follows" section (sendmail and its kin)."""
    found = _TRANSCRIPT.search(text)
    if found is None:
        return ""
    replies: list[str] = []
    for line in text[found.end() :].lstrip("\n").split("\n"):
        if not line.strip():
            break
        if _REPLY_LINE.match(line):
            replies.append(line.strip().removeprefix("<<<").strip())
    return " ".join(replies)


def _borrow_diagnostics(findings: list[Finding], notice: str) -> None:
    """Fill missing diagnostics from the human-readable notice: a line naming the recipient, or the transcript."""
    lines = notice.split("\n")
    missing = [f for f in findings if not f.diagnostic]
    for finding in missing:
        address = finding.recipient.lower()
        for line in lines:
            if address and address in line.lower() and _REPLY_LINE.match(line):
                finding.diagnostic = line.strip()
                break
    missing = [f for f in findings if not f.diagnostic]
    if len(missing) == 1 and len(findings) == 1:
        missing[0].diagnostic = _transcript_replies(notice)


def _failed_addresses(text: str) -> list[Finding]:
    """Plain notices with a "Failed addresses follow:" section of ``address ... reason`` lines."""
    section = _FAILED_SECTION.search(text)
    if section is None:
        return []
    return [
        Finding(recipient=found.group(1), action="failed", diagnostic=found.group(2))
        for found in _FAILED_LINE.finditer(section.group(1))
    ]


def _looks_like_report(bounce: Bounce) -> bool:
    """A report by its envelope: a multipart/report, a mailer daemon's mail, or a failure subject."""
    if bounce.content_type == "multipart/report":
        return True
    if _DAEMON.match(clean_address(bounce.sender) or ""):
        return True
    return bool(_FAILURE_SUBJECT.search(bounce.subject))


def parse(bounce: Bounce) -> list[Finding] | None:
    texts = list(bounce.delivery_status)
    notice = bounce.body
    if not texts:
        if not _looks_like_report(bounce):
            return None
        embedded = _embedded_dsn(bounce.body)
        if not embedded:
            return _failed_addresses(bounce.body) or None
        texts, notice = [embedded], embedded
    findings = [finding for text in texts for finding in findings_from_dsn(text) if finding.recipient]
    _borrow_diagnostics(findings, notice)
    return findings or None
