"""Standard delivery status notifications (RFC 3464, RFC 6533).

Most MTAs send a ``message/delivery-status`` part; this module reads it and
borrows the human-readable part for a diagnostic when the DSN leaves it out.
Format modules for specific MTAs call ``findings_from_dsn`` too.
"""

from __future__ import annotations

from coldrelay.bounces.dsn import split_delivery_status, untyped
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "rfc3464"
PRIORITY = 50


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


def parse(bounce: Bounce) -> list[Finding] | None:
    findings = [finding for text in bounce.delivery_status for finding in findings_from_dsn(text)]
    return [f for f in findings if f.recipient] or None
