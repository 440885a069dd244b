"""AOL Mail bounces: "Undeliverable:" notices from ``Postmaster@AOL.com`` and AOL's Postfix relays.

The ``Postmaster@AOL.com`` notices are an HTML page plus a delivery-status part
whose recipient blocks are run together with no blank line between them (nor
after the per-message fields), so the blocks are split again at each new
``Final-Recipient``. AOL's outbound relays are Postfix: a final report that
still carries a temporary (4.x.x) status is sent only when the message has sat
in the queue too long.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "aol"
PRIORITY = 20
# Skipped by core.py unless a marker occurs: parse() requires an @aol.com sender or the X-AOL-IP header.
MARKERS = ("@aol.com", "x-aol-ip")

_SENDER = re.compile(r"^(?:postmaster|mailer-daemon)@aol\.com$", re.IGNORECASE)
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:")
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")


def _is_aol(bounce: Bounce) -> bool:
    if _SENDER.match(clean_address(bounce.sender) or ""):
        return True
    return bool(bounce.header("X-AOL-IP") and bounce.header("X-BounceIO-Id"))


def reblock(text: str) -> str:
    """Put a blank line before every recipient block that starts without one."""
    out: list[str] = []
    keys: set[str] = set()
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            keys = set()
            out.append(line)
            continue
        found = _FIELD.match(line) if line[0] not in " \t" else None
        if found:
            name = found.group(1).lower()
            if name in _RECIPIENT_FIELDS and keys and (name in keys or keys - set(_RECIPIENT_FIELDS)):
                out.append("")
                keys = set()
            keys.add(name)
        out.append(line)
    return "\n".join(out)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_aol(bounce) or not bounce.delivery_status:
        return None
    findings = [f for text in bounce.delivery_status for f in findings_from_dsn(reblock(text)) if f.recipient]
    for finding in findings:
        if finding.action.lower() == "failed" and finding.status.strip().startswith("4."):
            finding.reason = Reason.EXPIRED
    return findings or None
