"""Sendmail before MIME notices (V5, IDA and 8.x without DSN): a transcript and the unsent message.

The notice has no list of failed addresses and no delivery-status part: only
``----- Transcript of session follows -----`` with sessions (``While talking
to host:``, ``>>> command``, ``<<< reply``), sendmail's verdict per address
(``550 <a@b>... User unknown``) and per host (``421 host (smtp)... Deferred:
...``), then ``----- Unsent message follows -----`` and the message itself.
When the queue lifetime ran out the subject says so: ``Returned mail: Cannot
send message for 5 days``.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.formats.sendmail import command_of, gave_up, read_transcript
from coldrelay.bounces.message import Bounce, header_in
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "v5sendmail"
PRIORITY = 31
# Skipped by core.py unless a marker occurs: parse() requires the transcript heading.
MARKERS = ("transcript of session follows",)

_TRANSCRIPT = re.compile(r"^[ \t]*-+[ \t]*Transcript of session follows[ \t]*-+[ \t]*$", re.IGNORECASE | re.MULTILINE)
_UNSENT = re.compile(r"^[ \t]*-+[ \t]*(?:Unsent|Original|Returned) message follows[ \t]*-+[ \t]*$", re.I | re.M)
_LIST = re.compile(r"^[ \t]*-+[ \t]*The following addresses? had", re.IGNORECASE | re.MULTILINE)
_SUBJECT = re.compile(r"^Returned mail\b", re.IGNORECASE)
_EXPIRED_SUBJECT = re.compile(r"^Returned mail: Cannot send message for \d+ \w+", re.IGNORECASE)


def parse(bounce: Bounce) -> list[Finding] | None:
    body = bounce.body
    start = _TRANSCRIPT.search(body)
    if start is None or _LIST.search(body) or bounce.delivery_status:
        return None
    if not (_SUBJECT.search(bounce.subject) or "mail delivery subsystem" in bounce.sender.lower()):
        return None
    end = _UNSENT.search(body, start.end())
    text = body[start.end() : end.start() if end else len(body)]
    original = body[end.end() :].lstrip("\n") if end else bounce.original
    transcript = read_transcript(text)
    expired = gave_up(text) or bool(_EXPIRED_SUBJECT.search(bounce.subject))
    findings: list[Finding] = []
    seen: set[str] = set()
    for line in transcript.addresses:
        recipient = clean_address(line.address)
        if not recipient or recipient in seen:
            continue
        seen.add(recipient)
        reply = line.reply
        findings.append(
            Finding(
                recipient=recipient,
                action="failed",
                diagnostic=reply.text if reply is not None and reply.lines else line.text,
                remote_mta=reply.host if reply is not None else "",
                smtp_command=command_of(reply, transcript) if reply is not None else "",
                reason=Reason.EXPIRED if expired else None,
            )
        )
    if not findings:
        recipient = clean_address(header_in(original, "To"))
        if recipient:
            diagnostic = " ".join(" ".join(transcript.others).split())
            findings.append(
                Finding(
                    recipient=recipient,
                    action="failed",
                    diagnostic=diagnostic,
                    reason=Reason.EXPIRED if expired else None,
                )
            )
    return findings or None
