"""KDDI au one net (``no-reply@...dion.ne.jp``, replies to ``no-reply@app.auone-net.jp``).

    Your mail sent on: Thu, 29 Apr 2013 23:45:22 +0900
         Could not be delivered to: <rcpt@example.dion.ne.jp>
         As their mailbox is full.

An optional Japanese preamble comes first; the indented lines under
"Could not be delivered to:" are the reason.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "kddi"
PRIORITY = 20
# Skipped by core.py unless a marker occurs: parse() requires "your mail sent on" in the body.
MARKERS = ("your mail sent on",)

_SENDER = re.compile(r"@(?:[\w-]+\.)*(?:dion\.ne\.jp|auone-net\.jp|au\.com|kddi\.com)$", re.IGNORECASE)
_ENTRY = re.compile(
    r"^[ \t]*Could not be delivered to:[ \t]*<?([^\s<>]+@[^\s<>]+?)>?[ \t]*\n((?:[ \t]+\S.*(?:\n|$))*)",
    re.IGNORECASE | re.MULTILINE,
)


def _is_kddi(bounce: Bounce) -> bool:
    if _SENDER.search(clean_address(bounce.sender) or ""):
        return True
    return _SENDER.search(clean_address(bounce.header("Reply-To")) or "") is not None


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_kddi(bounce) or "your mail sent on" not in bounce.body.lower():
        return None
    findings = [
        Finding(recipient=clean_address(found.group(1)), action="failed", diagnostic=" ".join(found.group(2).split()))
        for found in _ENTRY.finditer(bounce.body)
    ]
    return [f for f in findings if f.recipient] or None
