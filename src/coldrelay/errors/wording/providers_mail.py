"""Phrases the big mailbox providers' own bounce notices print.

Gmail and Google Workspace, Yahoo, Verizon, Zoho, GMX and 1&1, Mail.ru,
Yandex and the Japanese carriers (au/EZweb, KDDI, BIGLOBE) state the reason in
fixed sentences of their own rather than in an SMTP reply; these rules read them.
"""

from __future__ import annotations

from coldrelay.errors.reasons import Reason

RULES: tuple[tuple[Reason, str], ...] = (
    # Gmail: the remote host never answered; Google says so only once it has retried for days.
    (Reason.EXPIRED, r"did not accept our requests to connect"),
    # Google: "DNS Error: 123 DNS type 'mx' lookup of example.com responded with code SERVFAIL" (a lookup
    # that failed, not an answer); NXDOMAIN is an answer: the domain does not exist (the common rules say so).
    (Reason.NETWORKERROR, r"dns type '\w+' lookup of \S+ (?:responded with code (?!NXDOMAIN|NOERROR)|had no relevant answers)"),
    # Gmail: the 'Send mail as' account's server refused the sender.
    (Reason.REJECTED, r"using the 'send mail as' feature|'send mail as' account"),
    # Yahoo.
    (Reason.EXPIRED, r"unable to deliver (?:the )?message after multiple retries"),
    (Reason.NOTACCEPT, r"no mx record found for domain="),
    # Verizon MMS gateway.
    (Reason.USERUNKNOWN, r"no valid recipients for this mm\b"),
    # au / EZweb.
    (Reason.EXPIRED, r"not delivered within \d+ days? and \d+ hours?"),
    (Reason.FILTERED, r"^each of the following recipients was rejected by a remote mail server\.?$"),
    # BIGLOBE.
    (Reason.MAILBOXFULL, r"number of messages in recipient'?s mailbox exceeded"),
)
