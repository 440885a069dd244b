"""A qmail-based provider's "failure notice" that replaces qmail's greeting with its own.

::

    Your mail message to the following address(es) could not be delivered. This
    is a permanent error. Please verify the addresses and try again. ...

    <kijitora@example.com>:
    child status 100...The e-mail message could not be delivered because the user's mailfolder is full.

    --- Below this line is a copy of the message.
"""

from __future__ import annotations

import re

from coldrelay.bounces.formats.x2 import address_paragraphs
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "x4"
PRIORITY = 35
# Skipped by core.py unless a marker occurs: parse() requires this sentence.
MARKERS = ("your mail message to the following address",)

_INTRO = re.compile(
    r"^Your mail message to the following address(?:\(es\)|es)? could not\s+be\s+delivered\.\s+This\s+is\s+a\s+"
    r"(permanent|temporary) error\.",
    re.IGNORECASE | re.MULTILINE,
)
_CHILD_STATUS = re.compile(r"^child status \d+\.\.\.\s*", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    intro = _INTRO.search(bounce.body)
    if intro is None:
        return None
    action = "failed" if intro.group(1).lower() == "permanent" else "delayed"
    findings = [
        Finding(recipient=address, action=action, diagnostic=_CHILD_STATUS.sub("", text))
        for address, text in address_paragraphs(bounce.body[intro.end() :])
    ]
    return findings or None
