"""Bigfoot (bigfoot.com forwarding, its LiteMail MTA): sendmail-style reports.

The text lists "----- The following addresses had permanent fatal errors
-----" and a transcript (``>>> RCPT TO:<address>`` then ``<<< 553 ...``); a
DSN part follows. The MTA signs its Received lines "(LiteMail vX.YY(...))".
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "bigfoot"
PRIORITY = 25
# Skipped by core.py unless a marker occurs: parse() requires the "(LiteMail v" stamp in a Received line.
MARKERS = ("(litemail",)

_STAMP = re.compile(r"\(LiteMail v[\d.]+", re.IGNORECASE)
_SENT = re.compile(r"^\s*>>>\s*(RCPT TO|MAIL FROM|DATA)\b:?\s*(.*)$", re.IGNORECASE)
_REPLY = re.compile(r"^\s*<<<\s*([245]\d\d\b.*)$")
_ERRORS = re.compile(r"^\s*-+\s*The following addresses had permanent fatal errors\s*-+\s*$", re.IGNORECASE | re.MULTILINE)
_COMMANDS = {"RCPT TO": "RCPT", "MAIL FROM": "MAIL", "DATA": "DATA"}


def _transcript(body: str) -> dict[str, tuple[str, str]]:
    """recipient -> (command, reply); a MAIL FROM or DATA refusal counts for every recipient ("")."""
    replies: dict[str, tuple[str, str]] = {}
    command, recipient = "", ""
    for line in body.split("\n"):
        sent = _SENT.match(line)
        if sent:
            command = _COMMANDS[sent.group(1).upper()]
            recipient = clean_address(sent.group(2)) if command == "RCPT" else ""
            continue
        reply = _REPLY.match(line)
        if reply and command:
            replies.setdefault(recipient, (command, reply.group(1).strip()))
    return replies


def parse(bounce: Bounce) -> list[Finding] | None:
    received = " ".join(str(v) for v in bounce.message.get_all("Received") or [])
    if not _STAMP.search(received):
        return None
    replies = _transcript(bounce.body)
    findings = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    if not findings:
        errors = _ERRORS.search(bounce.body)
        listed = bounce.body[errors.end() :] if errors else ""
        for line in listed.split("\n"):
            if not line.strip():
                if findings:
                    break
                continue
            found = ADDRESS.search(line)
            if found:
                findings.append(Finding(recipient=found.group(0), action="failed"))
    for finding in findings:
        command, reply = replies.get(clean_address(finding.recipient)) or replies.get("") or ("", "")
        finding.smtp_command = finding.smtp_command or command
        finding.diagnostic = finding.diagnostic or reply
    return findings or None
