"""SendGrid: "This is an automatically generated message from SendGrid."

The DSN part carries ``X-SendGrid-QueueID``; its ``Diagnostic-Code`` has no
``smtp;`` type and a message SendGrid gave up on says ``Action: expired``.
The notification repeats each failure on one line that also names the remote
host and the SMTP step:
``name:queue:<a@b> : 192.0.2.1 : mx.example.jp:[192.0.2.2] : 550 5.1.1 ... in RCPT TO``.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "sendgrid"
PRIORITY = 25
# Skipped by core.py unless a marker occurs: parse() requires SendGrid's signature or an X-SendGrid-QueueID field.
MARKERS = ("automatically generated message from sendgrid", "x-sendgrid-queueid")

_SIGNATURE = "automatically generated message from SendGrid"
_LINE = re.compile(
    r"^\S*?<([^<>\s]+@[^<>\s]+)>\s*:\s*(?:[\d.]+\s*:\s*)?(?:([A-Za-z0-9.-]+):\[[\d.:a-fA-F]+\]\s*:\s*)?(.*?)\s*$",
    re.MULTILINE,
)
_STEP = re.compile(r"\s+in\s+(RCPT TO|MAIL FROM|DATA|end of data|connect|EHLO|HELO)\s*$", re.IGNORECASE)
_STEPS = {"RCPT TO": "RCPT", "MAIL FROM": "MAIL", "END OF DATA": "DATA", "CONNECT": "CONNECT"}


def parse(bounce: Bounce) -> list[Finding] | None:
    from_dsn = any("x-sendgrid-queueid" in text.lower() for text in bounce.delivery_status)
    if _SIGNATURE not in bounce.body and not from_dsn:
        return None
    lines = {clean_address(m.group(1)): (m.group(2) or "", m.group(3)) for m in _LINE.finditer(bounce.body)}
    findings = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    if not findings:
        findings = [Finding(recipient=address, action="failed", diagnostic=text) for address, (_h, text) in lines.items()]
    for finding in findings:
        host, text = lines.get(clean_address(finding.recipient), ("", ""))
        step = _STEP.search(text)
        if step:
            finding.smtp_command = _STEPS.get(step.group(1).upper(), step.group(1).upper())
            text = text[: step.start()]
        finding.remote_mta = finding.remote_mta or host
        if not finding.diagnostic:
            finding.diagnostic = text
        if finding.action.lower() == "expired":
            finding.reason = Reason.EXPIRED  # SendGrid's own word: it stopped retrying
    return findings or None
