"""Trend Micro InterScan Messaging Security Suite / InterScan MSS.

Its notices use the MIME boundary ``InterScan_NT_MIME_Boundary`` and come
from "InterScan MSS". Two bodies: an SMTP transcript (``Sent <<< RCPT
TO:<address>`` then ``Received >>> 550 ...``), or "The following mail could
not be delivered." with "Reason: Unable to deliver message to <address> ...".
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "interscanmss"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: every _CLUES alternative, which parse() requires, contains this.
MARKERS = ("interscan",)

_CLUES = re.compile(r"InterScan(?:_NT_MIME_Boundary| MSS)|Message from InterScan Messaging Security", re.IGNORECASE)
_SENT = re.compile(r"^\s*Sent\s*<<<\s*(RCPT TO|MAIL FROM|DATA|HELO|EHLO)\b:?\s*(.*)$", re.IGNORECASE)
_RECEIVED = re.compile(r"^\s*Received\s*>>>\s*(.*)$", re.IGNORECASE)
_REASON = re.compile(rf"^\s*Reason:\s*(.*?<?({ADDRESS.pattern})>?.*)$", re.IGNORECASE)
_COMMANDS = {"RCPT TO": "RCPT", "MAIL FROM": "MAIL"}


def _is_interscan(bounce: Bounce) -> bool:
    ctype = str(bounce.message.get("Content-Type") or "")
    return bool(_CLUES.search(ctype) or _CLUES.search(bounce.sender) or _CLUES.search(bounce.body))


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_interscan(bounce):
        return None
    findings: list[Finding] = []
    command = ""
    recipient = ""
    for line in bounce.body.split("\n"):
        sent = _SENT.match(line)
        if sent:
            command = _COMMANDS.get(sent.group(1).upper(), sent.group(1).upper())
            if command == "RCPT":
                recipient = clean_address(sent.group(2))
            continue
        received = _RECEIVED.match(line)
        if received and recipient and received.group(1).strip()[:1] in ("4", "5"):
            findings.append(
                Finding(recipient=recipient, action="failed", diagnostic=received.group(1).strip(), smtp_command=command)
            )
            recipient = ""
            continue
        reason = _REASON.match(line)
        if reason:
            findings.append(Finding(recipient=reason.group(2), action="failed", diagnostic=reason.group(1).strip()))
    return findings or None
