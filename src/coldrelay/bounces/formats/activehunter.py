"""Active!hunter (a Japanese mail filter): "FAILURE NOTICE :" reports.

Sendmail-like text: "----- The following addresses had permanent fatal errors
-----" lists ``>>> address <address>``, and "----- Transcript of session
follows -----" gives the reply. The filter marks its reports with an
``X-AHMAILID`` header and ``Active!Hunter`` MIME boundaries.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "activehunter"
PRIORITY = 25
# Skipped by core.py unless a marker occurs: its X-AHMAILID header or Active!Hunter boundary: parse() requires one.
MARKERS = ("x-ahmailid", "active!hunter")

_BOUNDARY = re.compile(r"Active!Hunter", re.IGNORECASE)
_ERRORS = re.compile(r"^\s*-+\s*The following addresses had permanent fatal errors\s*-+\s*$", re.IGNORECASE | re.MULTILINE)
_TRANSCRIPT = re.compile(r"^\s*-+\s*Transcript of session follows\s*-+\s*$", re.IGNORECASE | re.MULTILINE)


def parse(bounce: Bounce) -> list[Finding] | None:
    marked = bounce.message.get("X-AHMAILID") is not None or _BOUNDARY.search(str(bounce.message.get("Content-Type") or ""))
    errors = _ERRORS.search(bounce.body)
    if not marked or errors is None:
        return None
    transcript = _TRANSCRIPT.search(bounce.body, errors.end())
    listed = bounce.body[errors.end() : transcript.start() if transcript else len(bounce.body)]
    reply: list[str] = []
    if transcript is not None:
        for line in bounce.body[transcript.end() :].split("\n"):
            if line.strip():
                reply.append(line.strip())
            elif reply:
                break
    diagnostic = " ".join(reply)
    return [Finding(recipient=address, action="failed", diagnostic=diagnostic) for address in addresses_in(listed)] or None
