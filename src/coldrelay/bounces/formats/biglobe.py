"""BIGLOBE (``postmaster@biglobe.ne.jp``): "Returned mail: ..." with two dashed sections.

   ----- The following addresses had delivery problems -----
rcpt@example.jp

   ----- Non-delivered information -----
The number of messages in recipient's mailbox exceeded the local limit.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in, clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "biglobe"
PRIORITY = 20
# Skipped by core.py unless a marker occurs: parse() requires a biglobe.ne.jp sender.
MARKERS = ("biglobe.ne.jp",)

_SENDER = re.compile(r"^(?:postmaster|mailer-daemon)@(?:[\w-]+\.)*biglobe\.ne\.jp$", re.IGNORECASE)
_ADDRESSES = re.compile(r"^[ \t]*-+ The following addresses had delivery problems -+[ \t]*$", re.IGNORECASE | re.MULTILINE)
_INFORMATION = re.compile(r"^[ \t]*-+ Non-delivered information -+[ \t]*$", re.IGNORECASE | re.MULTILINE)
_NEXT_SECTION = re.compile(r"^[ \t]*-{3,}", re.MULTILINE)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _SENDER.match(clean_address(bounce.sender) or ""):
        return None
    listed = _ADDRESSES.search(bounce.body)
    information = _INFORMATION.search(bounce.body)
    if not listed or not information or information.start() < listed.end():
        return None
    rest = bounce.body[information.end() :]
    end = _NEXT_SECTION.search(rest)
    diagnostic = " ".join((rest[: end.start()] if end else rest).split())
    recipients = addresses_in(bounce.body[listed.end() : information.start()])
    return [Finding(recipient=address, action="failed", diagnostic=diagnostic) for address in recipients] or None
