"""Trustwave (Marshal) MailMarshal SMTP: "Undeliverable Mail: <subject>".

"Your message: From/Subject", then "Could not be delivered because of" with
the reply on the lines below, then "The following recipients were affected:"
and the addresses indented, then "Additional Information" with
``Remote-MTA: <ip>`` and friends. It sends from a ``MailMarshal.Sender`` host.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "mailmarshalsmtp"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires this line.
MARKERS = ("the following recipients were affected:",)

_BECAUSE = re.compile(r"^\s*Could not be delivered because of\s*$", re.IGNORECASE | re.MULTILINE)
_AFFECTED = re.compile(r"^\s*The following recipients were affected:\s*$", re.IGNORECASE | re.MULTILINE)
_ADDITIONAL = re.compile(r"^\s*Additional Information\s*$", re.IGNORECASE | re.MULTILINE)
_REMOTE = re.compile(r"^\s*Remote-MTA:\s*<?([^>\s]+)>?", re.IGNORECASE | re.MULTILINE)
_REPORTING = re.compile(r"^\s*Reporting-MTA:\s*<?([^>\s]+)>?", re.IGNORECASE | re.MULTILINE)


def parse(bounce: Bounce) -> list[Finding] | None:
    because = _BECAUSE.search(bounce.body)
    affected = _AFFECTED.search(bounce.body)
    if because is None or affected is None or affected.start() < because.end():
        return None
    diagnostic = " ".join(bounce.body[because.end() : affected.start()].split())
    additional = _ADDITIONAL.search(bounce.body, affected.end())
    listed = bounce.body[affected.end() : additional.start() if additional else len(bounce.body)]
    tail = bounce.body[additional.end() :] if additional else ""
    remote = _REMOTE.search(tail)
    reporting = _REPORTING.search(tail)
    findings = []
    for line in listed.split("\n"):
        found = ADDRESS.search(line)
        if found and line.strip():
            findings.append(
                Finding(
                    recipient=found.group(0),
                    action="failed",
                    diagnostic=diagnostic,
                    remote_mta=remote.group(1) if remote else "",
                    reporting_mta=reporting.group(1) if reporting else "",
                )
            )
    return findings or None
