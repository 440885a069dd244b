"""Turn what a format module found into a ``BounceRecord``, through ``coldrelay.errors``.

The reason always comes from the same diagnoser the web page and the delivery
engine use, so a bounce and a pasted reply can never disagree. The one addition
here is context a reply line lacks: at which SMTP step the refusal came, what
the DSN's status says, and whether the whole report is a feedback report.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce, header_in
from coldrelay.bounces.record import BounceRecord, Finding
from coldrelay.errors import Reason, explain, is_hard_bounce, parse_reply, reason_for_codes
from coldrelay.errors.phrases import reason_from_wording
from coldrelay.errors.providers import provider_from_host

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?![\d.])")
_COMMANDS = re.compile(r"\b(EHLO|HELO|MAIL FROM|RCPT TO|DATA|end of DATA|STARTTLS|AUTH|CONNECT)\b(?!=)", re.IGNORECASE)
_POLICY_CODE = re.compile(r"\b[45]\.7\.\d{1,3}\b")
_COMMAND_IN_BODY = re.compile(
    r"in reply to (end of DATA|DATA|RCPT TO|MAIL FROM|HELO|EHLO)\s+command"
    r"|SMTP error from remote (?:mail server|mailer) after (end of data|RCPT TO|MAIL FROM|DATA|HELO|EHLO|initial connection)"
    r"|most progress was (RCPT TO|MAIL FROM|DATA) response"
    r"|(?:after|while sending) (end of data|RCPT TO|MAIL FROM|DATA)\b",
    re.IGNORECASE | re.MULTILINE,
)
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
_CANONICAL_COMMAND = {"END OF DATA": "DATA", "MAIL FROM": "MAIL", "RCPT TO": "RCPT", "INITIAL CONNECTION": "CONNECT"}
_SENDER_STAGE_REASONS = frozenset(
    {Reason.USERUNKNOWN, Reason.UNDEFINED, Reason.HOSTUNKNOWN, Reason.FILTERED, Reason.ONHOLD, Reason.POLICYVIOLATION}
)
"""Refused at MAIL FROM with one of these, the sender was refused, whatever the words say about mailboxes."""


def _status_of(finding: Finding, diagnostic: str) -> str:
    for source in (finding.status, diagnostic):
        found = _STATUS.search(source or "")
        if found:
            return ".".join(found.groups())
    return ""


def _command_of(finding: Finding, diagnostic: str, bounce: Bounce) -> str:
    """The SMTP step the refusal came at: from the layout, the diagnostic, or the notice's wording."""
    if finding.smtp_command:
        command = finding.smtp_command.upper()
        return _CANONICAL_COMMAND.get(command, command)
    found = _COMMANDS.search(diagnostic)
    if found:
        command = found.group(1).upper()
        return _CANONICAL_COMMAND.get(command, command)
    recipient = clean_address(finding.recipient)
    for paragraph in _PARAGRAPHS.split(bounce.body):
        if recipient and recipient in paragraph.lower():
            # Only the notice's words about this recipient: another recipient's step is not ours.
            found_step = _COMMAND_IN_BODY.search(paragraph)
            if found_step:
                command = next(group for group in found_step.groups() if group).upper()
                return _CANONICAL_COMMAND.get(command, command)
    return ""


