"""OpenSMTPD: "Delivery status notification: error" (or failed, delayed).

The notice, indented by four spaces, says "This is the MAILER-DAEMON, please DO
NOT REPLY to this e-mail." and lists each recipient flush left as
``rcpt@example.net: reason`` up to "Below is a copy of the original message:".
Newer versions add a DSN whose Status is only 5.0.0 or 4.0.0 and no
Diagnostic-Code: the reason is the line in the notice. Older versions send no
DSN; the notice's kind then gives the status the newer DSN would carry.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "opensmtpd"
PRIORITY = 40
# Skipped by core.py unless a marker occurs: parse() requires OpenSMTPD's opening sentence.
MARKERS = ("this is the mailer-daemon, please do not reply to this e",)

_INTRO = re.compile(r"This is the MAILER-DAEMON, please DO NOT REPLY to this e-?mail", re.IGNORECASE)
_SUBJECT = re.compile(r"^Delivery status notification:\s*(\w+)", re.IGNORECASE)
_OPENSMTPD_RECEIVED = re.compile(r"\(OpenSMTPD\)", re.IGNORECASE)
_RECIPIENT_LINE = re.compile(r"^([^\s:<>]+@[^\s:<>]+):\s+(\S.*)$")
_END = re.compile(r"^\s*(?:Below is a copy of the original message|Please note that this is only a temporary)", re.I)
_KINDS = {
    "error": ("failed", "5.0.0"),
    "failed": ("failed", "5.0.0"),
    "delayed": ("delayed", "4.0.0"),
    "success": ("delivered", "2.0.0"),
}
_DONE = ("delivered", "relayed", "expanded")
_DELAYED_NOTICE = re.compile(r"A message is delayed for more than", re.IGNORECASE)
_CODE = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b|^[245]\d\d\b")


def _is_opensmtpd(bounce: Bounce, body: str) -> bool:
    if not _INTRO.search(body):
        return False
    received = " ".join(str(value) for value in bounce.message.get_all("Received") or [])
    return bool(_SUBJECT.match(bounce.subject)) or bool(_OPENSMTPD_RECEIVED.search(received))


def _lines(body: str) -> list[tuple[str, str]]:
    """(recipient, reason) of each flush-left line of the notice."""
    found: list[tuple[str, str]] = []
    for line in body.split("\n"):
        if _END.match(line):
            break
        matched = _RECIPIENT_LINE.match(line)
        if matched:
            found.append((matched.group(1), matched.group(2).strip()))
    return found


def parse(bounce: Bounce) -> list[Finding] | None:
    body = bounce.body.replace("\r\n", "\n").replace("\r", "\n")
    if not _is_opensmtpd(bounce, body):
        return None
    notice = {clean_address(address): reason for address, reason in _lines(body)}
    dsn = [finding for text in bounce.delivery_status for finding in findings_from_dsn(text) if finding.recipient]
    findings: list[Finding] = []
    if dsn:
        for finding in dsn:
            finding.diagnostic = finding.diagnostic or notice.get(clean_address(finding.recipient), "")
            finding.reason = Reason.DELIVERED if finding.action.lower() in _DONE else None
            findings.append(finding)
        return findings
    kind = _SUBJECT.match(bounce.subject)
    action, status = _KINDS.get(kind.group(1).lower() if kind else "", ("", ""))
    if not action and _DELAYED_NOTICE.search(body):
        action, status = _KINDS["delayed"]
    for address, reason in _lines(body):
        own_status = "" if _CODE.search(reason) else status  # the remote reply's code says more
        delivered = Reason.DELIVERED if action in _DONE else None
        findings.append(Finding(recipient=address, action=action, status=own_status, diagnostic=reason, reason=delivered))
    return findings or None
