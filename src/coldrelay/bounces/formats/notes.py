"""Lotus Notes' SMTP MTA (Notes R4/R5 gateways): "Undeliverable message".

Between "------- Failure Reasons  --------" and "------- Returned Message
--------" the reason comes first, then the address it concerns, a pair per
recipient (a reason line may serve several addresses that follow it).
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "notes"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires the "Failure Reasons" ruler.
MARKERS = ("failure reasons",)

_REASONS = re.compile(r"^-{3,}\s*Failure Reasons\s*-{3,}\s*$", re.IGNORECASE | re.MULTILINE)
_RETURNED = re.compile(r"^-{3,}\s*Returned Message\s*-{3,}\s*$", re.IGNORECASE | re.MULTILINE)
_ADDRESS_LINE = re.compile(rf"^\s*<?({ADDRESS.pattern})>?\s*$")


def parse(bounce: Bounce) -> list[Finding] | None:
    start = _REASONS.search(bounce.body)
    if start is None:
        return None
    end = _RETURNED.search(bounce.body, start.end())
    section = bounce.body[start.end() : end.start() if end else len(bounce.body)]
    findings: list[Finding] = []
    reason: list[str] = []
    last = ""
    for line in section.split("\n"):
        found = _ADDRESS_LINE.match(line)
        if found:
            if reason:
                last = " ".join(reason)
                reason = []
            findings.append(Finding(recipient=found.group(1), action="failed", diagnostic=last))
        elif line.strip():
            reason.append(line.strip())
    return findings or None
