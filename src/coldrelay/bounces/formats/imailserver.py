"""Ipswitch IMail Server (its SMTP32 delivery agent): "Undeliverable Mail".

The notice is a few lines before "Original message follows.": either
``Reason phrase: address`` ("Unknown user: ...", "Invalid final delivery
userid: ...") or "undeliverable to address" followed by "Body of message
generated response:" and the remote server's reply lines.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "imailserver"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires X-Mailer: SMTP32 or "Original message follows".
MARKERS = ("smtp32", "original message follows")

_MAILER = re.compile(r"^<?SMTP32 v[\w.]+>?$", re.IGNORECASE)
_FOLLOWS = re.compile(r"^\s*Original message follows\.?\s*$", re.IGNORECASE | re.MULTILINE)
_PHRASE = re.compile(rf"^\s*([^:<>]{{3,120}}?):\s*<?({ADDRESS.pattern})>?\s*$")
_UNDELIVERABLE = re.compile(rf"^\s*undeliverable to\s+<?({ADDRESS.pattern})>?", re.IGNORECASE)
_RESPONSE = re.compile(r"^\s*(?:Body of message generated response|SMTP server .* said|Server response)\s*:?\s*$", re.I)
_SUBJECT = re.compile(r"undeliverable|delivery|returned mail", re.IGNORECASE)
_HEADERS = frozenset({"to", "cc", "bcc", "from", "reply-to", "sender", "return-path", "x-rcpt-to"})


def _is_imail(bounce: Bounce) -> bool:
    follows = bool(_FOLLOWS.search(bounce.body))
    if _MAILER.match(bounce.header("X-Mailer").strip()):
        return follows or bool(_SUBJECT.search(bounce.subject))
    return follows and bounce.subject.strip().lower() == "undeliverable mail"


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_imail(bounce):
        return None
    end = _FOLLOWS.search(bounce.body)
    lines = bounce.body[: end.start() if end else len(bounce.body)].split("\n")
    findings: list[Finding] = []
    pending: Finding | None = None
    reply: list[str] = []
    reading = False
    for line in lines:
        if pending is not None:
            if _RESPONSE.match(line):
                reading = True
                continue
            if reading:
                if line.strip():
                    reply.append(line.strip())
                    continue
                if reply:
                    pending.diagnostic = " ".join(reply)
                    findings.append(pending)
                    pending, reply, reading = None, [], False
                continue
        undeliverable = _UNDELIVERABLE.match(line)
        if undeliverable:
            if pending is not None:
                findings.append(pending)
            pending, reply, reading = Finding(recipient=undeliverable.group(1), action="failed"), [], False
            continue
        phrase = _PHRASE.match(line)
        if phrase and phrase.group(1).strip().lower() not in _HEADERS:
            findings.append(Finding(recipient=phrase.group(2), action="failed", diagnostic=phrase.group(1).strip()))
    if pending is not None:
        pending.diagnostic = pending.diagnostic or " ".join(reply)
        findings.append(pending)
    return findings or None
