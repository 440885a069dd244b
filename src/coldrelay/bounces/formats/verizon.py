"""Verizon Wireless MMS/SMS gateways (vzwpix.com, vtext.com): "Undeliverable Message".

    Message could not be delivered to mobile.
    Error: No valid recipients for this MM

    Original Message:
    From: ...
    To: 0000000000@vzwpix.com

The gateway's own "Error:" line is the diagnostic; the recipient is the
``To:`` of the summary of the original message below it.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in, clean_address
from coldrelay.bounces.message import Bounce, header_in
from coldrelay.bounces.record import Finding

NAME = "verizon"
PRIORITY = 20
# Skipped by core.py unless a marker occurs: parse() requires a vzwpix.com, vtext.com or vzw.com sender.
MARKERS = ("vzwpix.com", "vtext.com", "vzw.com")

_SENDER = re.compile(r"@(?:[\w-]+\.)*(?:vzwpix|vtext|vzw)\.com$", re.IGNORECASE)
_ERROR = re.compile(r"^[ \t]*Error:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE)
_ORIGINAL = re.compile(r"^[ \t]*Original Message:[ \t]*$", re.IGNORECASE | re.MULTILINE)
_INTRO = re.compile(r"could not be delivered|undeliverable", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _SENDER.search(clean_address(bounce.sender) or ""):
        return None
    body = bounce.body
    error = _ERROR.search(body)
    if not error or not (_INTRO.search(body) or _INTRO.search(bounce.subject)):
        return None
    original = _ORIGINAL.search(body)
    summary = body[original.end() :] if original else bounce.original
    recipients = addresses_in(header_in(summary, "To")) or addresses_in(header_in(bounce.original, "To"))
    diagnostic = " ".join(error.group(1).split())
    return [Finding(recipient=address, action="failed", diagnostic=diagnostic) for address in recipients] or None
