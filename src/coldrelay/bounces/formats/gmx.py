"""GMX, mail.com and WEB.DE (United Internet): "Mail delivery failed: returning message to sender".

    A message that you sent could not be delivered to one or more of
    its recipients. This is a permanent error. The following address
    failed:

    "rcpt@example.jp":
    SMTP error from remote server after RCPT command:
    host: mx.example.jp
    5.2.2 <rcpt@example.jp>... Mailbox Full

    --- The header of the original message is following. ---

1&1 (``einsundeins``) runs the same software and sometimes writes the
address alone, then "For the following reason:" and the text; both shapes
are read here.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in, clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "gmx"
PRIORITY = 15
# Skipped by core.py unless a marker occurs: parse() requires a GMX/mail.com/WEB.DE sender or the X-GMX-Antispam header.
MARKERS = ("@gmx.", ".gmx.", "@mail.com", ".mail.com", "@web.de", ".web.de", "x-gmx-antispam")

_SENDER = re.compile(r"@(?:[\w-]+\.)*(?:gmx\.[a-z.]+|mail\.com|web\.de)$", re.IGNORECASE)
_FAILED = re.compile(r"The\s+following\s+address(?:es|\(es\))?\s+failed:[ \t]*$", re.IGNORECASE | re.MULTILINE)
_TEMPORARY = re.compile(r"this is a temporary error|has not yet been delivered", re.IGNORECASE)
_REASON = re.compile(r"^[ \t]*For the following reasons?:[ \t]*$", re.IGNORECASE | re.MULTILINE)
_ADDRESS_LINE = re.compile(r'^[ \t]*"?<?([^\s"<>]+@[^\s"<>]+?)>?"?:?[ \t]*$', re.MULTILINE)
_STEP = re.compile(
    r"SMTP error from remote (?:mail )?server (?:after|for|in reply to) (RCPT TO|RCPT|MAIL FROM|MAIL|end of data|DATA)"
    r"(?::<[^>\n]*>)?(?: command)?[:,]?",
    re.IGNORECASE,
)
_HOST = re.compile(
    r"(?:^|,)[ \t]*host:?[ \t]+([A-Za-z0-9][\w.-]*)(?:[ \t]*[\[(][^\])\n]*[\])])?:?[ \t]*", re.IGNORECASE | re.MULTILINE
)
_REASON_LABEL = re.compile(r"^\s*reason:\s*", re.IGNORECASE)
_EXPLANATION = re.compile(r"\s*For explanation visit\s+\S+", re.IGNORECASE)
_COMMANDS = {"RCPT": "RCPT", "RCPT TO": "RCPT", "MAIL": "MAIL", "MAIL FROM": "MAIL", "DATA": "DATA", "END OF DATA": "DATA"}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _block(address: str, text: str, action: str) -> Finding:
    command = ""
    step = _STEP.search(text)
    if step:
        command = _COMMANDS.get(_flat(step.group(1)).upper(), "")
        text = text[: step.start()] + text[step.end() :]
    remote = ""
    host = _HOST.search(text)
    if host:
        remote = host.group(1).rstrip(".:")
        text = text[: host.start()] + text[host.end() :]
    diagnostic = _REASON_LABEL.sub("", _flat(_EXPLANATION.sub("", text)))
    return Finding(recipient=address, action=action, diagnostic=diagnostic, smtp_command=command, remote_mta=remote)


def parse_united_internet(bounce: Bounce) -> list[Finding] | None:
    """Findings of a United Internet notice (GMX, WEB.DE, mail.com, 1&1), None when it is not one."""
    marker = _FAILED.search(bounce.body)
    if not marker:
        return None
    rest = bounce.body[marker.end() :]
    action = "delayed" if _TEMPORARY.search(bounce.body[: marker.start()]) else "failed"
    reason = _REASON.search(rest)
    if reason:
        text = rest[reason.end() :]
        return [_block(a, text, action) for a in addresses_in(rest[: reason.start()])] or None
    lines = list(_ADDRESS_LINE.finditer(rest))
    findings = []
    for index, line in enumerate(lines):
        end = lines[index + 1].start() if index + 1 < len(lines) else len(rest)
        findings.append(_block(clean_address(line.group(1)), rest[line.end() : end], action))
    return [f for f in findings if f.recipient] or None


def parse(bounce: Bounce) -> list[Finding] | None:
    if not (_SENDER.search(clean_address(bounce.sender) or "") or bounce.header("X-GMX-Antispam")):
        return None
    return parse_united_internet(bounce)
