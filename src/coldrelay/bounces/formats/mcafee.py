"""McAfee Email (and Web) Security Appliance: "Delivery Status".

Marked by ``X-NAI-Header: Modified by McAfee ...``. The text part,
``deliveryproblems.txt``, lists "--- The following addresses had delivery
problems ---" then ``<address>   (reason)``; a ``deliverystatus.txt`` part has
DSN-like fields with ``Original-Recipient`` and ``Diagnostic-Code`` only.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "mcafee"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires an X-NAI-Header header.
MARKERS = ("x-nai-header",)

_HEADER = re.compile(r"McAfee", re.IGNORECASE)
_PROBLEMS = re.compile(r"^\s*-+\s*The following addresses had delivery problems\s*-+\s*$", re.IGNORECASE | re.MULTILINE)
_LINE = re.compile(rf"^\s*<?({ADDRESS.pattern})>?\s+\((.*)\)\s*$")


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _HEADER.search(bounce.header("X-NAI-Header")):
        return None
    start = _PROBLEMS.search(bounce.body)
    listed: list[Finding] = []
    if start is not None:
        for line in bounce.body[start.end() :].split("\n"):
            found = _LINE.match(line)
            if found:
                listed.append(Finding(recipient=found.group(1), action="failed", diagnostic=found.group(2).strip()))
    dsn = {clean_address(f.recipient): f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient}
    for finding in listed:
        known = dsn.get(clean_address(finding.recipient))
        if known is not None:
            finding.diagnostic = known.diagnostic or finding.diagnostic
            finding.status = known.status
            finding.remote_mta = known.remote_mta
            finding.action = known.action or finding.action
    return listed or list(dsn.values()) or None
