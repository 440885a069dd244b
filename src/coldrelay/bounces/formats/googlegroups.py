"""Google Groups: "the group you tried to contact may not exist, or you may not have permission to post".

Sent by ``mailer-daemon@googlemail.com`` in the sender's language, always with
a link to ``https://groups.google.com/support/`` and the failed group address
in ``X-Failed-Recipients``. The notice has one meaning whatever the language:
the group refused the post (it does not exist for you, or you may not post),
so the layout itself states the reason.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "googlegroups"
PRIORITY = 15
# Skipped by core.py unless a marker occurs: parse() requires the Groups support link.
MARKERS = ("groups.google.com/support",)

_SENDER = re.compile(r"^mailer-daemon@(?:googlemail|google)\.com$", re.IGNORECASE)
_SUPPORT = re.compile(r"https?://groups\.google\.com/support/?", re.IGNORECASE)
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _SENDER.match(clean_address(bounce.sender) or "") or not _SUPPORT.search(bounce.body):
        return None
    recipients = [clean_address(part) for part in bounce.header("X-Failed-Recipients").split(",")]
    recipients = [address for address in recipients if address]
    if not recipients:
        return None
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPHS.split(bounce.body) if p.strip()]
    # The greeting, then the sentence that says why; the bulleted guesses and the help link follow.
    explanation = next((p for p in paragraphs[1:] if not p.startswith("*")), paragraphs[0] if paragraphs else "")
    return [Finding(recipient=address, action="failed", diagnostic=explanation, reason=Reason.REJECTED) for address in recipients]
