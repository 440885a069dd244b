"""Wording of mail services and receiving hosts the common rules miss.

Orange/Wanadoo (France PTT) print ``OFR_nnn`` codes after a French and an
English sentence; Mimecast and Tencent QQ print short fixed phrases; Sendmail
names a failed program delivery by its ``"|command"`` address.
"""

from __future__ import annotations

from coldrelay.errors.reasons import Reason

RULES: tuple[tuple[Reason, str], ...] = (
    # Orange: 506 is "mail rejected" by its content filter, 999 the connecting IP refused for a while.
    (Reason.SPAMDETECTED, r"\bmail rejected\. OFR_506\b|\bOFR_506 \[506\]"),
    (Reason.BLOCKED, r"\bservice refused, please try later\. OFR_999\b|\bOFR_999 \[999\]"),
    # Mimecast: "554 Host network not allowed" (the sending network is refused by the customer's policy).
    (Reason.POLICYVIOLATION, r"\bhost network not allowed\b"),
    # Tencent QQ: "550 Ip frequency limited": too many connections from the sending IP.
    (Reason.TOOMANYCONN, r"\bip frequency limited\b"),
    # Sendmail: a delivery to a program ("|procmail ...") failed; the local mailer, not the address.
    (Reason.MAILERERROR, r"\"\|[^\"]+\"\.\.\. "),
)
