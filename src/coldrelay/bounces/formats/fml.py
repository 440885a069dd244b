"""fml (a Japanese mailing-list manager): notices that refuse a post to the list.

Marked by ``X-MLServer: fml ...`` (without the ``X-Mail-Count`` of a
distributed post). The refusal names the list in its first
sentence ("You are not a member of this mailing list <list@example.org>."),
so the "recipient" is the list address the post was sent to; the reason is
read from that sentence.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "fml"
PRIORITY = 25
# Skipped by core.py unless a marker occurs: parse() requires an X-MLServer header.
MARKERS = ("x-mlserver",)

_SERVER = re.compile(r"^fml\b", re.IGNORECASE)
_REFUSAL = re.compile(
    r"(?:not (?:a )?member|rejected|not (?:allowed|permitted)|denied|cannot accept|not accepted)[^\n]*?<({ADDRESS})>".replace(
        "{ADDRESS}", ADDRESS.pattern
    ),
    re.IGNORECASE,
)
_SUBJECT = re.compile(r"\bare not (?:a )?member\b|\brejected\b|\bdenied\b", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _SERVER.match(bounce.header("X-MLServer").strip()):
        return None
    if bounce.message.get("X-Mail-Count") is not None or bounce.message.get("X-ML-Count") is not None:
        return None  # a post the list distributed, not a notice from it
    paragraph: list[str] = []
    for line in bounce.body.split("\n"):
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            break
    first = " ".join(paragraph)
    refusal = _REFUSAL.search(first)
    if refusal is None and not _SUBJECT.search(bounce.subject):
        return None
    recipient = (
        refusal.group(1) if refusal else clean_address(bounce.header("List-Post")) or clean_address(bounce.header("X-ML-Name"))
    )
    if not recipient:
        return None
    return [Finding(recipient=recipient, action="failed", diagnostic=first or bounce.subject)]
