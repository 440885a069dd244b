"""Wording of Microsoft Exchange / Office 365 NDRs, Lotus Notes and Domino, and mail gateways.

These programs print their own sentences instead of (or around) the remote
server's reply: Exchange's "The recipient name is not recognized", Domino's
"not listed in Domino Directory", IMail's "Invalid final delivery userid",
Messaging Server's "Illegal host/domain name found", and so on.
"""

from __future__ import annotations

from coldrelay.errors.reasons import Reason

RULES: tuple[tuple[Reason, str], ...] = (
    # Exchange 5.5-2003, Exchange 2007+, Exchange Online
    (
        Reason.USERUNKNOWN,
        r"the recipient name is not recognized|recipient'?s e-?mail address was not found in the recipient'?s e-?mail system"
        r"|e-?mail address (?:you entered )?(?:wasn\S?t|was not|couldn\S?t be|could not be) found"
        r"|\bresolver\.adr\.(?:recip(?:ient)?notfound|exrecipnotfound)\b|\bunknown to address\b|\bwasn\S?t found at\b",
    ),
    (
        Reason.HOSTUNKNOWN,
        r"recipient'?s destination e-?mail system is unknown or invalid"
        r"|destination server for this recipient could not be found in domain name service",
    ),
    (
        Reason.EXPIRED,
        r"could not deliver the message in the time limit specified|\bqueue\.expired\b"
        r"|has tried to deliver this message, without success, and has stopped trying"
        r"|unable to deliver this message after \d+ (?:days?|hours?)",
    ),
    (Reason.MESGTOOBIG, r"\bresolver\.rst\.recipsizelimit\b|message exceeds the maximum message size allowed"),
    (Reason.MAILBOXFULL, r"\bquotaexceededexception\b|recipient'?s mailbox is full"),
    (
        Reason.NETWORKERROR,
        r"configuration error in the e-?mail system caused the message to bounce between two servers"
        r"|maximum hop count exceeded",
    ),
    (Reason.REJECTED, r"you weren\S?t recognized as a valid sender"),
    (Reason.FILTERED, r"you do not have permission to send to this recipient|\bresolver\.rst\.notauthorized\b"),
    (Reason.SECURITYERROR, r"\bresolver\.rst\.authrequired\b"),
    # Lotus Notes, Domino
    (
        Reason.USERUNKNOWN,
        r"not listed in (?:the )?(?:domino directory|public name (?:&|and) address book)"
        r"|does not specify a valid notes mail file",
    ),
    (Reason.HOSTUNKNOWN, r"no route found to domain \S+ from server"),
    # IMail, Sun/Oracle Messaging Server, fml
    (Reason.USERUNKNOWN, r"invalid final delivery userid"),
    (Reason.HOSTUNKNOWN, r"illegal host/domain name found"),
    (Reason.REJECTED, r"you are not a member of this mailing list"),
)
