"""m-FILTER (Digital Arts' mail gateway): "failure notice" in Japanese, ``X-Mailer: m-FILTER``.

After the Japanese explanation, the failed addresses are listed below
"以下のメールアドレスへの送信に失敗しました。", then "-------server message"
gives the reply and "-------SMTP command" the command it answered, before
"-------original message" (or "-------original mail info").
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "mfilter"
PRIORITY = 25
# Skipped by core.py unless a marker occurs: parse() requires X-Mailer: m-FILTER.
MARKERS = ("m-filter",)

_MAILER = re.compile(r"^m-FILTER\b", re.IGNORECASE)
_LISTED = re.compile(r"^.*(?:送信に失敗しました|could not be delivered to the following).*$", re.MULTILINE)
_SECTION = re.compile(r"^-{3,}\s*([A-Za-z][A-Za-z ]*?)\s*$", re.MULTILINE)
_ADDRESS_LINE = re.compile(rf"^\s*<?({ADDRESS.pattern})>?\s*$")


def _sections(body: str) -> dict[str, str]:
    found = list(_SECTION.finditer(body))
    sections: dict[str, str] = {}
    for index, head in enumerate(found):
        end = found[index + 1].start() if index + 1 < len(found) else len(body)
        sections.setdefault(head.group(1).lower(), body[head.end() : end].strip())
    return sections


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _MAILER.match(bounce.header("X-Mailer").strip()):
        return None
    sections = _sections(bounce.body)
    if "server message" not in sections:
        return None
    first = _SECTION.search(bounce.body)
    head = bounce.body[: first.start() if first else len(bounce.body)]
    listed = _LISTED.search(head)
    area = head[listed.end() :] if listed else head
    recipients = [m.group(1) for line in area.split("\n") if (m := _ADDRESS_LINE.match(line))]
    diagnostic = " ".join(sections.get("server message", "").split())
    command = sections.get("smtp command", "").split("\n")[0].strip().upper()
    command = {"RCPT TO": "RCPT", "MAIL FROM": "MAIL"}.get(command.split(":")[0], command.split(":")[0].split(" ")[0])
    return [Finding(recipient=r, action="failed", diagnostic=diagnostic, smtp_command=command) for r in recipients] or None
