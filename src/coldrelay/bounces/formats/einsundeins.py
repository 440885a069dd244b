"""1&1 / IONOS (``mailer-daemon@kundenserver.de``): "Mail delivery failed: returning message to sender".

    This is a permanent error.

    The following address failed:

    rcpt@example.org

    For the following reason:

    Mail size limit exceeded. For explanation visit
    http://postmaster.1and1.com/en/error-messages?ip=%1s

The same United Internet software as GMX; ``gmx.parse_united_internet`` reads both.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.formats.gmx import parse_united_internet
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "einsundeins"
PRIORITY = 15
# Skipped by core.py unless a marker occurs: parse() requires one of the sender's (or the postmaster link's) domains.
MARKERS = (
    "@kundenserver.",
    ".kundenserver.",
    "@1und1.",
    ".1und1.",
    "@1and1.",
    ".1and1.",
    "@ionos.",
    ".ionos.",
    "@online.",
    ".online.",
)

_SENDER = re.compile(r"@(?:[\w-]+\.)*(?:kundenserver|1und1|1and1|ionos|online)\.[a-z.]+$", re.IGNORECASE)
_BODY = re.compile(r"postmaster\.(?:1and1|1und1|ionos)\.", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    sender = clean_address(bounce.sender) or ""
    if not sender.startswith("mailer-daemon@"):
        return None
    if not (_SENDER.search(sender) or _BODY.search(bounce.body)):
        return None
    return parse_united_internet(bounce)
