"""PowerMTA: a standard DSN whose per-message block names ``X-PowerMTA-VirtualMTA``.

Each recipient block adds ``X-PowerMTA-BounceCategory`` (``bad-mailbox``,
``quota-issues``...), PowerMTA's own verdict on the remote reply. The reply's
words decide; the category speaks only when they say nothing we recognise.
"""

from __future__ import annotations

from coldrelay.bounces.dsn import split_delivery_status
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason, explain

NAME = "powermta"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires an X-PowerMTA- field in a delivery-status part.
MARKERS = ("x-powermta-",)

_CATEGORIES: dict[str, Reason] = {
    "bad-domain": Reason.HOSTUNKNOWN,
    "bad-mailbox": Reason.USERUNKNOWN,
    "inactive-mailbox": Reason.SUSPEND,
    "message-expired": Reason.EXPIRED,
    "no-answer-from-host": Reason.NETWORKERROR,
    "policy-related": Reason.POLICYVIOLATION,
    "quota-issues": Reason.MAILBOXFULL,
    "routing-errors": Reason.SYSTEMERROR,
    "spam-related": Reason.SPAMDETECTED,
    "virus-related": Reason.VIRUSDETECTED,
    "relaying-issues": Reason.NORELAYING,
    "content-related": Reason.CONTENTERROR,
}


def _is_powermta(text: str) -> bool:
    lowered = text.lower()
    return "x-powermta-" in lowered


def parse(bounce: Bounce) -> list[Finding] | None:
    texts = [text for text in bounce.delivery_status if _is_powermta(text)]
    if not texts:
        return None
    findings: list[Finding] = []
    for text in texts:
        _per_message, blocks = split_delivery_status(text)
        categories = [block.get("x-powermta-bouncecategory", "").strip().lower() for block in blocks]
        for finding, category in zip(findings_from_dsn(text), categories, strict=False):
            if not finding.recipient:
                continue
            stated = _CATEGORIES.get(category)
            if stated is not None:
                words = explain(finding.diagnostic) if finding.diagnostic else None
                if words is None or words.matched_by == "none" or words.reason is Reason.UNDEFINED:
                    finding.reason = stated
            finding.extra["bounce_category"] = category
            findings.append(finding)
    return findings or None
