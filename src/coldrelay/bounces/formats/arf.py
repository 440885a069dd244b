"""Feedback-loop reports: a recipient marked the message as spam, or asked to unsubscribe.

Three layouts say so structurally:

- RFC 5965 ARF: a ``message/feedback-report`` part (``Feedback-Type``, one
  ``Original-Rcpt-To`` per reported recipient) beside the reported message;
- Microsoft's JMRP: a ``multipart/mixed`` mail whose attached message carries
  ``X-HmXmrOriginalRecipient`` (Hotmail/Outlook.com complaints);
- Apple Mail's unsubscribe mail: ``X-Apple-Unsubscribe: true``, sent by the
  recipient themselves.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in, clean_address
from coldrelay.bounces.dsn import field_blocks
from coldrelay.bounces.message import Bounce, header_in
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "arf"
PRIORITY = 0


_RCPT_FIELD = re.compile(r"^original-rcpt-to[ \t]*:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE)
_FEEDBACK_REPORT = re.compile(r"report-type\s*=\s*\"?feedback-report", re.IGNORECASE)


def _report_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for block in field_blocks(text):
        for key, value in block.items():
            fields.setdefault(key, value)
    return fields


def _original_recipients(bounce: Bounce) -> list[str]:
    """Every address the reported message went to, as the original headers say."""
    found: list[str] = []
    for name in ("X-HmXmrOriginalRecipient", "To"):
        value = header_in(bounce.original, name)
        for address in addresses_in(value):
            if address not in found:
                found.append(address)
        if found:
            return found
    return found


def _arf(bounce: Bounce) -> list[Finding]:
    fields = _report_fields(bounce.feedback_report)
    recipients: list[str] = []
    for match in _RCPT_FIELD.finditer(bounce.feedback_report):
        address = clean_address(match.group(1))
        if address and address not in recipients:
            recipients.append(address)
    if not recipients:
        removal = clean_address(fields.get("removal-recipient", ""))
        recipients = [removal] if removal else _original_recipients(bounce)[:1]
    feedback_type = fields.get("feedback-type", "").strip().lower() or "abuse"
    reporting = fields.get("reporting-mta", "").split(";")[-1].strip()
    timestamp = fields.get("arrival-date", "") or fields.get("received-date", "")
    return [
        Finding(
            recipient=recipient,
            reason=Reason.FEEDBACK,
            feedback_type=feedback_type,
            reporting_mta=reporting,
            timestamp=timestamp,
        )
        for recipient in recipients or [""]  # a report that names nobody still counts as one complaint
    ]


def parse(bounce: Bounce) -> list[Finding] | None:
    content_type = bounce.message.get("Content-Type") or ""
    if bounce.feedback_report or _FEEDBACK_REPORT.search(content_type):
        return _arf(bounce)
    jmrp = "complaint about message" in bounce.subject.lower() and bounce.content_type == "multipart/mixed"
    if jmrp and header_in(bounce.original, "X-HmXmrOriginalRecipient"):
        recipients = _original_recipients(bounce)
        return [Finding(recipient=r, reason=Reason.FEEDBACK, feedback_type="abuse") for r in recipients] or None
    if bounce.header("X-Apple-Unsubscribe").strip().lower() == "true":
        recipient = clean_address(bounce.sender) or clean_address(bounce.header("Reply-To"))
        if recipient:
            return [Finding(recipient=recipient, reason=Reason.FEEDBACK, feedback_type="opt-out")]
    return None
