"""Symantec Email Security.cloud (MessageLabs): "Mail Delivery Failure".

"This is the mail delivery agent at Symantec Email Security.cloud." (older:
"at MessageLabs Email Security System"), "I was unable to deliver your
message to the following addresses:", the addresses, then "Reason:" with the
remote reply, which may run over several ``550-`` lines.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "messagelabs"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires the agent's sentence.
MARKERS = ("this is the mail delivery agent at symantec email security.cloud", "this is the mail delivery agent at messagelabs")

_AGENT = re.compile(r"This is the mail delivery agent at (?:Symantec Email Security\.cloud|MessageLabs)", re.IGNORECASE)
_UNABLE = re.compile(r"^\s*I was unable to deliver your message to the following addresses:\s*$", re.IGNORECASE | re.MULTILINE)
_REASON = re.compile(r"^\s*Reason:\s*(.*)$", re.IGNORECASE)
_END = re.compile(r"^\s*The message (?:subject|date|identifier|reference) was:", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _AGENT.search(bounce.body):
        return None
    start = _UNABLE.search(bounce.body)
    findings: list[Finding] = []
    if start is not None:
        pending: list[str] = []
        reason: list[str] | None = None
        for line in bounce.body[start.end() :].split("\n"):
            if _END.match(line):
                break
            found = _REASON.match(line)
            if found:
                reason = [found.group(1).strip()]
                continue
            if reason is not None:
                if line.strip() and not ADDRESS.fullmatch(line.strip()):
                    reason.append(line.strip())
                    continue
                for address in pending:
                    findings.append(Finding(recipient=address, action="failed", diagnostic=" ".join(reason)))
                pending, reason = [], None
            if ADDRESS.fullmatch(line.strip()):
                pending.append(line.strip())
        for address in pending:
            findings.append(Finding(recipient=address, action="failed", diagnostic=" ".join(reason or [])))
    dsn = {clean_address(f.recipient): f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient}
    for finding in findings:
        known = dsn.get(clean_address(finding.recipient))
        if known is not None:
            finding.status = known.status
            finding.reporting_mta = known.reporting_mta
            finding.remote_mta = known.remote_mta
            finding.diagnostic = finding.diagnostic or known.diagnostic
    return findings or list(dsn.values()) or None
