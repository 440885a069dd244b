"""Amazon WorkMail: a ``multipart/mixed`` notice with ``X-Mailer: Amazon WorkMail``.

The text part reads "An error occurred while trying to deliver the mail to the
following recipients:", then "Technical report:" and the RFC 3464 fields as
plain text (no ``message/delivery-status`` part).
"""

from __future__ import annotations

from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "amazonworkmail"
PRIORITY = 15
# Skipped by core.py unless a marker occurs: parse() requires X-Mailer: Amazon WorkMail.
MARKERS = ("workmail",)

_REPORT = "Technical report:"


def parse(bounce: Bounce) -> list[Finding] | None:
    if "amazon workmail" not in bounce.header("X-Mailer").lower():
        return None
    texts = list(bounce.delivery_status)
    if _REPORT in bounce.body:
        texts.append(bounce.body.split(_REPORT, 1)[1])
    findings = [finding for text in texts for finding in findings_from_dsn(text) if finding.recipient]
    return findings or None
