"""Any bounce no other module claims: read the text the way a person would.

Unknown and home-grown MTAs still write "address: why" somewhere in the body.
This reader takes the paragraph around each address that is neither the
bounce's sender nor the original author, and lets ``coldrelay.errors`` read
the reason from it.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in, clean_address
from coldrelay.bounces.message import Bounce, header_in
from coldrelay.bounces.record import Finding

NAME = "fallback"
PRIORITY = 90

_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (?:status|failure|failed|notification|problem)|failure notice|mail delivery|"
    r"non[- ]?delivery|could not be delivered|rejected|bounce|nicht zustellbar|unzustellbar|error|warning",
    re.IGNORECASE,
)
_SYSTEM_LOCAL = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon|double-bounce)@", re.I)
_PARAGRAPHS = re.compile(r"\n\s*\n")
_REPLY_SUBJECT = re.compile(r"\s*(?:re|fwd?|aw|wg|sv|tr|antw)\s*:", re.IGNORECASE)
"""A person replying or forwarding ("Re: rejected proposal"): the subject words are theirs, not a mail system's."""


_DELIVERY_EVIDENCE = re.compile(
    r"(?<![\d.])[45]\d\d[ -]|(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])|undeliver|not (?:be )?delivered|delivery (?:to|has)"
    r"|could not deliver|unable to deliver|permanent(?:ly)? (?:error|fail)|user unknown|unknown user|no such user"
    r"|mailbox|recipient|address(?:ee)? (?:rejected|unknown)|rejected|returned|failed|giving up|nicht zustellbar"
    r"|配信|送信に失敗|не может быть доставлено",
    re.IGNORECASE,
)
"""Words and codes every real failure notice carries somewhere; a newsletter with 'Warning' in its subject does not."""


def _is_bounce(bounce: Bounce) -> bool:
    """A notice from a mail system, or about a delivery, that also talks about delivering mail."""
    sender = clean_address(bounce.sender)
    subject_says_so = bool(_BOUNCE_SUBJECT.search(bounce.subject)) and not _REPLY_SUBJECT.match(bounce.subject)
    looks_like_one = subject_says_so or bool(_SYSTEM_LOCAL.match(sender or ""))
    return looks_like_one and bool(_DELIVERY_EVIDENCE.search(bounce.body))


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_bounce(bounce):
        return None
    ignore = {clean_address(bounce.sender), clean_address(header_in(bounce.original, "From")), clean_address(bounce.header("To"))}
    paragraphs = [p for p in _PARAGRAPHS.split(bounce.body) if p.strip()]
    findings: list[Finding] = []
    seen: set[str] = set()
    for index, paragraph in enumerate(paragraphs):
        for address in addresses_in(paragraph):
            if address in ignore or address in seen or _SYSTEM_LOCAL.match(address):
                continue
            seen.add(address)
            text = paragraph
            if len(" ".join(paragraph.split())) <= len(address) + 4 and index + 1 < len(paragraphs):
                text = f"{paragraph}\n{paragraphs[index + 1]}"  # "address:" alone, the reason below it
            findings.append(Finding(recipient=address, diagnostic=text))
    if not findings:
        recipient = clean_address(header_in(bounce.original, "To"))
        if recipient:
            findings.append(Finding(recipient=recipient, diagnostic=bounce.body[-2000:]))
    return findings or None
