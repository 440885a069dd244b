"""Zoho Mail: "Undelivered Mail Returned to Sender" from ``mailer-daemon@mail.zoho.com``.

    This message was created automatically by mail delivery software.
    A message that you sent could not be delivered to one or more of its recipients. This is a permanent error.

    rcpt@example.org Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <rcpt@example.org>... User Unknown

One line per recipient: the address, Zoho's label, the remote reply code and
the remote text. A "permanent error" notice that quotes a temporary (4xx) code
is sent only after Zoho has given up retrying: the message expired.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "zoho"
PRIORITY = 15
# Skipped by core.py unless a marker occurs: parse() requires ERROR_CODE in the body.
MARKERS = ("error_code",)

_ENTRY = re.compile(
    r"(?P<rcpt>[^\s,]+@[^\s,]+)\s+(?P<label>[^,\n]*?),\s*ERROR_CODE\s*:\s*(?P<code>[^,]*?),\s*ERROR_CODE\s*:\s*(?P<text>.*?)"
    r"(?=\s[^\s,]+@[^\s,]+\s+[^,\n]*?,\s*ERROR_CODE\s*:|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_PERMANENT = re.compile(r"this is a permanent error", re.IGNORECASE)
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")


def _is_zoho(bounce: Bounce) -> bool:
    sender = clean_address(bounce.sender) or ""
    if sender.startswith("mailer-daemon@") and re.search(r"[@.]zoho(?:mail)?\.[a-z.]+$", sender):
        return True
    return bool(bounce.header("X-ZohoMail")) and "zoho mail" in bounce.header("X-Mailer").lower()


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_zoho(bounce) or "ERROR_CODE" not in bounce.body.upper():
        return None
    permanent = bool(_PERMANENT.search(bounce.body))
    text = " ".join(" ".join(p.split()) for p in _PARAGRAPHS.split(bounce.body) if "ERROR_CODE" in p.upper())
    findings = []
    for entry in _ENTRY.finditer(text):
        code = entry.group("code").strip()
        reply = entry.group("text").strip(" ,")
        replycode = code if re.fullmatch(r"[245]\d\d", code) else ""
        diagnostic = reply if not replycode or reply.startswith(replycode) else f"{replycode} {reply}"
        finding = Finding(
            recipient=clean_address(entry.group("rcpt")),
            action="failed" if permanent else "delayed",
            replycode=replycode,
            diagnostic=diagnostic.strip(" ,"),
        )
        if permanent and replycode.startswith("4"):
            finding.reason = Reason.EXPIRED
        findings.append(finding)
    return [f for f in findings if f.recipient] or None
