"""An unnamed MTA's "Returned Mail" notice: one ``address [reason]`` line per failure.

::

    The original message was received at Thu, 29 Apr 2010 23:34:45 +0900 (JST)
    from shironeko@example.jp

    ---The following addresses had delivery errors---

    kijitora@example.co.jp [User unknown]
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "x1"
PRIORITY = 35
# Skipped by core.py unless a marker occurs: parse() requires this heading.
MARKERS = ("the following addresses had delivery errors",)

_HEADING = re.compile(r"^-{2,}\s*The following addresses had delivery errors\s*-{2,}[ \t]*$", re.I | re.M)
_ENTRY = re.compile(r"^<?([^\s<>\[\]]+@[^\s<>\[\]]+?)>?\s+\[(.*)\]\s*$")


def parse(bounce: Bounce) -> list[Finding] | None:
    heading = _HEADING.search(bounce.body)
    if heading is None:
        return None
    findings: list[Finding] = []
    for line in bounce.body[heading.end() :].split("\n"):
        found = _ENTRY.match(line.strip())
        if found and clean_address(found.group(1)):
            findings.append(Finding(recipient=clean_address(found.group(1)), action="failed", diagnostic=found.group(2)))
        elif line.strip() and findings:
            break
    return findings or None
