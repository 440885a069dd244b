"""A framed "Delivery Status Notification" of an unnamed MTA ("Mail Delivery System").

The text part sits between lines of ``=`` signs::

          This is an automatically generated Delivery Status Notification.

    Delivery to the following recipients failed permanently:

       * kijitora@example.com

                                 Technical details:

    SMTP:RCPT host 192.0.2.8: 553 5.3.0 <kijitora@example.com>... No such user here

The technical details name the command and the host that refused. Some
versions add a delivery-status part; its fields complete the list.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.dsn import split_delivery_status, untyped
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "x3"
PRIORITY = 35
# Skipped by core.py unless a marker occurs: parse() requires this sentence.
MARKERS = ("this is an automatically generated delivery status notification",)

_INTRO = re.compile(r"^\s*This is an automatically generated Delivery Status Notification\.?\s*$", re.I | re.M)
_LIST = re.compile(r"^\s*Del[ie]very to the following recipients? (failed permanently|was aborted|.*?)\s*:\s*$", re.I | re.M)
_BULLET = re.compile(r"^\s*\*\s*(\S+@\S+)\s*$", re.MULTILINE)
_DETAILS = re.compile(r"^\s*SMTP:(?P<command>[A-Z]+) host (?P<host>\S+?): (?P<reply>.+)$", re.MULTILINE)


def parse(bounce: Bounce) -> list[Finding] | None:
    body = bounce.body
    if not _INTRO.search(body):
        return None
    heading = _LIST.search(body)
    if heading is None:
        return None
    recipients = [clean_address(found.group(1)) for found in _BULLET.finditer(body, heading.end())]
    recipients = [address for address in recipients if address]
    if not recipients:
        return None
    details = list(_DETAILS.finditer(body, heading.end()))
    blocks: list[dict[str, str]] = []
    for text in bounce.delivery_status:
        blocks.extend(split_delivery_status(text)[1])
    findings: list[Finding] = []
    for index, recipient in enumerate(recipients):
        detail = next((d for d in details if recipient in d.group("reply").lower()), None)
        if detail is None and len(details) == len(recipients):
            detail = details[index]
        block = next(
            (b for b in blocks if clean_address(untyped(b.get("final-recipient", ""))) == recipient),
            blocks[index] if len(blocks) == len(recipients) else {},
        )
        findings.append(
            Finding(
                recipient=recipient,
                action=(block.get("action", "").split() or ["failed"])[0],
                status=block.get("status", ""),
                diagnostic=" ".join(detail.group("reply").split()) if detail else untyped(block.get("diagnostic-code", "")),
                remote_mta=detail.group("host") if detail else untyped(block.get("remote-mta", "")),
                smtp_command=detail.group("command").upper() if detail else "",
            )
        )
    return findings
