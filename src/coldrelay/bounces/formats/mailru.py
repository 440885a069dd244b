"""Mail.Ru (``mailer-daemon@corp.mail.ru``): a Russian preamble, then the Exim report.

    К сожалению, Ваше письмо не может быть доставлено одному или нескольким получателям:
    ...
    A message that you sent could not be delivered to one or more of its
    recipients. This is a permanent error. The following address(es) failed:

      rcpt@example.jp
        SMTP error from remote mail server after RCPT TO:<rcpt@example.jp>:
        host mx.example.jp [192.0.2.222]: 550 5.1.1 <rcpt@example.jp>... User Unknown

The recipients are listed in both parts; the English one is read when present.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "mailru"
PRIORITY = 15
# Skipped by core.py unless a marker occurs: parse() requires a Mail.Ru sender domain.
MARKERS = ("@mail.ru", ".mail.ru", "@inbox.ru", ".inbox.ru", "@list.ru", ".list.ru", "@bk.ru", ".bk.ru")

_SENDER = re.compile(r"^mailer-daemon@(?:[\w-]+\.)*(?:mail|inbox|list|bk)\.ru$", re.IGNORECASE)
_ENGLISH = re.compile(r"The\s+following\s+address(?:es|\(es\))?\s+failed:[ \t]*$", re.IGNORECASE | re.MULTILINE)
_RUSSIAN = re.compile(r"не может быть доставлено[^\n]*:[ \t]*$", re.IGNORECASE | re.MULTILINE)
_PERMANENT = re.compile(r"This is a permanent error", re.IGNORECASE)
_ADDRESS_LINE = re.compile(r"^([ \t]+)<?([^\s<>@]+@[^\s<>]+?)>?[ \t]*$")
_STEP = re.compile(
    r"SMTP error from remote (?:mail server|mailer) after (RCPT TO|MAIL FROM|end of data|DATA|initial connection|HELO|EHLO)"
    r"\b[^\n]*?:[ \t]*(?:\n|$)",
    re.IGNORECASE,
)
_HOST = re.compile(r"^\s*host\s+(\S+)\s+\[[^\]]*\](?::\d+)?:\s*", re.IGNORECASE)
_COMMANDS = {"RCPT TO": "RCPT", "MAIL FROM": "MAIL", "END OF DATA": "DATA", "DATA": "DATA", "INITIAL CONNECTION": "CONNECT"}


def exim_blocks(text: str) -> list[tuple[str, str]]:
    """(address, detail) for each indented address line and the deeper-indented lines under it."""
    blocks: list[tuple[str, str]] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        found = _ADDRESS_LINE.match(lines[index])
        index += 1
        if not found:
            continue
        indent = len(found.group(1).expandtabs())
        detail: list[str] = []
        while index < len(lines):
            line = lines[index]
            if line.strip() and len(line.expandtabs()) - len(line.expandtabs().lstrip()) <= indent:
                break
            if not line.strip() and not (index + 1 < len(lines) and lines[index + 1][: indent + 1].isspace()):
                break
            detail.append(line)
            index += 1
        blocks.append((found.group(2), "\n".join(detail)))
    return blocks


def _finding(address: str, detail: str, permanent: bool) -> Finding:
    command = ""
    step = _STEP.search(detail)
    if step:
        command = _COMMANDS.get(step.group(1).upper(), "")
        detail = detail[step.end() :]
    remote = ""
    host = _HOST.match(detail)
    if host:
        remote = host.group(1).rstrip(".")
        detail = detail[host.end() :]
    diagnostic = " ".join(detail.split())
    code = re.match(r"([245])\d\d\b", diagnostic)
    finding = Finding(
        recipient=clean_address(address),
        action="failed" if permanent else "delayed",
        diagnostic=diagnostic,
        smtp_command=command,
        remote_mta=remote,
    )
    if permanent and code and code.group(1) == "4":
        finding.reason = Reason.EXPIRED  # a final report quoting a temporary reply: retries ran out
    return finding


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _SENDER.match(clean_address(bounce.sender) or ""):
        return None
    body = bounce.body
    marker = _ENGLISH.search(body) or _RUSSIAN.search(body)
    if not marker:
        return None
    permanent = bool(_PERMANENT.search(body)) or not _ENGLISH.search(body)
    findings: list[Finding] = []
    for address, detail in exim_blocks(body[marker.end() :]):
        finding = _finding(address, detail, permanent)
        if finding.recipient and all(f.recipient != finding.recipient for f in findings):
            findings.append(finding)
    return findings or None
