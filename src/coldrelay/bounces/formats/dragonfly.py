"""DragonFly Mail Agent (dma): "Mail delivery failed".

dma's bounce is plain text, one recipient per message::

    This is the DragonFly Mail Agent v0.13 at df.example.jp.

    There was an error delivering your mail to <rcpt@example.net>.

    mx.example.net [192.0.2.25] did not like our RCPT TO:
    550 5.1.1 <rcpt@example.net>: User unknown

    Message headers follow.

The "did not like our X:" line names the remote host and the SMTP step ("final
DATA" is the end of the message); dma's own errors ("Could not deliver for the
last N seconds. Giving up.") stand alone. The returned headers follow "Message
headers follow." or "Original message follows.".
"""

from __future__ import annotations

import re

from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "dragonfly"
PRIORITY = 40
# Skipped by core.py unless a marker occurs: parse() requires the "There was an error delivering your mail to <" line.
MARKERS = ("there was an error delivering your mail to <",)

_INTRO = re.compile(r"^This is the DragonFly Mail Agent\b", re.IGNORECASE | re.MULTILINE)
_DMA_RECEIVED = re.compile(r"\(DragonFly Mail Agent\b", re.IGNORECASE)
_RECIPIENT = re.compile(r"^There was an error delivering your mail to <([^<>]+)>\.?\s*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(r"^(?:Message headers follow|Original message follows)\.?\s*$", re.IGNORECASE | re.MULTILINE)
_REMOTE = re.compile(r"^(\S+) \[([^\]]*)\] did not like our ([A-Za-z ]+?):\s*$", re.MULTILINE)
_COMMANDS = {
    "RCPT TO": "RCPT",
    "MAIL FROM": "MAIL",
    "FINAL DATA": "DATA",
    "DATA": "DATA",
    "EHLO": "HELO",
    "HELO": "HELO",
    "STARTTLS": "STARTTLS",
    "AUTH": "AUTH",
}


def _is_dma(bounce: Bounce, body: str) -> bool:
    if not _RECIPIENT.search(body):
        return False
    if _INTRO.search(body):
        return True
    received = " ".join(str(value) for value in bounce.message.get_all("Received") or [])
    return bool(_DMA_RECEIVED.search(received))


def parse(bounce: Bounce) -> list[Finding] | None:
    body = bounce.body.replace("\r\n", "\n").replace("\r", "\n")
    if not _is_dma(bounce, body):
        return None
    findings: list[Finding] = []
    starts = list(_RECIPIENT.finditer(body))
    for index, start in enumerate(starts):
        stop = starts[index + 1].start() if index + 1 < len(starts) else len(body)
        text = body[start.end() : stop]
        end = _END.search(text)
        text = text[: end.start()] if end else text
        finding = Finding(recipient=start.group(1), action="failed")
        remote = _REMOTE.search(text)
        if remote:
            finding.remote_mta = remote.group(1)
            finding.smtp_command = _COMMANDS.get(" ".join(remote.group(3).upper().split()), "")
            text = text[remote.end() :]
        finding.diagnostic = " ".join(text.split())
        findings.append(finding)
    return findings or None
