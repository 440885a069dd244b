"""Yahoo! Mail (and AOL since it joined Yahoo) "Failure Notice" bounces.

    Sorry, we were unable to deliver your message to the following address.

    <rcpt@example.org>:
    Remote host said: 550 5.1.1 <rcpt@example.org>... User Unknown [RCPT_TO]

    --- Below this line is a copy of the message.

The bracketed tag names the SMTP step the remote host refused at; without
"Remote host said:" the text is Yahoo's own ("No mx record found ...").
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "yahoo"
PRIORITY = 15
# Skipped by core.py unless a marker occurs: parse() requires this sentence.
MARKERS = ("we were unable to deliver your message to the following address",)

_INTRO = re.compile(r"^Sorry,? we were unable to deliver your message to the following address(?:es)?\.?[ \t]*$", re.I | re.M)
_BLOCK = re.compile(r"^[ \t]*<([^<>\s]+@[^<>\s]+)>:[ \t]*(.*?)(?=^[ \t]*<[^<>\s]+@[^<>\s]+>:|\Z)", re.M | re.S)
_SAID = re.compile(r"^\s*Remote host said:\s*", re.IGNORECASE)
_STEP = re.compile(r"\[(RCPT_TO|MAIL_FROM|DATA|BODY|HELO|EHLO|CONNECT|STARTTLS|AUTH)\]\s*$", re.IGNORECASE)
_COMMANDS = {"RCPT_TO": "RCPT", "MAIL_FROM": "MAIL", "BODY": "DATA"}
_CODE = re.compile(r"^([245]\d\d)(?:[ :-]|$)")


def parse(bounce: Bounce) -> list[Finding] | None:
    intro = _INTRO.search(bounce.body)
    if not intro:
        return None
    findings = []
    for block in _BLOCK.finditer(bounce.body[intro.end() :]):
        text = " ".join(block.group(2).split())
        step = _STEP.search(text)
        command = ""
        if step:
            command = _COMMANDS.get(step.group(1).upper(), step.group(1).upper())
            text = text[: step.start()].rstrip()
        text = _SAID.sub("", text)
        code = _CODE.match(text)
        findings.append(
            Finding(
                recipient=clean_address(block.group(1)),
                action="failed",
                diagnostic=text,
                replycode=code.group(1) if code else "",
                smtp_command=command,
            )
        )
    return [f for f in findings if f.recipient] or None
