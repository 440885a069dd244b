"""Barracuda Spam Firewall: "**Message you sent blocked by our bulk email filter**".

The text part says "Your message to: address was blocked by our Spam
Firewall."; the DSN part carries the status and ``550 5.7.1 Message content
rejected, UBE, ...``. The appliance stamps "(Spam Firewall)" in its Received
lines, seen in the returned headers.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "barracuda"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires the subject or the "(Spam Firewall)" stamp.
MARKERS = ("message you sent blocked by our", "(spam firewall)")

_SUBJECT = re.compile(r"Message you sent blocked by our (?:bulk )?e-?mail filter", re.IGNORECASE)
_STAMP = re.compile(r"\(Spam Firewall\)", re.IGNORECASE)
_YOUR = re.compile(rf"Your message to:\s*<?({ADDRESS.pattern})>?\s*(was blocked by [^.]*)", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not (_SUBJECT.search(bounce.subject) or (_STAMP.search(bounce.original[:4000]) and _YOUR.search(bounce.body))):
        return None
    dsn = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    if dsn:
        return dsn
    return [
        Finding(recipient=m.group(1), action="failed", diagnostic=" ".join(m.group(2).split()))
        for m in _YOUR.finditer(bounce.body)
    ] or None
