"""Automatic replies (RFC 3834): out-of-office and vacation messages, not bounces."""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "rfc3834"
PRIORITY = 60

_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|vacation|abwesenheit|absence|"
    r"r[ée]ponse automatique|respuesta autom[aá]tica|away from (?:the )?office|i am out of the office)",
    re.IGNORECASE,
)


def parse(bounce: Bounce) -> list[Finding] | None:
    auto = bounce.header("Auto-Submitted").lower()
    subject = bounce.subject
    looks_auto = auto.startswith("auto-replied") or bool(_SUBJECT.search(subject))
    looks_auto = looks_auto or bool(bounce.header("X-Autoreply") or bounce.header("X-Autorespond"))
    if not looks_auto or bounce.delivery_status:
        return None
    if re.search(r"(?i)undeliver|delivery status|returned mail|failure notice|mail delivery", subject):
        return None
    recipient = clean_address(bounce.sender) or clean_address(bounce.header("Reply-To"))
    return [Finding(recipient=recipient, reason=Reason.VACATION, diagnostic=" ".join(bounce.body.split())[:500])]
