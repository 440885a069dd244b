"""Microsoft Exchange 5.5 to 2003 (Internet Mail Service, Exchange SMTP): plain-text NDRs.

The report repeats the message's To/Subject/Sent, then "did not reach the
following recipient(s):" (or "The following recipient(s) could not be
reached:"), then per recipient a line ``address on <date>`` with the reason
indented below it. Exchange 5.5 adds ``MSEXCH:IMS:...`` codes and the MTS-ID;
2000/2003 add ``<host #5.1.1>`` or ``<host #5.0.0 smtp;550 ...>``.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "exchange2003"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: every _INTRO alternative, which parse() requires, contains this.
MARKERS = ("the following recipient(s)",)

_HEADER_CLUES = re.compile(r"Internet Mail Service|Microsoft Exchange Server 200[03]|MSEXCH", re.IGNORECASE)
_INTRO = re.compile(
    r"^\s*(?:did not reach the following recipient\(s\)|The following recipient\(s\) (?:could|cannot) not be reached"
    r"|The following recipient\(s\) cannot be reached)\s*:?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_RECIPIENT_LINE = re.compile(rf"^(\s*)<?({ADDRESS.pattern})>?(?:\s+on\s+\S.*|\s+\(.*\))?\s*$")
_MTS_ID = re.compile(r"The MTS-ID of the original message is:\s*\S*(?:\s*;\S*)*", re.IGNORECASE)
_MSEXCH = re.compile(r"MSEXCH:\S+\s+\d+\s+\(([0-9A-Fa-f]{8})\)")
_HOST_CODE = re.compile(r"<\s*([^\s<>#]+)\s+#\s*([245]\.\d{1,3}\.\d{1,3})(?:\s+(?:smtp;\s*)?([^<>]*?))?\s*>", re.IGNORECASE)
_ORIGINAL = re.compile(r"^\s*(?:Received|Return-Path|Message-ID|From|Date|X-[\w-]+):\s", re.IGNORECASE | re.MULTILINE)


def _is_exchange2003(bounce: Bounce) -> bool:
    clues = " ".join([bounce.header("X-Mailer"), *(str(v) for v in bounce.message.get_all("Received") or [])])
    if bounce.message.get("X-MS-Embedded-Report") is not None or _HEADER_CLUES.search(clues):
        return bool(_INTRO.search(bounce.body) or _MSEXCH.search(bounce.body))
    return bool(_INTRO.search(bounce.body))


def _finding(address: str, lines: list[str]) -> Finding:
    text = " ".join(" ".join(lines).split())
    text = _MTS_ID.sub(" ", text)
    text = _MSEXCH.sub(" ", text)
    finding = Finding(recipient=address, action="failed")
    coded = _HOST_CODE.search(text)
    if coded:
        finding.reporting_mta = coded.group(1)
        finding.status = coded.group(2)
        reply = (coded.group(3) or "").strip()
        text = reply or (text[: coded.start()] + text[coded.end() :])
    finding.diagnostic = " ".join(text.split())
    return finding


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_exchange2003(bounce):
        return None
    intro = _INTRO.search(bounce.body)
    if intro is None:
        return None
    section = bounce.body[intro.end() :]
    findings: list[Finding] = []
    address = ""
    lines: list[str] = []
    for line in section.split("\n"):
        found = _RECIPIENT_LINE.match(line)
        if found:
            if address:
                findings.append(_finding(address, lines))
            address, lines = found.group(2), []
            continue
        if not address:
            continue
        if _ORIGINAL.match(line):
            break
        if line.strip():
            lines.append(line)
        elif lines:
            findings.append(_finding(address, lines))
            address, lines = "", []
    if address:
        findings.append(_finding(address, lines))
    return findings or None
