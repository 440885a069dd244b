"""Feedback-loop reports (RFC 5965 ARF): a recipient marked the message as spam."""

from __future__ import annotations

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.dsn import field_blocks
from coldrelay.bounces.message import Bounce, header_in
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "arf"
PRIORITY = 0


def parse(bounce: Bounce) -> list[Finding] | None:
    if not bounce.feedback_report and "feedback-report" not in (bounce.message.get("Content-Type") or "").lower():
        return None
    fields: dict[str, str] = {}
    for block in field_blocks(bounce.feedback_report):
        for key, value in block.items():
            fields.setdefault(key, value)
    recipient = clean_address(fields.get("original-rcpt-to", "")) or clean_address(header_in(bounce.original, "To"))
    return [
        Finding(
            recipient=recipient,
            action="",
            reason=Reason.FEEDBACK,
            feedback_type=fields.get("feedback-type", "").strip().lower(),
            reporting_mta=fields.get("reporting-mta", "").split(";")[-1].strip(),
            timestamp=fields.get("arrival-date", "") or fields.get("received-date", ""),
            diagnostic="",
        )
    ]
