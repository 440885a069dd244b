"""An old webmail provider's MTA: "Message from example.com. Unable to deliver message to ...".

The notice names the reporting domain, then one paragraph per address, the
address alone on its first line and the reason below it::

    Message from example.com.
    Unable to deliver message to the following address(es).

    <kijitora@example.org>:
    unable to connect to remote server [192.0.2.1:25]: Operation timed out
    I'm not going to try again; this message has been in the queue too long.

    --- Original message follows.

``address_paragraphs`` reads that qmail-like paragraph grammar for other layouts too.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "x2"
PRIORITY = 35
# Skipped by core.py unless a marker occurs: parse() requires this sentence.
MARKERS = ("unable to deliver message to the following address",)

_INTRO = re.compile(
    r"^Message from\s+\S+?\.?\s*\nUnable to deliver message to the following address(?:\(es\)|es)?\.", re.I | re.M
)
_PARAGRAPH = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:[ \t]*\n(.*?)(?=\n[ \t]*\n|\n<[^<>\s]+@[^<>\s]+>:[ \t]*\n|\Z)", re.M | re.S)


def address_paragraphs(text: str) -> list[tuple[str, str]]:
    """(address, reason text) for each ``<address>:`` paragraph."""
    found = []
    for paragraph in _PARAGRAPH.finditer(text):
        address = clean_address(paragraph.group(1))
        if address:
            found.append((address, " ".join(paragraph.group(2).split())))
    return found


def parse(bounce: Bounce) -> list[Finding] | None:
    intro = _INTRO.search(bounce.body)
    if intro is None:
        return None
    findings = [
        Finding(recipient=address, action="failed", diagnostic=text)
        for address, text in address_paragraphs(bounce.body[intro.end() :])
    ]
    return findings or None
