"""RFC 3464 delivery-status fields: one block per message, one per recipient.

The same ``Field: value`` grammar appears in real DSN parts, in plain-text
bodies that imitate them, and in ARF reports, so one tolerant reader serves
them all: any case, folded lines, stray blank lines, ``rfc822;`` type prefixes.
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_TYPED = re.compile(r"^\s*(?:rfc822|dns|smtp|x-[\w-]+|utf-8|unknown)\s*;\s*", re.IGNORECASE)
RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "x-actual-recipient")


def field_blocks(text: str) -> list[dict[str, str]]:
    """Split text into blocks of fields; keys are lowercase, folded values joined."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            current[last] = f"{current[last]} {line.strip()}".strip()
            continue
        found = _FIELD.match(line)
        if found:
            last = found.group(1).lower()
            if last not in current:
                current[last] = found.group(2).strip()
            else:
                last = None  # keep the first occurrence of a repeated field
        else:
            last = None
    if current:
        blocks.append(current)
    return blocks


def untyped(value: str) -> str:
    """``rfc822; a@b`` -> ``a@b``; ``dns; mx.example`` -> ``mx.example``; ``smtp; 550 ...`` -> ``550 ...``."""
    return _TYPED.sub("", value, count=1).strip()


def split_delivery_status(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """(per-message fields, per-recipient field blocks) of a delivery-status text."""
    per_message: dict[str, str] = {}
    recipients: list[dict[str, str]] = []
    for block in field_blocks(text):
        if any(name in block for name in RECIPIENT_FIELDS) or (recipients and "status" in block and "action" in block):
            recipients.append(block)
        else:
            for key, value in block.items():
                per_message.setdefault(key, value)
    return per_message, recipients
