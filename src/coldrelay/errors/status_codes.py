"""The IANA registry of SMTP enhanced status codes, and what plain reply codes mean.

When no knowledge-base entry recognises a reply, its codes still say a lot:
``5.1.1`` is a bad mailbox whoever sends it. This module is that fallback: the
registry's class and subject.detail titles (RFC 3463, RFC 5248 and the RFCs that
registered codes since), the RFC 5321 meaning of each basic code, and the reason
each code most often stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

from coldrelay.errors.reasons import Reason

CLASS_TITLES: dict[int, str] = {
    2: "Success",
    4: "Persistent Transient Failure",
    5: "Permanent Failure",
}

SUBJECT_TITLES: dict[int, str] = {
    0: "Other or Undefined Status",
    1: "Addressing Status",
    2: "Mailbox Status",
    3: "Mail System Status",
    4: "Network and Routing Status",
    5: "Mail Delivery Protocol Status",
    6: "Message Content or Media Status",
    7: "Security or Policy Status",
}


@dataclass(frozen=True, slots=True)
class RegisteredCode:
    """One ``X.subject.detail`` row of the IANA registry."""

    subject_detail: str
    title: str
    reference: str
    reason: Reason


REGISTRY: dict[str, RegisteredCode] = {
    row.subject_detail: row
    for row in (
        RegisteredCode("0.0", "Other undefined Status", "RFC 3463", Reason.UNDEFINED),
        RegisteredCode("1.0", "Other address status", "RFC 3463", Reason.USERUNKNOWN),
        RegisteredCode("1.1", "Bad destination mailbox address", "RFC 3463", Reason.USERUNKNOWN),
        RegisteredCode("1.2", "Bad destination system address", "RFC 3463", Reason.HOSTUNKNOWN),
        RegisteredCode("1.3", "Bad destination mailbox address syntax", "RFC 3463", Reason.USERUNKNOWN),
        RegisteredCode("1.4", "Destination mailbox address ambiguous", "RFC 3463", Reason.USERUNKNOWN),
        RegisteredCode("1.5", "Destination address valid", "RFC 3463", Reason.DELIVERED),
        RegisteredCode("1.6", "Destination mailbox has moved, No forwarding address", "RFC 3463", Reason.HASMOVED),
        RegisteredCode("1.7", "Bad sender's mailbox address syntax", "RFC 3463", Reason.REJECTED),
        RegisteredCode("1.8", "Bad sender's system address", "RFC 3463", Reason.REJECTED),
        RegisteredCode("1.9", "Message relayed to non-compliant mailer", "RFC 3886", Reason.DELIVERED),
        RegisteredCode("1.10", "Recipient address has null MX", "RFC 7505", Reason.NOTACCEPT),
        RegisteredCode("2.0", "Other or undefined mailbox status", "RFC 3463", Reason.UNDEFINED),
        RegisteredCode("2.1", "Mailbox disabled, not accepting messages", "RFC 3463", Reason.SUSPEND),
        RegisteredCode("2.2", "Mailbox full", "RFC 3463", Reason.MAILBOXFULL),
        RegisteredCode("2.3", "Message length exceeds administrative limit", "RFC 3463", Reason.EXCEEDLIMIT),
        RegisteredCode("2.4", "Mailing list expansion problem", "RFC 3463", Reason.SYSTEMERROR),
        RegisteredCode("3.0", "Other or undefined mail system status", "RFC 3463", Reason.SYSTEMERROR),
        RegisteredCode("3.1", "Mail system full", "RFC 3463", Reason.SYSTEMFULL),
        RegisteredCode("3.2", "System not accepting network messages", "RFC 3463", Reason.NOTACCEPT),
        RegisteredCode("3.3", "System not capable of selected features", "RFC 3463", Reason.SYSTEMERROR),
        RegisteredCode("3.4", "Message too big for system", "RFC 3463", Reason.MESGTOOBIG),
        RegisteredCode("3.5", "System incorrectly configured", "RFC 3463", Reason.SYSTEMERROR),
        RegisteredCode("3.6", "Requested priority was changed", "RFC 6710", Reason.DELIVERED),
        RegisteredCode("4.0", "Other or undefined network or routing status", "RFC 3463", Reason.NETWORKERROR),
        RegisteredCode("4.1", "No answer from host", "RFC 3463", Reason.NETWORKERROR),
        RegisteredCode("4.2", "Bad connection", "RFC 3463", Reason.NETWORKERROR),
        RegisteredCode("4.3", "Directory server failure", "RFC 3463", Reason.SYSTEMERROR),
        RegisteredCode("4.4", "Unable to route", "RFC 3463", Reason.HOSTUNKNOWN),
        RegisteredCode("4.5", "Mail system congestion", "RFC 3463", Reason.SYSTEMERROR),
        RegisteredCode("4.6", "Routing loop detected", "RFC 3463", Reason.SYSTEMERROR),
        RegisteredCode("4.7", "Delivery time expired", "RFC 3463", Reason.EXPIRED),
        RegisteredCode("5.0", "Other or undefined protocol status", "RFC 3463", Reason.SYNTAXERROR),
        RegisteredCode("5.1", "Invalid command", "RFC 3463", Reason.SYNTAXERROR),
        RegisteredCode("5.2", "Syntax error", "RFC 3463", Reason.SYNTAXERROR),
        RegisteredCode("5.3", "Too many recipients", "RFC 3463", Reason.TOOMANYCONN),
        RegisteredCode("5.4", "Invalid command arguments", "RFC 3463", Reason.SYNTAXERROR),
        RegisteredCode("5.5", "Wrong protocol version", "RFC 3463", Reason.SYNTAXERROR),
        RegisteredCode("5.6", "Authentication Exchange line is too long", "RFC 4954", Reason.SYNTAXERROR),
        RegisteredCode("6.0", "Other or undefined media error", "RFC 3463", Reason.CONTENTERROR),
        RegisteredCode("6.1", "Media not supported", "RFC 3463", Reason.CONTENTERROR),
        RegisteredCode("6.2", "Conversion required and prohibited", "RFC 3463", Reason.CONTENTERROR),
        RegisteredCode("6.3", "Conversion required but not supported", "RFC 3463", Reason.CONTENTERROR),
        RegisteredCode("6.4", "Conversion with loss performed", "RFC 3463", Reason.CONTENTERROR),
        RegisteredCode("6.5", "Conversion Failed", "RFC 3463", Reason.CONTENTERROR),
        RegisteredCode("6.6", "Message content not available", "RFC 4468", Reason.CONTENTERROR),
        RegisteredCode("6.7", "Non-ASCII addresses not permitted for that sender/recipient", "RFC 6531", Reason.CONTENTERROR),
        RegisteredCode(
            "6.8", "UTF-8 string reply is required, but not permitted by the SMTP client", "RFC 6531", Reason.CONTENTERROR
        ),
        RegisteredCode(
            "6.9",
            "UTF-8 header message cannot be transferred to one or more recipients, so the message must be rejected",
            "RFC 6531",
            Reason.CONTENTERROR,
        ),
        RegisteredCode("6.10", "Unused; was an ALT-ADDRESS code of the experimental RFC 5336", "RFC 6531", Reason.CONTENTERROR),
        RegisteredCode("7.0", "Other or undefined security status", "RFC 3463", Reason.SECURITYERROR),
        RegisteredCode("7.1", "Delivery not authorized, message refused", "RFC 3463", Reason.REJECTED),
        RegisteredCode("7.2", "Mailing list expansion prohibited", "RFC 3463", Reason.POLICYVIOLATION),
        RegisteredCode("7.3", "Security conversion required but not possible", "RFC 3463", Reason.SECURITYERROR),
        RegisteredCode("7.4", "Security features not supported", "RFC 3463", Reason.SECURITYERROR),
        RegisteredCode("7.5", "Cryptographic failure", "RFC 3463", Reason.SECURITYERROR),
        RegisteredCode("7.6", "Cryptographic algorithm not supported", "RFC 3463", Reason.SECURITYERROR),
        RegisteredCode("7.7", "Message integrity failure", "RFC 3463", Reason.SECURITYERROR),
        RegisteredCode("7.8", "Authentication credentials invalid", "RFC 4954", Reason.SECURITYERROR),
        RegisteredCode("7.9", "Authentication mechanism is too weak", "RFC 4954", Reason.SECURITYERROR),
        RegisteredCode("7.10", "Encryption Needed", "RFC 5248", Reason.SECURITYERROR),
        RegisteredCode("7.11", "Encryption required for requested authentication mechanism", "RFC 4954", Reason.SECURITYERROR),
        RegisteredCode("7.12", "A password transition is needed", "RFC 4954", Reason.SECURITYERROR),
        RegisteredCode("7.13", "User Account Disabled", "RFC 5248", Reason.SUSPEND),
        RegisteredCode("7.14", "Trust relationship required", "RFC 5248", Reason.SECURITYERROR),
        RegisteredCode("7.15", "Priority Level is too low", "RFC 6710", Reason.POLICYVIOLATION),
        RegisteredCode("7.16", "Message is too big for the specified priority", "RFC 6710", Reason.MESGTOOBIG),
        RegisteredCode("7.17", "Mailbox owner has changed", "RFC 7293", Reason.HASMOVED),
        RegisteredCode("7.18", "Domain owner has changed", "RFC 7293", Reason.HASMOVED),
        RegisteredCode("7.19", "RRVS test cannot be completed", "RFC 7293", Reason.SECURITYERROR),
        RegisteredCode("7.20", "No passing DKIM signature found", "RFC 7372", Reason.AUTHFAILURE),
        RegisteredCode("7.21", "No acceptable DKIM signature found", "RFC 7372", Reason.AUTHFAILURE),
        RegisteredCode("7.22", "No valid author-matched DKIM signature found", "RFC 7372", Reason.AUTHFAILURE),
        RegisteredCode("7.23", "SPF validation failed", "RFC 7372", Reason.AUTHFAILURE),
        RegisteredCode("7.24", "SPF validation error", "RFC 7372", Reason.AUTHFAILURE),
        RegisteredCode("7.25", "Reverse DNS validation failed", "RFC 7372", Reason.REQUIREPTR),
        RegisteredCode("7.26", "Multiple authentication checks failed", "RFC 7372", Reason.AUTHFAILURE),
        RegisteredCode("7.27", "Sender address has null MX", "RFC 7505", Reason.REJECTED),
        RegisteredCode("7.28", "Mail flood detected", "IANA registry", Reason.SPEEDING),
        RegisteredCode("7.29", "ARC validation failure", "RFC 8617", Reason.AUTHFAILURE),
        RegisteredCode("7.30", "REQUIRETLS support required", "RFC 8689", Reason.SECURITYERROR),
    )
}

BASIC_CODES: dict[int, tuple[str, Reason]] = {
    211: ("System status or help reply", Reason.UNDEFINED),
    214: ("Help message", Reason.UNDEFINED),
    220: ("Service ready", Reason.UNDEFINED),
    221: ("Service closing transmission channel", Reason.UNDEFINED),
    235: ("Authentication succeeded", Reason.UNDEFINED),
    250: ("Requested mail action okay, completed", Reason.DELIVERED),
    251: ("User not local; will forward", Reason.DELIVERED),
    252: ("Cannot verify the user, but will accept the message and attempt delivery", Reason.DELIVERED),
    334: ("Server challenge during authentication", Reason.UNDEFINED),
    354: ("Start mail input; end with <CRLF>.<CRLF>", Reason.UNDEFINED),
    421: ("Service not available, closing transmission channel", Reason.SYSTEMERROR),
    432: ("A password transition is needed", Reason.SECURITYERROR),
    450: ("Requested mail action not taken: mailbox unavailable (for example busy or blocked for policy)", Reason.ONHOLD),
    451: ("Requested action aborted: local error in processing", Reason.SYSTEMERROR),
    452: ("Requested action not taken: insufficient system storage", Reason.SYSTEMFULL),
    454: ("Temporary authentication failure, or TLS not available", Reason.SECURITYERROR),
    455: ("Server unable to accommodate parameters", Reason.SYNTAXERROR),
    500: ("Syntax error, command unrecognized", Reason.SYNTAXERROR),
    501: ("Syntax error in parameters or arguments", Reason.SYNTAXERROR),
    502: ("Command not implemented", Reason.SYNTAXERROR),
    503: ("Bad sequence of commands", Reason.SYNTAXERROR),
    504: ("Command parameter not implemented", Reason.SYNTAXERROR),
    521: ("Host does not accept mail", Reason.NOTACCEPT),
    523: ("Encryption needed", Reason.SECURITYERROR),
    530: ("Authentication required", Reason.SECURITYERROR),
    534: ("Authentication mechanism is too weak", Reason.SECURITYERROR),
    535: ("Authentication credentials invalid", Reason.SECURITYERROR),
    538: ("Encryption required for requested authentication mechanism", Reason.SECURITYERROR),
    550: ("Requested action not taken: mailbox unavailable (not found, no access, or refused for policy)", Reason.UNDEFINED),
    551: ("User not local; please try another path", Reason.HASMOVED),
    552: ("Requested mail action aborted: exceeded storage allocation", Reason.MAILBOXFULL),
    553: ("Requested action not taken: mailbox name not allowed", Reason.USERUNKNOWN),
    554: ("Transaction failed (or, at connection time, no SMTP service here)", Reason.UNDEFINED),
    555: ("MAIL FROM/RCPT TO parameters not recognized or not implemented", Reason.SYNTAXERROR),
    556: ("Domain does not accept mail", Reason.NOTACCEPT),
}


_FINAL_ONLY: dict[Reason, Reason] = {
    Reason.REJECTED: Reason.ONHOLD,
    Reason.NOTACCEPT: Reason.SYSTEMERROR,
}
"""Reasons that only make sense for a final refusal, and what a temporary reply with the same code means."""


def subject_detail(enhanced_code: str) -> str:
    """``5.7.26`` -> ``7.26``: the part of a code the registry keys on."""
    return enhanced_code.split(".", 1)[1] if "." in enhanced_code else ""


def describe_enhanced(enhanced_code: str) -> str | None:
    """The registry's title for a code (``5.1.1`` -> "Bad destination mailbox address").

    Unregistered details (Microsoft's ``5.7.606``) fall back to their subject's title.
    """
    parts = enhanced_code.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    row = REGISTRY.get(subject_detail(enhanced_code))
    if row is not None:
        return row.title
    subject = SUBJECT_TITLES.get(int(parts[1]))
    return f"{subject} (detail {parts[2]} is not in the IANA registry)" if subject else None


SUBJECT_REASONS: dict[int, Reason] = {
    1: Reason.USERUNKNOWN,
    2: Reason.UNDEFINED,
    3: Reason.SYSTEMERROR,
    4: Reason.NETWORKERROR,
    5: Reason.SYNTAXERROR,
    6: Reason.CONTENTERROR,
    7: Reason.POLICYVIOLATION,
}
"""What an unregistered detail (Exchange's 5.7.901, 5.1.351) most likely means, by its subject."""


def reason_for_codes(basic_code: int | None, enhanced_code: str | None) -> Reason:
    """The reason a reply's codes stand for when nothing in its text says more."""
    if enhanced_code:
        row = REGISTRY.get(subject_detail(enhanced_code))
        if row is not None and not (row.reason is Reason.UNDEFINED and basic_code in BASIC_CODES):
            if enhanced_code.startswith("4.") and row.reason in _FINAL_ONLY:
                return _FINAL_ONLY[row.reason]
            return row.reason
        if row is None:
            subject = enhanced_code.split(".")[1]
            if subject.isdigit() and int(subject) in SUBJECT_REASONS and SUBJECT_REASONS[int(subject)] is not Reason.UNDEFINED:
                return SUBJECT_REASONS[int(subject)]
    if basic_code is not None and basic_code in BASIC_CODES:
        return BASIC_CODES[basic_code][1]
    return Reason.UNDEFINED
