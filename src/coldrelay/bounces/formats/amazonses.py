"""Amazon SES: its own bounce mails and the JSON notifications it publishes through SNS.

Two layouts:

- a DSN sent from ``MAILER-DAEMON@...amazonses.com`` whose notification
  starts "An error occurred while trying to deliver the mail" or, in older
  mails, "The following message to <...> was undeliverable. The reason for the
  problem:", where the diagnostic wraps the remote reply:
  ``5.1.0 - Unknown address error 550-'5.2.2 <a@b>... Mailbox Full' (delivery attempts: 0)``;
- an SNS notification (``{"Type": "Notification", "Message": "{...}"}`` or the
  bare SES JSON) with ``notificationType`` (or ``eventType``) Bounce,
  Complaint or Delivery.
"""

from __future__ import annotations

import json
import re
from typing import Any

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.dsn import untyped
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "amazonses"
PRIORITY = 20
# Skipped by core.py unless a marker occurs: parse() requires the SNS JSON keys or an amazonses.com sender.
MARKERS = ("notificationtype", "eventtype", "amazonses.com")

_SES_HOST = re.compile(r"amazonses\.com\b", re.IGNORECASE)
_NOTICES = (
    "An error occurred while trying to deliver the mail to the following recipients",
    "was undeliverable.",
)
_OLD_NOTICE = re.compile(
    r"The following message to <([^>]+)> was undeliverable\.\s*The reason for the problem:\s*(.+?)(?:\n\s*\n|\Z)",
    re.DOTALL,
)
_WRAPPED = re.compile(r"^\s*\d\.\d{1,3}\.\d{1,3} - .*?\b([245]\d\d)[ -]'(.*)'\s*(?:\(delivery attempts: \d+\))?\s*$", re.DOTALL)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_JSON_KIND = re.compile(r'\\?"(?:notificationType|eventType)\\?"\s*:')
_SUBTYPES: dict[str, Reason] = {
    "suppressed": Reason.SUPPRESSED,
    "onaccountsuppressionlist": Reason.SUPPRESSED,
    "noemail": Reason.USERUNKNOWN,
    "mailboxfull": Reason.MAILBOXFULL,
    "messagetoolarge": Reason.MESGTOOBIG,
}
"""``bounceSubType`` values that state the reason; SES's suppression list speaks for itself, the others only
when the notification carries no remote reply."""


def _unwrap(diagnostic: str) -> tuple[str, str]:
    """(remote reply, its status) from SES's wrapper; the text unchanged when it is not wrapped."""
    text = " ".join(diagnostic.split())
    found = _WRAPPED.match(text)
    if not found:
        return text, ""
    reply = f"{found.group(1)} {found.group(2).strip()}"
    status = _STATUS.search(found.group(2))
    return reply, status.group(1) if status else ""


def _from_mail(bounce: Bounce) -> list[Finding] | None:
    if not _SES_HOST.search(bounce.sender) or "workmail" in bounce.header("X-Mailer").lower():
        return None
    reported_by_ses = any(_SES_HOST.search(text) for text in bounce.delivery_status)
    if not reported_by_ses and not any(notice in bounce.body for notice in _NOTICES):
        return None
    findings = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    if not findings:
        old = _OLD_NOTICE.search(bounce.body)
        if old is None:
            return None
        findings = [Finding(recipient=old.group(1), action="failed", diagnostic=old.group(2))]
    for finding in findings:
        reply, status = _unwrap(finding.diagnostic)
        finding.diagnostic = reply
        if status and (not finding.status or finding.status.split()[0].endswith(".0.0")):
            finding.status = status
    return findings


def _load_json(text: str) -> dict[str, Any] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    raw = text[start : end + 1]
    for candidate in (raw, raw.replace("!\n ", ""), re.sub(r"\n[ \t]?", "", raw)):
        try:
            data = json.loads(candidate, strict=False)
        except ValueError:
            continue
        return data if isinstance(data, dict) else None
    return None


def _notification(bounce: Bounce) -> dict[str, Any] | None:
    """The SES notification in an SNS mail (or a bare one), or None."""
    if not _JSON_KIND.search(bounce.body):
        return None
    data = _load_json(bounce.body)
    if data is None:
        return None
    message = data.get("Message")
    if isinstance(message, str):
        data = _load_json(message) or {}
    elif isinstance(message, dict):
        data = message
    kind = data.get("notificationType") or data.get("eventType")
    return data if isinstance(kind, str) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _bounce_findings(data: dict[str, Any]) -> list[Finding]:
    bounce = data.get("bounce")
    if not isinstance(bounce, dict):
        return []
    subtype = _str(bounce.get("bounceSubType")).lower()
    reporting = untyped(_str(bounce.get("reportingMTA")))
    stated = _SUBTYPES.get(subtype)
    findings = []
    for item in _dicts(bounce.get("bouncedRecipients")):
        diagnostic = untyped(_str(item.get("diagnosticCode")))
        findings.append(
            Finding(
                recipient=_str(item.get("emailAddress")),
                action=_str(item.get("action")) or "failed",
                status=_str(item.get("status")),
                diagnostic=diagnostic,
                reporting_mta=reporting,
                reason=stated if stated is Reason.SUPPRESSED or not diagnostic else None,
                timestamp=_str(bounce.get("timestamp")),
            )
        )
    return findings


def _complaint_findings(data: dict[str, Any]) -> list[Finding]:
    complaint = data.get("complaint")
    if not isinstance(complaint, dict):
        return []
    feedback_type = _str(complaint.get("complaintFeedbackType")).lower() or "abuse"
    return [
        Finding(
            recipient=_str(item.get("emailAddress")),
            reason=Reason.FEEDBACK,
            feedback_type=feedback_type,
            timestamp=_str(complaint.get("arrivalDate")) or _str(complaint.get("timestamp")),
        )
        for item in _dicts(complaint.get("complainedRecipients"))
    ]


def _delivery_findings(data: dict[str, Any]) -> list[Finding]:
    delivery = data.get("delivery")
    if not isinstance(delivery, dict):
        return []
    response = _str(delivery.get("smtpResponse"))
    status = _STATUS.search(response)
    recipients = delivery.get("recipients")
    return [
        Finding(
            recipient=recipient,
            action="delivered",
            status=status.group(1) if status else "",
            diagnostic=response,
            reporting_mta=_str(delivery.get("reportingMTA")),
            reason=Reason.DELIVERED,
            timestamp=_str(delivery.get("timestamp")),
        )
        for recipient in (recipients if isinstance(recipients, list) else [])
        if isinstance(recipient, str)
    ]


def _from_json(bounce: Bounce) -> list[Finding] | None:
    data = _notification(bounce)
    if data is None:
        return None
    kind = _str(data.get("notificationType") or data.get("eventType")).lower()
    if kind == "bounce":
        findings = _bounce_findings(data)
    elif kind == "complaint":
        findings = _complaint_findings(data)
    elif kind == "delivery":
        findings = _delivery_findings(data)
    else:
        return None
    return [f for f in findings if clean_address(f.recipient)] or None


def parse(bounce: Bounce) -> list[Finding] | None:
    return _from_json(bounce) or _from_mail(bounce)
