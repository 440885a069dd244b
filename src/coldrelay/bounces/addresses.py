"""Email addresses as bounces write them: in angle brackets, with rfc822; prefixes, quoted."""

from __future__ import annotations

import functools
import re

ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
_BRACKETED = re.compile(r"<\s*([^<>\s]+@[^<>\s]+?)\s*>")
_TYPE_PREFIX = re.compile(r"^\s*(?:rfc822|utf-8|x-[\w-]+)\s*;\s*", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"\r\n]+"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+')


@functools.lru_cache(maxsize=4096)
def clean_address(value: str) -> str:
    """The bare address inside a header or DSN field value ('' when there is none)."""
    if not value:
        return ""
    quoted = _QUOTED.search(value)
    if quoted:  # a quoted local part may hold dots and spaces the plain pattern refuses
        return quoted.group(0).lower()
    value = value.strip()
    value = _TYPE_PREFIX.sub("", value)
    found = _BRACKETED.search(value)
    if found:
        value = found.group(1)
    found = ADDRESS.search(value.strip("<>\"' "))
    return found.group(0).strip(".").lower() if found else ""


def addresses_in(text: str) -> list[str]:
    """Every distinct address in a text, in order of first appearance."""
    seen: list[str] = []
    for found in ADDRESS.finditer(text):
        address = found.group(0).strip(".").lower()
        if address not in seen:
            seen.append(address)
    return seen
