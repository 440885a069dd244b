"""MailFoundry gateways: "Message delivery has failed".

"Unable to deliver message to: <address>", then "Delivery failed for the
following reason:" and "Server host[ip] failed with: 550 ...". The gateway
stamps its own Received lines with ``(MAILFOUNDRY)``.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "mailfoundry"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires the "(MAILFOUNDRY)" stamp in a Received line.
MARKERS = ("(mailfoundry)",)

_STAMP = re.compile(r"\(MAILFOUNDRY\)", re.IGNORECASE)
_UNABLE = re.compile(rf"^\s*Unable to deliver message to:\s*<?({ADDRESS.pattern})>?", re.IGNORECASE | re.MULTILINE)
_REASON = re.compile(r"^\s*Delivery failed for the following reason:\s*$", re.IGNORECASE | re.MULTILINE)
_SERVER = re.compile(r"^\s*Server\s+([^\s\[]+)(?:\[[^\]]*\])?\s+failed with:\s*", re.IGNORECASE)
_TEMPORARY = re.compile(r"This (?:has been|is) a temporary failure", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    received = " ".join(str(v) for v in bounce.message.get_all("Received") or [])
    if not _STAMP.search(received) or not _REASON.search(bounce.body):
        return None
    action = "delayed" if _TEMPORARY.search(bounce.body) else "failed"
    starts = list(_UNABLE.finditer(bounce.body))
    findings: list[Finding] = []
    for index, start in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(bounce.body)
        chunk = bounce.body[start.end() : end]
        reason = _REASON.search(chunk)
        lines: list[str] = []
        remote = ""
        for line in chunk[reason.end() if reason else 0 :].split("\n"):
            if not line.strip():
                if lines:
                    break
                continue
            server = _SERVER.match(line)
            if server:
                remote = server.group(1)
                line = line[server.end() :]
            lines.append(line.strip())
        findings.append(Finding(recipient=start.group(1), action=action, diagnostic=" ".join(lines), remote_mta=remote))
    return findings or None
