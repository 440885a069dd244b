"""au by KDDI / EZweb (``Postmaster@ezweb.ne.jp``): "Mail System Error - Returned Mail".

A Japanese preamble (ISO-2022-JP, sometimes really EUC-JP) and the same
reason in English, in one of three shapes:

    <rcpt@ezweb.ne.jp>
    Each of the following recipients was rejected by a remote mail server.

    The user(s) account is disabled.
    <rcpt@ezweb.ne.jp>

    Each of the following recipients was rejected by a remote mail server.
        Recipient: <rcpt@example.com>
        >>> MAIL FROM:<sender@example.org>
        <<< 550 ...

The remote reply (``<<<``) is the diagnostic when there is one, else EZweb's
English sentences.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "ezweb"
PRIORITY = 20
# Skipped by core.py unless a marker occurs: parse() requires an ezweb.ne.jp or au.com sender.
MARKERS = ("ezweb.ne.jp", "@au.com", ".au.com")

_SENDER = re.compile(r"^(?:postmaster|mailer-daemon)@(?:[\w-]+\.)*(?:ezweb\.ne\.jp|au\.com)$", re.IGNORECASE)
_CUT = re.compile(r"^-{20,}[ \t]*$", re.MULTILINE)
_RECIPIENT = re.compile(r"^[ \t]*Recipient:[ \t]*<?([^\s<>]+@[^\s<>]+?)>?[ \t]*$", re.IGNORECASE | re.MULTILINE)
_BRACKETED = re.compile(r"^[ \t]*<([^\s<>]+@[^\s<>]+)>[ \t]*$", re.MULTILINE)
_SENT = re.compile(r"^[ \t]*>>>[ \t]*(.+)$", re.MULTILINE)
_REPLY = re.compile(r"^[ \t]*<<<[ \t]*(.+(?:\n(?![ \t]*(?:<<<|>>>|Recipient:))[ \t]+\S.*)*)", re.IGNORECASE | re.MULTILINE)
_BOILERPLATE = re.compile(
    r"^(?:The following recipients did not receive this message:?|This message is in MIME format.*)$", re.IGNORECASE
)
_COMMANDS = {"RCPT": "RCPT", "MAIL": "MAIL", "DATA": "DATA", "HELO": "HELO", "EHLO": "EHLO"}


def _english(text: str) -> str:
    """EZweb's own English sentences: ASCII lines that are neither addresses nor boilerplate."""
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or not line.isascii() or _BRACKETED.match(line) or _BOILERPLATE.match(line):
            continue
        lines.append(line)
    return " ".join(" ".join(lines).split())


def _block_finding(address: str, block: str) -> Finding:
    command = ""
    sent = _SENT.findall(block)
    if sent:
        verb = sent[-1].split(":")[0].split()[0].upper() if sent[-1].split() else ""
        command = _COMMANDS.get(verb, "")
    replies = [" ".join(r.split()) for r in _REPLY.findall(block)]
    return Finding(recipient=address, action="failed", diagnostic=" ".join(replies), smtp_command=command)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _SENDER.match(clean_address(bounce.sender) or ""):
        return None
    body = bounce.body
    cut = _CUT.search(body)
    if cut:
        body = body[: cut.start()]
    listed = list(_RECIPIENT.finditer(body))
    if listed:
        findings = []
        for index, found in enumerate(listed):
            end = listed[index + 1].start() if index + 1 < len(listed) else len(body)
            finding = _block_finding(clean_address(found.group(1)), body[found.end() : end])
            finding.diagnostic = finding.diagnostic or _english(body[: listed[0].start()])
            findings.append(finding)
        return findings
    own = clean_address(bounce.header("To"))
    recipients = [clean_address(a) for a in _BRACKETED.findall(body)]
    recipients = list(dict.fromkeys(a for a in recipients if a and a != own))
    diagnostic = _english(body)
    return [Finding(recipient=address, action="failed", diagnostic=diagnostic) for address in recipients] or None
