"""SurfControl E-mail Filter (later Websense): ``X-Mailer: SurfControl E-mail Filter``.

"Your message could not be sent. A transcript of the attempts to send the
message follows." Then "Addressed To: address", the attempts (a date, "Failed
to send to identified host," and ``address: [ip], 550 ...``) and "--- Message
non-deliverable.". A DSN-like part repeats the reply without a status of note.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "surfcontrol"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires X-Mailer: SurfControl.
MARKERS = ("surfcontrol",)

_MAILER = re.compile(r"SurfControl", re.IGNORECASE)
_TRANSCRIPT = re.compile(r"A transcript of the attempts to send the message follows", re.IGNORECASE)
_ADDRESSED = re.compile(rf"^\s*Addressed To:\s*<?({ADDRESS.pattern})>?", re.IGNORECASE | re.MULTILINE)
_ATTEMPT = re.compile(rf"^\s*<?({ADDRESS.pattern})>?:\s*(?:\[([^\]]*)\],?\s*)?(.+)$")
_END = re.compile(r"^\s*-+\s*Message non-deliverable", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _MAILER.search(bounce.header("X-Mailer")) or not _TRANSCRIPT.search(bounce.body):
        return None
    findings: dict[str, Finding] = {}
    for found in _ADDRESSED.finditer(bounce.body):
        findings.setdefault(clean_address(found.group(1)), Finding(recipient=found.group(1), action="failed"))
    for line in bounce.body.split("\n"):
        if _END.match(line):
            break
        attempt = _ATTEMPT.match(line)
        if attempt is None:
            continue
        finding = findings.setdefault(clean_address(attempt.group(1)), Finding(recipient=attempt.group(1), action="failed"))
        finding.diagnostic = attempt.group(3).strip()  # the last attempt's reply
        finding.remote_mta = attempt.group(2) or finding.remote_mta
    return list(findings.values()) or None
