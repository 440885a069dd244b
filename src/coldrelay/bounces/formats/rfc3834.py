"""Automatic replies (RFC 3834): out-of-office and vacation messages, not bounces.

An auto-reply says what it is in its headers (``Auto-Submitted: auto-replied``,
``X-Autoreply``, ``Precedence: auto_reply``) or in a fixed subject ("Auto
reply:", "Out of Office:", "Abwesenheitsnotiz"...). Many MTAs put the same
``Auto-Submitted`` header on their bounces, so anything from a mailer daemon or
worded like a delivery report is left to the bounce readers.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "rfc3834"
PRIORITY = 60

_SUBJECT = re.compile(
    r"^(?:auto(?:matic|matische)?[ -]?(?:reply|response|antwort|respuesta|r[ée]ponse)|autoreply|auto:|out of (?:the )?office\b"
    r"|vacation (?:reply|notice|message|response)|vacation:|abwesenheit|absence\b|r[ée]ponse automatique"
    r"|respuesta autom[aá]tica|away from (?:the )?office|i am out of the office|i am away)",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"^(?:mailer-daemon|mail-daemon|mailerdaemon|postmaster|double-bounce|mdaemon)@", re.IGNORECASE)
_BOUNCE_WORDS = re.compile(
    r"undeliver|delivery status|returned mail|failure notice|mail delivery|delivery (?:has )?failed|non-?delivery"
    r"|could not be delivered|nicht zustellbar|unzustellbar|delivery notification|warning: message",
    re.IGNORECASE,
)


def _says_auto_reply(bounce: Bounce) -> bool:
    if bounce.header("Auto-Submitted").strip().lower().startswith("auto-replied"):
        return True
    if bounce.header("X-Autoreply") or bounce.header("X-Autorespond") or bounce.header("X-Autoreply-From"):
        return True
    if bounce.header("Precedence").strip().lower() == "auto_reply":
        return True
    found = _SUBJECT.search(bounce.subject)
    if found is None:
        return False
    # A subject alone is weak ("Out of office party"): the reply must answer a message or say "...:".
    answers = bool(bounce.header("In-Reply-To") or bounce.header("References"))
    rest = bounce.subject[found.end() :].lstrip()
    return answers or found.group(0).endswith(":") or rest.startswith(":") or not rest


def _looks_like_bounce(bounce: Bounce) -> bool:
    if bounce.delivery_status or bounce.feedback_report:
        return True
    if _DAEMON.match(clean_address(bounce.sender) or ""):
        return True
    return bool(_BOUNCE_WORDS.search(bounce.subject)) or bool(_BOUNCE_WORDS.search(bounce.body[:2000]))


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _says_auto_reply(bounce) or _looks_like_bounce(bounce):
        return None
    recipient = clean_address(bounce.sender) or clean_address(bounce.header("Reply-To"))
    if not recipient:
        return None
    return [Finding(recipient=recipient, reason=Reason.VACATION, diagnostic=" ".join(bounce.body.split())[:500])]
