"""Apache James: the notices of its bounce mailets.

Two layouts: "Error message below:" with the reply, then "Message details:"
whose ``RCPT TO:`` line names the recipient; or "I'm afraid I wasn't able to
deliver your message to the following addresses." with "Failed recipient(s):"
and "Error message:".
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, addresses_in
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "apachejames"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: each layout requires its "Message details:" or "Failed recipient(s):" line.
MARKERS = ("message details:", "failed recipient(s):")

_ERROR = re.compile(r"^\s*Error message(?: below)?:\s*$", re.IGNORECASE | re.MULTILINE)
_DETAILS = re.compile(r"^\s*Message details:\s*$", re.IGNORECASE | re.MULTILINE)
_RCPT = re.compile(rf"^\s*RCPT TO:\s*<?({ADDRESS.pattern})>?", re.IGNORECASE | re.MULTILINE)
_FAILED = re.compile(r"^\s*Failed recipient\(s\):\s*$", re.IGNORECASE | re.MULTILINE)
_JAMES = re.compile(r"This is the James mail server|wasn'?t able to deliver your message to the following addresses", re.I)


def _paragraph(text: str) -> str:
    lines: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            lines.append(line.strip())
        elif lines:
            break
    return " ".join(lines)


def parse(bounce: Bounce) -> list[Finding] | None:
    error = _ERROR.search(bounce.body)
    if error is None:
        return None
    diagnostic = _paragraph(bounce.body[error.end() :])
    details = _DETAILS.search(bounce.body)
    if details is not None:
        recipients = [m.group(1) for m in _RCPT.finditer(bounce.body, details.end())]
    elif _JAMES.search(bounce.body) and (failed := _FAILED.search(bounce.body)) is not None:
        recipients = addresses_in(bounce.body[failed.end() : error.start() if error.start() > failed.end() else None])
    else:
        return None
    return [Finding(recipient=address, action="failed", diagnostic=diagnostic) for address in recipients] or None
