"""Yandex.Mail (``mailer-daemon@yandex.ru``): a Russian preamble over a Postfix report and DSN.

    <rcpt@example.jp>: host mx.example.jp[192.0.2.153] said: 550
        5.1.1 <rcpt@example.jp>... User Unknown (in reply to RCPT TO command)

The delivery-status part carries the recipients and codes; the text names the
SMTP step. As with any Postfix, a final report ("Action: failed") that still
carries a temporary 4.x.x status is sent only once the queue lifetime ran out.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "yandex"
PRIORITY = 20
# Skipped by core.py unless a marker occurs: parse() requires a Yandex sender or the X-Yandex-Forward header.
MARKERS = ("yandex.", "x-yandex-forward")

_SENDER = re.compile(r"^mailer-daemon@(?:[\w-]+\.)*yandex\.[a-z.]+$", re.IGNORECASE)
_PARAGRAPH = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:(.*?)(?=^<[^<>\s]+@[^<>\s]+>:|\n[ \t]*\n|\Z)", re.MULTILINE | re.DOTALL)
_STEP = re.compile(r"\(in reply to (end of DATA|DATA|RCPT TO|MAIL FROM|HELO|EHLO)\s+command\)", re.IGNORECASE)
_COMMANDS = {"END OF DATA": "DATA", "RCPT TO": "RCPT", "MAIL FROM": "MAIL"}


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _SENDER.match(clean_address(bounce.sender) or "") and not bounce.header("X-Yandex-Forward"):
        return None
    findings = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    steps: dict[str, str] = {}
    texts: dict[str, str] = {}
    for paragraph in _PARAGRAPH.finditer(bounce.body):
        address = clean_address(paragraph.group(1))
        texts[address] = " ".join(paragraph.group(2).split())
        step = _STEP.search(paragraph.group(2).replace("\n", " "))
        if step:
            command = " ".join(step.group(1).split()).upper()
            steps[address] = _COMMANDS.get(command, command)
    if not findings:
        findings = [Finding(recipient=a, action="failed", diagnostic=t) for a, t in texts.items()]
    for finding in findings:
        address = clean_address(finding.recipient)
        finding.smtp_command = finding.smtp_command or steps.get(address, "")
        finding.diagnostic = finding.diagnostic or texts.get(address, "")
        if finding.action.lower() == "failed" and finding.status.strip().startswith("4."):
            finding.reason = Reason.EXPIRED
    return findings or None
