"""Sun Java System / Oracle Communications Messaging Server (and PMDF before it).

"This report relates to a message you sent with the following header fields:"
opens the notice; then, per recipient, an indented block of
``Recipient address:``, ``Original address:``, ``Reason:``,
``Diagnostic code:`` and ``Remote system:`` lines. The sentence before the
blocks says whether delivery failed, is delayed or succeeded.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.dsn import untyped
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "messagingserver"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires the opening sentence.
MARKERS = ("message you sent with the following header fields",)

_INTRO = re.compile(r"This report relates to (?:a|your) message you sent with the following header fields", re.IGNORECASE)
_FIELD = re.compile(r"^\s*(Recipient address|Original address|Reason|Diagnostic code|Remote system)\s*:\s*(.*)$", re.IGNORECASE)
_DELAYED = re.compile(r"has been enqueued and undeliverable|delivery (?:has been|is) delayed", re.IGNORECASE)
_DELIVERED = re.compile(r"has been (?:successfully )?delivered to the following recipients", re.IGNORECASE)
_COMMANDS = ((re.compile(r"rejected MAIL FROM", re.IGNORECASE), "MAIL"), (re.compile(r"rejected (?:the )?address", re.I), "RCPT"))
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def _blocks(body: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    last = ""
    for line in body.split("\n"):
        found = _FIELD.match(line)
        if found:
            name = found.group(1).lower()
            if name == "recipient address":
                blocks.append({})
            if blocks:
                blocks[-1].setdefault(name, found.group(2).strip())
                last = name
            continue
        if blocks and last and line[:1] in (" ", "\t") and line.strip() and last == "diagnostic code":
            blocks[-1][last] = f"{blocks[-1][last]} {line.strip()}"  # a long reply folded by the MTA
        else:
            last = ""
    return blocks


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _INTRO.search(bounce.body):
        return None
    action = "delayed" if _DELAYED.search(bounce.body) else "delivered" if _DELIVERED.search(bounce.body) else "failed"
    dsn = {clean_address(f.recipient): f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient}
    findings: list[Finding] = []
    for block in _blocks(bounce.body):
        recipient = clean_address(block.get("recipient address", ""))
        if not recipient:
            continue
        reason = block.get("reason", "")
        remote = untyped(block.get("remote system", "")).split(" ")[0]
        finding = Finding(
            recipient=recipient,
            action=action,
            diagnostic=untyped(block.get("diagnostic code", "")) or reason,
            remote_mta=remote,
        )
        for pattern, command in _COMMANDS:
            if pattern.search(reason):
                finding.smtp_command = command
                break
        known = dsn.get(recipient) or dsn.get(clean_address(block.get("original address", "")))
        if known is not None:
            status = _STATUS.search(known.status)
            finding.status = status.group(1) if status else ""
            finding.action = known.action or finding.action
            finding.reporting_mta = known.reporting_mta
        findings.append(finding)
    if not findings:
        return [f for f in dsn.values()] or None
    return findings
