"""qmail and its forks (netqmail, notqmail, qmail-ldap, indimail): "failure notice".

qmail-send writes "Hi. This is the qmail-send program at H." and one block per
recipient, the address alone on a line, then what happened::

    <rcpt@example.net>:
    192.0.2.25 does not like recipient.
    Remote host said: 550 5.1.1 <rcpt@example.net>: User unknown
    Giving up on 192.0.2.25.

qmail-remote's first sentence names the SMTP step ("Connected to H but sender
was rejected.", "H does not like recipient.", "H failed after I sent the
message."); qmail's own errors end in a status code such as ``(#5.1.2)``. The
housekeeping lines ("Giving up on ...", "I'm not going to try again; this
message has been in the queue too long.", "(Other MXes tried: ...)") are not
the diagnostic.
"""

from __future__ import annotations

import re

from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "qmail"
PRIORITY = 40
# Skipped by core.py unless a marker occurs: parse() requires qmail-send's sentence or the "I'm afraid I wasn't" one.
MARKERS = ("this is the qmail-send program at", "i'm afraid i wasn")

_INTRO = re.compile(r"This is the qmail-send program at", re.IGNORECASE)
_AFRAID = re.compile(r"I'm afraid I wasn'?t able to deliver your message to the following addresses", re.IGNORECASE)
_BOUNCE_RECEIVED = re.compile(r"\(qmail \d+ invoked for bounce\)", re.IGNORECASE)
_END = re.compile(r"^--- (?:Below this line|Enclosed (?:is|are)|Undeliverable message follows|Original message)", re.I)
_START = re.compile(r"^<([^<>\s]*@[^<>\s]*|[^<>\s]+)>:\s*(.*)$")
_STATUS = re.compile(r"\s*\(#([245]\.\d{1,3}\.\d{1,3})\)\s*")
_HOUSEKEEPING = re.compile(
    r"Giving up on \S+?\.?(?=\s|$)|I'm not going to try again; this\s+message has been in the queue too long\.?"
    r"|\(Other MXes tried:[^)]*\)|^From: <[^>]*> RCPT: <[^>]*>\s*",
    re.IGNORECASE | re.MULTILINE,
)
_QUEUE_TOO_LONG = re.compile(r"I'm not going to try again; this\s+message has been in the queue too long\.?", re.I)
_REMOTE_SAID = re.compile(r"\bremote host (?:(\S+) )?said:\s*(.*)", re.IGNORECASE | re.DOTALL)
_STAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Connected to (\S+) but greeting failed", re.I), "CONNECT"),
    (re.compile(r"Connected to (\S+) but my name was rejected", re.I), "HELO"),
    (re.compile(r"Connected to (\S+) but sender was rejected", re.I), "MAIL"),
    (re.compile(r"(\S+) does not like recipient", re.I), "RCPT"),
    (re.compile(r"(\S+) failed on DATA command", re.I), "DATA"),
    (re.compile(r"(\S+) failed after I sent the message", re.I), "DATA"),
)
_PROGRESS = re.compile(r"most progress was (RCPT TO|MAIL FROM|DATA|HELO|EHLO) response", re.IGNORECASE)
_PROGRESS_COMMANDS = {"RCPT TO": "RCPT", "MAIL FROM": "MAIL", "DATA": "DATA", "HELO": "HELO", "EHLO": "HELO"}


def _is_qmail(body: str, bounce: Bounce) -> bool:
    if _INTRO.search(body):
        return True
    received = " ".join(str(value) for value in bounce.message.get_all("Received") or [])
    from_daemon = bounce.subject.lower() == "failure notice" or "mailer-daemon" in bounce.sender.lower()
    return bool(_AFRAID.search(body)) and (from_daemon or bool(_BOUNCE_RECEIVED.search(received)))


def _blocks(body: str) -> list[tuple[str, str]]:
    """(recipient, text) of each "<address>:" block of the notification."""
    blocks: list[tuple[str, list[str]]] = []
    for line in body.split("\n"):
        if _END.match(line):
            break
        started = _START.match(line.strip())
        if started and line[:1] == "<":
            blocks.append((started.group(1), [started.group(2)] if started.group(2) else []))
        elif blocks:
            blocks[-1][1].append(line.strip())
    return [(address, "\n".join(lines).strip()) for address, lines in blocks]


def _read_block(address: str, text: str) -> Finding:
    finding = Finding(recipient=address, action="failed")
    status = _STATUS.search(text)
    if status:
        finding.status = status.group(1)
    for pattern, command in _STAGES:
        stage = pattern.search(text)
        if stage:
            finding.smtp_command = command
            finding.remote_mta = stage.group(1).rstrip(".")
            break
    progress = _PROGRESS.search(text)
    if progress:
        finding.smtp_command = _PROGRESS_COMMANDS.get(progress.group(1).upper(), "")
    said = _REMOTE_SAID.search(text)
    if said:
        finding.remote_mta = finding.remote_mta or (said.group(1) or "")
        text = said.group(2)
    cleaned = _STATUS.sub(" ", _HOUSEKEEPING.sub(" ", text))
    cleaned = " ".join(cleaned.split()).strip(" .") if said else " ".join(cleaned.split())
    queue = _QUEUE_TOO_LONG.search(text)
    if not cleaned and queue:
        cleaned = " ".join(queue.group(0).split())  # nothing else said: the message expired in the queue
    finding.diagnostic = cleaned
    return finding


def parse(bounce: Bounce) -> list[Finding] | None:
    body = bounce.body.replace("\r\n", "\n").replace("\r", "\n")
    if not _is_qmail(body, bounce):
        return None
    findings = [_read_block(address, text) for address, text in _blocks(body)]
    return [finding for finding in findings if finding.recipient] or None
