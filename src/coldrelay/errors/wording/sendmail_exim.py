"""Wording of Sendmail, Exim, and the small MTAs whose notices look like theirs.

Sendmail prints its own verdicts after the remote reply (``Host unknown``,
``Deferred: Name server: host.: host name lookup failure``); Exim prints fixed
sentences when it gives up without a reply (``retry time not reached for any
host after a long failure period``) and names a failed program delivery
``pipe to |command``. The remaining rules are short remote phrases seen in
these notices that say more than their codes.
"""

from __future__ import annotations

from coldrelay.errors.reasons import Reason

RULES: tuple[tuple[Reason, str], ...] = (
    # Sendmail: the name server answered "try again" (a lookup that failed, not a missing domain).
    (Reason.NETWORKERROR, r"\bhost name lookup failure\b"),
    # Sendmail: "550 5.1.2 <a@b>... Host unknown (Name server: b: host not found)".
    (Reason.HOSTUNKNOWN, r"\bhost unknown\b"),
    # A domain named in the reply does not exist: "553 neko.example.com does not exist".
    (Reason.HOSTUNKNOWN, r"(?<![@\w.-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\.? (?:does not|doesn'?t) exist\b"),
    # Sendmail: the queue lifetime ran out ("Message could not be delivered for 8 hours").
    (Reason.EXPIRED, r"^message could not be delivered for \d+ (?:hours?|minutes?|days?)"),
    # Exim: retries stopped because every host kept failing.
    (
        Reason.EXPIRED,
        r"retry time not reached for any host after a long failure period"
        r"|all hosts for '[^']*' have been failing for a long time",
    ),
    # Exim: a delivery to a program failed ("pipe to |/usr/bin/procmail", "Child process of ... transport returned").
    (Reason.MAILERERROR, r"^pipe to \||\bchild process of \S+ transport returned\b"),
    # The receiving host refuses mail sent straight from a consumer connection.
    (Reason.BLOCKED, r"please use the smtp server of your isp"),
    # The connecting IP is named as blocked: "550-192.0.2.1 blocked by ...", "Blocked for abuse".
    (Reason.BLOCKED, r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}\]? (?:is |has been )?blocked\b|\bblocked for abuse\b"),
    # cPanel Exim's ACL: the sender (or recipient) address is on the host's own blacklist.
    (Reason.REJECTED, r"sending to/from an address that has been blacklisted"),
    # The From: header's domain was refused ("From: Domain is invalid. Please provide a valid From:").
    (Reason.REJECTED, r"\bfrom:? domain is invalid\b|please provide a valid from\b"),
    # The sending IP could not be verified against the sender's domain.
    (Reason.REQUIREPTR, r"\bunverif(?:y|i)able sending ips?\b"),
    # Old Yahoo!-style MTA: the address has no account on that domain.
    (Reason.FILTERED, r"this user doesn'?t have an? \S+ account"),
    # qmail-style local delivery: "the user's mailfolder is full".
    (Reason.MAILBOXFULL, r"\bmail ?folder is full\b"),
)
