"""Amazon SES receiving: a bounce that an SES receipt rule sends for a message it accepted.

SES's inbound servers (``Reporting-MTA: dns; inbound-smtp.<region>.amazonaws.com``)
take the whole message first; a receipt rule's bounce action then answers with
the reply its owner chose ("550 5.1.1 Mailbox does not exist", "552 5.3.4
Message too large"...). The refusal therefore always comes after DATA, and the
notice is sent through SES (``X-SES-Outgoing``, ``Feedback-ID: ...:AmazonSES``).
"""

from __future__ import annotations

import re

from coldrelay.bounces.dsn import split_delivery_status, untyped
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "receivingses"
PRIORITY = 18
# Skipped by core.py unless a marker occurs: parse() requires an inbound-smtp.*.amazonaws.com Reporting-MTA.
MARKERS = ("inbound-smtp.",)

_INBOUND = re.compile(r"^inbound-smtp\.[a-z0-9-]+\.amazonaws\.com$", re.IGNORECASE)


def _sent_by_ses(bounce: Bounce) -> bool:
    return bool(bounce.header("X-SES-Outgoing")) or "amazonses" in bounce.header("Feedback-ID").lower()


def parse(bounce: Bounce) -> list[Finding] | None:
    if not bounce.delivery_status or not _sent_by_ses(bounce):
        return None
    findings: list[Finding] = []
    for text in bounce.delivery_status:
        per_message, _recipients = split_delivery_status(text)
        if not _INBOUND.match(untyped(per_message.get("reporting-mta", ""))):
            continue
        for finding in findings_from_dsn(text):
            if finding.recipient:
                finding.smtp_command = "DATA"
                findings.append(finding)
    return findings or None