def _in_context(reason: Reason, command: str, action: str, *, provider_article: bool, permanent: bool, diagnostic: str) -> Reason:
    """What the words mean once we know the SMTP step and whether the sender gave up.

    A reply line alone cannot say these things; the bounce around it can:
    refused after DATA, an "unknown user" is a content filter's verdict; refused
    at MAIL FROM, it is the sender that was turned away; a temporary failure in a
    final report, or any delay notice, means the queue ran out of patience.
    """
    if action == "delayed" and reason not in (Reason.MAILBOXFULL, Reason.NOTACCEPT, Reason.REQUIREPTR):
        return Reason.EXPIRED
    if command in ("CONNECT", "HELO", "EHLO") and reason is Reason.UNDEFINED and permanent:
        return Reason.BLOCKED  # turned away before any mail was offered: the client itself was refused
    if reason is Reason.USERUNKNOWN and _POLICY_CODE.search(diagnostic) and not provider_article:
        return Reason.FILTERED  # "user unknown" under a security/policy code: a filter speaking, not the mailbox
    if command == "DATA" and reason is Reason.USERUNKNOWN and not provider_article:
        # (A provider's own article already knows at which step that provider says it.)
        return Reason.FILTERED
    if command == "MAIL" and reason in _SENDER_STAGE_REASONS:
        return Reason.REJECTED
    return reason


def classify(finding: Finding, bounce: Bounce, mta: str) -> BounceRecord:
    """Decide the reason, permanence and hard/soft of one finding, and fill the record."""
    diagnostic = " ".join(finding.diagnostic.split())
    status = _status_of(finding, diagnostic)
    replycode = finding.replycode or ""
    parsed = parse_reply(diagnostic) if diagnostic else None
    if not replycode and parsed is not None and parsed.basic_code:
        replycode = str(parsed.basic_code)
    command = _command_of(finding, diagnostic, bounce)
    text = diagnostic
    if parsed is not None and parsed.basic_code is None and parsed.enhanced_code is None:
        text = " ".join(part for part in (replycode, status, diagnostic) if part)
    remote = finding.remote_mta or None
    diagnosis = explain(text, remote_host=remote) if text else None
    if finding.reason is not None:
        reason = finding.reason
    elif diagnosis is not None and (diagnosis.matched_by != "none" or reason_from_wording(diagnosis.text) is not None):
        reason = diagnosis.reason  # an article or a wording rule read the text: it says more than a DSN status
    elif status:
        reason = reason_for_codes(int(replycode) if replycode.isdigit() else None, status)
    elif diagnosis is not None:
        reason = diagnosis.reason
    else:
        reason = Reason.UNDEFINED
    action = finding.action.lower()
    status_class = status[:1] or replycode[:1]
    if status_class in ("4", "5"):
        permanent = status_class == "5"
    elif action in ("delayed", "delivered", "relayed", "expanded"):
        permanent = False
    elif action == "failed":
        permanent = True  # the reporter gave up on this recipient, whatever the wording
    else:
        permanent = diagnosis.permanent if diagnosis is not None else finding.action.lower() == "failed"
    provider_article = (
        diagnosis is not None
        and diagnosis.matched_by == "pattern"
        and diagnosis.entry is not None
        and diagnosis.entry.provider is not None
    )
    if finding.reason is None:
        reason = _in_context(
            reason, command, action, provider_article=provider_article, permanent=permanent, diagnostic=diagnostic
        )
    if reason is Reason.UNDEFINED and diagnostic and not status:
        reason = Reason.ONHOLD  # words we cannot read and no status: undecided, not "nothing said"
    addresser = clean_address(header_in(bounce.original, "From")) or clean_address(bounce.header("X-Original-Sender"))
    provider = (diagnosis.provider if diagnosis is not None else None) or provider_from_host(remote)
    return BounceRecord(
        recipient=clean_address(finding.recipient),
        addresser=addresser,
        action=action,
        status=status,
        replycode=replycode,
        diagnostic=diagnostic,
        remote_mta=finding.remote_mta,
        reporting_mta=finding.reporting_mta,
        smtp_command=command,
        mta=mta,
        provider=provider,
        reason=reason,
        permanent=permanent,
        hard_bounce=is_hard_bounce(reason, permanent),
        feedback_type=finding.feedback_type,
        timestamp=finding.timestamp or bounce.header("Date"),
        message_id=header_in(bounce.original, "Message-ID").strip("<> "),
        subject=header_in(bounce.original, "Subject"),
        article=diagnosis.entry.slug if diagnosis is not None and diagnosis.entry is not None else None,
    )
