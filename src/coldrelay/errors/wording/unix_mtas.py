"""Wording of the Unix MTAs (Postfix, qmail, OpenSMTPD, Courier, DragonFly dma) the common rules miss.

These programs write their own, fixed sentences when they give up on a
recipient without a remote reply (qmail's ``Sorry, I couldn't find a mail
exchanger or IP address``, OpenSMTPD's ``Envelope expired``, dma's ``Could
not deliver for the last N seconds``); each rule below is one such sentence,
or a short remote phrase these bounces carry that says more than its code.
"""

from __future__ import annotations

from coldrelay.errors.reasons import Reason

RULES: tuple[tuple[Reason, str], ...] = (
    # qmail: DNS answered but gave no usable mail exchanger (null MX, MX without address).
    # OpenSMTPD says the same thing as "No MX found for domain".
    (Reason.NOTACCEPT, r"couldn'?t find a mail exchanger or ip address|\bno mx found for domain\b"),
    # OpenSMTPD and DragonFly dma give up on a message that stayed in the queue too long.
    (Reason.EXPIRED, r"\benvelope expired\b|could not deliver for the last \d+ seconds"),
    # Sender ID: the receiver could not find the Purported Responsible Address (the sender) of the message.
    (Reason.REJECTED, r"can'?t determine purported responsible address"),
    # Postfix: the server turned us away in its greeting ("host X refused to talk to me: 421 Service not available").
    (Reason.BLOCKED, r"\brefused to talk to me: [45]\d\d\b.{0,60}?\bservice (?:not available|unavailable)"),
    # qmail: no host of that name; no SMTP connection could be made.
    (Reason.HOSTUNKNOWN, r"couldn'?t find any host (?:named|by that name)"),
    (Reason.NETWORKERROR, r"wasn'?t able to establish an smtp connection"),
    # A bare "Recipient address rejected." with no explanation: the address itself is refused.
    (Reason.USERUNKNOWN, r"recipient address rejected\.?$"),
    # qmail: its size limit; Postfix local delivery: the mailbox file reached its size limit.
    (Reason.MESGTOOBIG, r"exceeds (?:my|the) databytes limit"),
    (Reason.MAILBOXFULL, r"cannot update mailbox .{1,200}? (?:file too large|disk quota exceeded)"),
    # qmail and Postfix: a delivery or forwarding loop.
    (Reason.SYSTEMERROR, r"\bmessage is looping\b|mail forwarding loop for"),
    # Postfix pipe(8) and the test servers' "Mailer error": a delivery program failed.
    (Reason.MAILERERROR, r"command died with (?:status|signal) \d+|\bmailer error\b"),
    # "On hold": delivery held back for now, neither accepted nor refused for good.
    (Reason.ONHOLD, r"\bon hold\b"),
)
