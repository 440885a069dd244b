"""The one reason vocabulary every part of coldrelay speaks.

A rejection seen during delivery, a bounce that arrives days later and a line a
person pastes into the web page all end in one of these reasons, so counts and
charts can be compared across sources. The names follow the vocabulary of the
best-known bounce classifier so results can be compared side by side with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why a message was not (or was) delivered, as one closed set."""

    AUTHFAILURE = "authfailure"
    BADREPUTATION = "badreputation"
    BLOCKED = "blocked"
    CONTENTERROR = "contenterror"
    DELIVERED = "delivered"
    EXCEEDLIMIT = "exceedlimit"
    EXPIRED = "expired"
    FAILEDSTARTTLS = "failedstarttls"
    FEEDBACK = "feedback"
    FILTERED = "filtered"
    HASMOVED = "hasmoved"
    HOSTUNKNOWN = "hostunknown"
    MAILBOXFULL = "mailboxfull"
    MAILERERROR = "mailererror"
    MESGTOOBIG = "mesgtoobig"
    NETWORKERROR = "networkerror"
    NORELAYING = "norelaying"
    NOTACCEPT = "notaccept"
    NOTCOMPLIANTRFC = "notcompliantrfc"
    ONHOLD = "onhold"
    POLICYVIOLATION = "policyviolation"
    REJECTED = "rejected"
    REQUIREPTR = "requireptr"
    SECURITYERROR = "securityerror"
    SPAMDETECTED = "spamdetected"
    SPEEDING = "speeding"
    SUPPRESSED = "suppressed"
    SUSPEND = "suspend"
    SYNTAXERROR = "syntaxerror"
    SYSTEMERROR = "systemerror"
    SYSTEMFULL = "systemfull"
    TOOMANYCONN = "toomanyconn"
    UNDEFINED = "undefined"
    USERUNKNOWN = "userunknown"
    VACATION = "vacation"
    VIRUSDETECTED = "virusdetected"


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    """What a reason means, in one line; whether it condemns the address is ``is_hard_bounce``."""

    reason: Reason
    meaning: str


REASON_INFO: dict[Reason, ReasonInfo] = {
    info.reason: info
    for info in (
        ReasonInfo(Reason.AUTHFAILURE, "SPF, DKIM or DMARC checks failed for the sending domain."),
        ReasonInfo(Reason.BADREPUTATION, "The receiver distrusts the sending IP or domain because of its history."),
        ReasonInfo(Reason.BLOCKED, "The sending IP or host is refused, often because of a blocklist listing."),
        ReasonInfo(Reason.CONTENTERROR, "The message's headers or body are malformed or not acceptable."),
        ReasonInfo(Reason.DELIVERED, "The message was delivered; the report only confirms it."),
        ReasonInfo(Reason.EXCEEDLIMIT, "The message exceeds a limit the recipient's mailbox sets."),
        ReasonInfo(Reason.EXPIRED, "Delivery kept failing for hours or days: the queue is still retrying or has given up."),
        ReasonInfo(Reason.FAILEDSTARTTLS, "The TLS handshake needed for delivery did not succeed."),
        ReasonInfo(Reason.FEEDBACK, "A recipient reported the message (for example as spam) through a feedback loop."),
        ReasonInfo(Reason.FILTERED, "The recipient's filters or settings refused the message for this address."),
        ReasonInfo(Reason.HASMOVED, "The recipient has moved to another address and this one no longer works."),
        ReasonInfo(Reason.HOSTUNKNOWN, "The recipient's domain does not exist or has no mail server."),
        ReasonInfo(Reason.MAILBOXFULL, "The recipient's mailbox is over its storage quota."),
        ReasonInfo(Reason.MAILERERROR, "A program on the receiving side that handles delivery failed."),
        ReasonInfo(Reason.MESGTOOBIG, "The message is larger than the receiving system accepts."),
        ReasonInfo(Reason.NETWORKERROR, "The receiving host could not be reached or the connection broke."),
        ReasonInfo(Reason.NORELAYING, "The server refuses to relay: it neither hosts the recipient nor trusts the sender."),
        ReasonInfo(Reason.NOTACCEPT, "The recipient's domain accepts no mail at all (for example a null MX)."),
        ReasonInfo(Reason.NOTCOMPLIANTRFC, "The message breaks the mail format standards (for example duplicate headers)."),
        ReasonInfo(Reason.ONHOLD, "Delivery is held or undecided: greylisting, or a report whose words give no reason."),
        ReasonInfo(Reason.POLICYVIOLATION, "The message breaks a policy of the receiving organisation."),
        ReasonInfo(Reason.REJECTED, "The sender's address or domain was refused."),
        ReasonInfo(Reason.REQUIREPTR, "The sending IP has no valid reverse DNS (PTR) record."),
        ReasonInfo(Reason.SECURITYERROR, "A security requirement such as authentication or encryption was not met."),
        ReasonInfo(Reason.SPAMDETECTED, "The receiver's filters judged the message to be spam."),
        ReasonInfo(Reason.SPEEDING, "Too many messages in a short time: the receiver is rate-limiting the sender."),
        ReasonInfo(Reason.SUPPRESSED, "The sending service suppressed the address because it bounced or complained before."),
        ReasonInfo(Reason.SUSPEND, "The recipient's mailbox exists but is disabled or suspended."),
        ReasonInfo(Reason.SYNTAXERROR, "The SMTP conversation had a syntax error."),
        ReasonInfo(Reason.SYSTEMERROR, "The receiving system failed internally or is misconfigured."),
        ReasonInfo(Reason.SYSTEMFULL, "The receiving system has run out of disk or resources."),
        ReasonInfo(Reason.TOOMANYCONN, "Too many connections or recipients at once from the sender."),
        ReasonInfo(Reason.UNDEFINED, "The reply says too little to tell why delivery failed."),
        ReasonInfo(Reason.USERUNKNOWN, "The recipient address does not exist."),
        ReasonInfo(Reason.VACATION, "An automatic out-of-office or vacation reply."),
        ReasonInfo(Reason.VIRUSDETECTED, "The message was found to carry a virus or malware."),
    )
}


HARD_REASONS = frozenset({Reason.USERUNKNOWN, Reason.HOSTUNKNOWN, Reason.HASMOVED, Reason.NOTACCEPT})
"""Reasons that condemn the address itself when the refusal is final."""


def is_hard_bounce(reason: Reason, permanent: bool) -> bool:
    """True when the address itself is bad and must leave every list.

    Only a final refusal of the address counts: a missing mailbox or domain, a
    domain that accepts no mail, a recipient who moved. A disabled or full
    mailbox may come back, so it is soft, as is every temporary failure.
    """
    return permanent and reason in HARD_REASONS


class WhoActs(StrEnum):
    """Whose move it is to make the next delivery succeed."""

    RECIPIENT = "recipient"
    """The address is the problem: clean your list (nothing you change will deliver it)."""
    SENDER = "sender"
    """Your setup is the problem: DNS, authentication, reputation, content or volume."""
    RECEIVER = "receiver"
    """The receiving system is the problem: only its administrator can fix it."""
    RETRY = "retry"
    """A passing condition: wait and let the queue retry."""


WHO_ACTS_MEANING: dict[WhoActs, str] = {
    WhoActs.RECIPIENT: "The recipient address is the problem: remove or correct it in your list.",
    WhoActs.SENDER: "Your sending setup must change: DNS, authentication, reputation, content or volume.",
    WhoActs.RECEIVER: "The receiving system is at fault: its administrator has to fix it.",
    WhoActs.RETRY: "A temporary condition: wait and let the queue retry.",
}
