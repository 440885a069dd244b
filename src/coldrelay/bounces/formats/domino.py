"""IBM (Lotus) Domino: "DELIVERY FAILURE: ..." reports.

The body reads "Your message / Subject: ... / was not delivered to: / address /
because: / reason", a group per reason. Newer Domino adds a DSN part whose
``Diagnostic-Code`` is of type ``X-Notes``; it gives the status and the remote
host, while the body names the recipient as the sender addressed it.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "domino"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires the "was not delivered to:" line.
MARKERS = ("was not delivered to:",)

_SUBJECT = re.compile(r"^DELIVERY[ _]FAILURE:", re.IGNORECASE)
_NOT_DELIVERED = re.compile(r"^\s*was not delivered to:\s*$", re.IGNORECASE | re.MULTILINE)
_BECAUSE = re.compile(r"^\s*because:\s*$", re.IGNORECASE | re.MULTILINE)
_CLUES = re.compile(r"Lotus Domino|X-Notes;", re.IGNORECASE)


def _is_domino(bounce: Bounce) -> bool:
    if not (_NOT_DELIVERED.search(bounce.body) and _BECAUSE.search(bounce.body)):
        return False
    if _SUBJECT.match(bounce.subject):
        return True
    return bool(_CLUES.search(" ".join(bounce.delivery_status)) or _CLUES.search(bounce.original[:3000]))


def _groups(body: str) -> list[tuple[list[str], str]]:
    """(recipients, reason) for each "was not delivered to: ... because: ..." group."""
    groups: list[tuple[list[str], str]] = []
    starts = list(_NOT_DELIVERED.finditer(body))
    for index, start in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(body)
        chunk = body[start.end() : end]
        because = _BECAUSE.search(chunk)
        if because is None:
            continue
        reason_lines: list[str] = []
        for line in chunk[because.end() :].split("\n"):
            if not line.strip():
                if reason_lines:
                    break
                continue
            reason_lines.append(line.strip())
        groups.append((addresses_in(chunk[: because.start()]), " ".join(reason_lines)))
    return groups


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_domino(bounce):
        return None
    dsn = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    findings: list[Finding] = []
    for recipients, reason in _groups(bounce.body):
        for address in recipients:
            finding = Finding(recipient=address, action="failed", diagnostic=reason)
            if len(findings) < len(dsn):
                known = dsn[len(findings)]
                finding.status, finding.remote_mta = known.status, known.remote_mta
                finding.reporting_mta = known.reporting_mta
                finding.diagnostic = finding.diagnostic or known.diagnostic
            findings.append(finding)
    return findings or dsn or None
