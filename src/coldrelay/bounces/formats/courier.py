"""Courier mail server: "NOTICE: mail delivery status.".

The notification says "This is a delivery status notification from H, running
the Courier mail server, version V." and shows each recipient's SMTP exchange::

    <rcpt@example.net>:
        mx.example.net [192.0.2.1]:
    >>> RCPT TO:<rcpt@example.net>
    <<< 550 5.1.1 <rcpt@example.net>... User Unknown

The DSN part gives the recipients and the status; the ``>>>`` line is the only
place that names the SMTP command the reply answered.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "courier"
PRIORITY = 40
# Skipped by core.py unless a marker occurs: parse() requires Courier's sentence or a <courier.*@ Message-ID.
MARKERS = ("running the courier mail server, version", "<courier.")

_INTRO = re.compile(r"running the Courier mail server, version", re.IGNORECASE)
_COURIER_ID = re.compile(r"<courier\.[0-9A-F]+\.[0-9A-F]+@", re.IGNORECASE)
_START = re.compile(r"^<([^<>\s]+)>:\s*$")
_SENT = re.compile(r"^>>> ?(.*)$")
_RECEIVED = re.compile(r"^<<< ?(.*)$")
_HOST = re.compile(r"^\s+(\S+) \[[^\]]*\]:\s*$")
_COMMANDS = {"RCPT": "RCPT", "MAIL": "MAIL", "DATA": "DATA", "HELO": "HELO", "EHLO": "HELO", "STARTTLS": "STARTTLS"}
_RULER = re.compile(r"^-{20,}\s*$")
_ENHANCED = re.compile(r"^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b")


def _is_courier(bounce: Bounce) -> bool:
    return bool(_INTRO.search(bounce.body)) or (
        bool(_COURIER_ID.search(bounce.header("Message-ID"))) and bool(bounce.delivery_status)
    )


def _exchanges(body: str) -> dict[str, Finding]:
    """What the notice shows for each recipient: remote host, command sent, reply received."""
    found: dict[str, Finding] = {}
    current: Finding | None = None
    replies: list[str] = []

    def close() -> None:
        if current is not None and replies:
            current.diagnostic = " ".join(" ".join(replies).split())

    for line in body.split("\n"):
        started = _START.match(line)
        if started:
            close()
            current, replies = Finding(recipient=started.group(1)), []
            found[clean_address(started.group(1))] = current
            continue
        if current is None:
            continue
        if _RULER.match(line):
            close()
            current = None
            continue
        host, sent, received = _HOST.match(line), _SENT.match(line), _RECEIVED.match(line)
        if host:
            current.remote_mta = host.group(1)
        elif sent:
            verb = sent.group(1).split(":")[0].split(" ")[0].upper()
            current.smtp_command = _COMMANDS.get(verb, "")
            replies = []
        elif received:
            replies.append(received.group(1))
        elif line.strip() and not replies:
            replies.append(line.strip())  # a local error: the text stands alone
    close()
    return found


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_courier(bounce):
        return None
    shown = _exchanges(bounce.body.replace("\r\n", "\n").replace("\r", "\n"))
    findings = [finding for text in bounce.delivery_status for finding in findings_from_dsn(text) if finding.recipient]
    for finding in findings:
        exchange = shown.get(clean_address(finding.recipient))
        if exchange is None:
            continue
        finding.smtp_command = exchange.smtp_command
        finding.diagnostic = finding.diagnostic or exchange.diagnostic
        finding.remote_mta = finding.remote_mta or exchange.remote_mta
        finer = _ENHANCED.match(finding.diagnostic)
        if finer and finding.status.endswith(".0.0") and finer.group(1)[0] == finding.status[:1]:
            finding.status = finer.group(1)  # Courier's DSN keeps only the class; the reply has the detail
    if not findings:
        findings = [finding for finding in shown.values() if finding.diagnostic]
        for finding in findings:
            finding.action = "failed"
    return findings or None
