"""Outlook.com / Hotmail (Microsoft SMTPSVC): "Delivery Status Notification (Failure|Delay)".

The human part says "This is an automatically generated Delivery Status
Notification." and lists the recipients, indented, under "Delivery to the
following recipients failed." (or "... has been delayed."). SMTPSVC marks its
notices with an ``X-DSNContext`` header. The DSN part carries status and reply;
when it is missing the indented list still names the recipients.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "outlook"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires this sentence.
MARKERS = ("this is an automatically generated delivery status notification",)

_GENERATED = re.compile(r"^\s*This is an automatically generated Delivery Status Notification\.?\s*$", re.I | re.M)
_LIST = re.compile(
    r"^\s*Delivery to the following recipients? (failed(?: permanently)?|has been delayed|was successful)\.?\s*$\n"
    r"((?:[ \t]*\n|[ \t]+\S.*\n?)+)",
    re.IGNORECASE | re.MULTILINE,
)
_SMTPSVC = re.compile(r"Microsoft SMTPSVC", re.IGNORECASE)
_ACTIONS = {"failed": "failed", "has been delayed": "delayed", "was successful": "delivered"}


def _is_smtpsvc(bounce: Bounce) -> bool:
    if not _GENERATED.search(bounce.body):
        return False
    if bounce.message.get("X-DSNContext") is not None:
        return True
    received = " ".join(str(v) for v in bounce.message.get_all("Received") or [])
    return bool(_SMTPSVC.search(received))


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_smtpsvc(bounce):
        return None
    listed: list[Finding] = []
    for block in _LIST.finditer(bounce.body):
        verb = block.group(1).lower()
        action = _ACTIONS.get(verb.replace(" permanently", ""), "failed")
        for found in ADDRESS.finditer(block.group(2)):
            listed.append(Finding(recipient=found.group(0), action=action))
    dsn = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    if dsn:
        return dsn
    seen: set[str] = set()
    unique = []
    for finding in listed:
        address = clean_address(finding.recipient)
        if address not in seen:
            seen.add(address)
            unique.append(finding)
    return unique or None
