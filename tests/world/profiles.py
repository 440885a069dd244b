"""How each simulated provider talks: its real reply texts, as the knowledge base records them.

The wording is the point: coldrelay's delivery log explains every reply with
``coldrelay.errors.explain``, so a world that answered with made-up text would test nothing. Every
template below is an example from ``src/coldrelay/errors/entries`` (slug in the comment) with the
variable parts (addresses, IPs, Google's per-reply token) filled in; ``tests/test_world_receivers.py``
checks that explain() still names the intended provider and reason for each.

Templates are ``str.format`` strings over: ``rcpt`` (the recipient), ``domain`` (its domain),
``sender_domain`` (the MAIL FROM domain), ``from_domain`` (the From header's domain), ``ip`` (the client's address),
``mx`` (the MX host name),
``token`` (a per-reply id, deterministic) and ``message_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GENERIC", "GOOGLE", "MICROSOFT", "PROFILES", "YAHOO", "Profile", "profile_named"]


@dataclass(frozen=True, slots=True)
class Profile:
    """One provider's behaviour: reply templates plus the few policy switches that differ between them."""

    name: str
    """``google``, ``microsoft``, ``yahoo`` or ``generic`` (a plain Postfix)."""
    accepted: str
    user_unknown: str
    greylisted: str
    rate_limited: str
    unauthenticated: str
    """Neither SPF nor DKIM passed."""
    dmarc_rejected: str
    """SPF or DKIM passed but not aligned with From, and the From domain asks for reject/quarantine."""
    starttls_required: str
    require_tls: bool
    """Refuse MAIL FROM before STARTTLS (with ``starttls_required``) unless the receiver overrides it."""
    unknown_status: str = "5.1.1"
    """RFC 3464 Status of an asynchronous bounce for an unknown user (the reply may lack an enhanced code)."""

    def closes_after(self, line: str) -> bool:
        """421 means "closing the channel" (RFC 5321 3.8): the receiver hangs up after sending it."""
        return line.startswith("421")


GOOGLE = Profile(
    name="google",
    accepted="250 2.0.0 OK {token} - gsmtp",
    # google-550-5-1-1-account-does-not-exist
    user_unknown=(
        "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's "
        "email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser "
        "{token} - gsmtp"
    ),
    # google-451-4-3-0-temporarily-rejected
    greylisted="451 4.3.0 Mail server temporarily rejected message. {token} - gsmtp",
    # google-421-4-7-28-unusual-rate-ip
    rate_limited=(
        "421 4.7.28 [{ip} 4] Our system has detected an unusual rate of unsolicited mail originating from your IP "
        "address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. "
        "Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders "
        "Guidelines. {token} - gsmtp"
    ),
    # google-550-5-7-26-unauthenticated-sender
    unauthenticated=(
        "550 5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users, and has "
        "been blocked. The sender must authenticate with at least one of SPF or DKIM. For this message, DKIM checks "
        "did not pass and SPF check for [{sender_domain}] did not pass with ip: [{ip}]. "
        "https://support.google.com/mail/answer/81126#authentication {token} - gsmtp"
    ),
    # google-550-5-7-26-dmarc-policy
    dmarc_rejected=(
        "550 5.7.26 Unauthenticated email from {from_domain} is not accepted due to domain's DMARC policy. Please "
        "contact the administrator of {from_domain} domain if this was a legitimate mail. To learn about the DMARC "
        "initiative, go to https://support.google.com/mail/?p=DmarcRejection {token} - gsmtp"
    ),
    # google-530-5-7-0-must-issue-starttls
    starttls_required="530 5.7.0 Must issue a STARTTLS command first. {token} - gsmtp",
    require_tls=True,
)

MICROSOFT = Profile(
    name="microsoft",
    # Exchange Online's real acceptance line (see the report: explain() reads its 2.6.0 as a content error).
    accepted="250 2.6.0 {message_id} [InternalId={token}, Hostname={mx}] Queued mail for delivery",
    # microsoft-550-5-1-10-recipient-not-found
    user_unknown="550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient {rcpt} not found by SMTP address lookup",
    # microsoft-451-4-7-500-access-denied-try-later (what EOP answers a sender it has not seen before)
    greylisted="451 4.7.500 Server busy. Please try again later from [{ip}]. (S77719)",
    # outlook-451-4-7-650-ip-reputation-rate-limited
    rate_limited=(
        "451 4.7.650 The mail server [{ip}] has been temporarily rate limited due to IP reputation. For e-mail "
        "delivery information, see https://aka.ms/postmaster (S775)"
    ),
    # outlook-550-5-7-515-authentication-level
    unauthenticated="550 5.7.515 Access denied, sending domain {sender_domain} does not meet the required authentication level.",
    # microsoft-550-5-7-509-dmarc-reject
    dmarc_rejected=(
        "550 5.7.509 Access denied, sending domain {from_domain} does not pass DMARC verification and has a DMARC "
        "policy of reject."
    ),
    starttls_required="530 5.7.0 Must issue a STARTTLS command first",
    require_tls=False,
)

YAHOO = Profile(
    name="yahoo",
    accepted="250 ok dirdel",
    # yahoo-554-dd-user-doesnt-have-account
    user_unknown="554 delivery error: dd This user doesn't have a {domain} account ({rcpt}) [-5] - {mx}",
    # yahoo-450-user-receiving-mail-too-quickly
    greylisted="450 User is receiving mail too quickly",
    # yahoo-421-4-7-0-tss04-temporarily-deferred
    rate_limited=(
        "421 4.7.0 [TSS04] Messages from {ip} temporarily deferred due to unexpected volume or user complaints - "
        "4.16.55.1; see https://postmaster.yahooinc.com/error-codes"
    ),
    # yahoo-550-5-7-9-sender-unauthenticated
    unauthenticated=(
        "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to "
        "authenticate with either SPF or DKIM."
    ),
    # yahoo-554-5-7-9-not-accepted-policy-dmarc
    dmarc_rejected="554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
    starttls_required="530 5.7.0 Must issue a STARTTLS command first",
    require_tls=False,
)

GENERIC = Profile(
    name="generic",
    accepted="250 2.0.0 Ok: queued as {token}",
    # postfix-550-5-1-1-user-unknown-in-recipient-table
    user_unknown="550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
    # postfix-450-4-2-0-greylisted-postgrey
    greylisted="450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, see https://postgrey.schweikert.ch/help/{domain}.html",
    # Postfix's smtpd_client_message_rate_limit reply (generic-450 by its codes)
    rate_limited="450 4.7.1 Error: too much mail from {ip}",
    # generic-550-5-7-26
    unauthenticated="550 5.7.26 Multiple authentication checks failed",
    # generic-550-5-7-26 (OpenDMARC-style wording)
    dmarc_rejected="550 5.7.1 Message rejected per DMARC policy for {from_domain}",
    # generic-530-5-7-0 (Postfix with smtpd_tls_security_level = encrypt)
    starttls_required="530 5.7.0 Must issue a STARTTLS command first",
    require_tls=False,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (GOOGLE, MICROSOFT, YAHOO, GENERIC)}


def profile_named(name: str) -> Profile:
    """The profile called ``name``; a clear error listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown provider profile {name!r}: use one of {', '.join(sorted(PROFILES))}") from None
