"""Postfix: "Undelivered Mail Returned to Sender" from bounce(8).

The notification says "This is the mail system at host H." (older versions:
"This is the Postfix program at host H.") and lists one paragraph per
recipient, continuation lines indented::

    <rcpt@example.net> (expanded from <alias@example.org>): host
        mx.example.net[192.0.2.1] said: 550 5.1.1 <rcpt@example.net>: User
        unknown (in reply to RCPT TO command)

The DSN part, when there is one, carries ``X-Postfix-Queue-ID`` and
``X-Postfix-Sender``; its Diagnostic-Code is the remote reply (``smtp;``) or
Postfix's own sentence (``X-Postfix;``), and lacks the SMTP command, which only
the paragraph names. Some providers forward the whole bounce inline as text;
its fields are then read from the body.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason, explain

NAME = "postfix"
PRIORITY = 40
# Skipped by core.py unless a marker occurs: parse() requires an X-Postfix DSN field or the opening sentence.
MARKERS = ("x-postfix-queue-id:", "x-postfix-sender:", "this is the mail system at host", "this is the postfix program at host")

_INTRO = re.compile(r"^\s*This is the (?:mail system|Postfix program) at host \S+", re.IGNORECASE | re.MULTILINE)
_POSTFIX_FIELD = re.compile(r"^X-Postfix-(?:Queue-ID|Sender):", re.IGNORECASE | re.MULTILINE)
_SUBJECT = re.compile(
    r"^(?:Undelivered Mail Returned to Sender|Delayed Mail \(still being retried\)|Mail Delivery Status Report"
    r"|Successful Mail Delivery Report)$",
    re.IGNORECASE,
)
_FINAL_RECIPIENT = re.compile(r"^Final-Recipient:", re.IGNORECASE | re.MULTILINE)
_PARAGRAPH_START = re.compile(r"^ ?<([^<>\s]+@[^<>\s]+)>")
_PARAGRAPH = re.compile(r"^<([^<>]+)>\s*(?:\(expanded from\s*<[^<>]*>\)\s*)?:\s*(.*)$", re.DOTALL)
_SAID = re.compile(
    r"^host (\S+?)\[[^\]]*\] (said|refused to talk to me): (.*?)(?: \(in reply to (.+?) command\))?$", re.IGNORECASE
)
_IN_REPLY = re.compile(r"\(in reply to (.+?) command\)\s*$", re.IGNORECASE)
_WHILE = re.compile(
    r"\bwhile (?:sending|performing the) (RCPT TO|MAIL FROM|end of data|DATA|HELO|EHLO|STARTTLS|AUTH)\b|"
    r"\bwhile receiving the initial server greeting",
    re.IGNORECASE,
)
_SUSPENDED = re.compile(r"^delivery temporarily suspended:\s+(?=\S)", re.IGNORECASE)
"""Postfix's note that it skipped a destination that failed before; the old failure follows it."""
_COMMAND_OUTPUT = re.compile(r"\bCommand output:\s*", re.IGNORECASE)
_COMMANDS = {
    "RCPT TO": "RCPT",
    "MAIL FROM": "MAIL",
    "END OF DATA": "DATA",
    "DATA": "DATA",
    "HELO": "HELO",
    "EHLO": "HELO",
    "STARTTLS": "STARTTLS",
    "AUTH": "AUTH",
}
_LOCAL_KEEP = {Reason.MAILBOXFULL, Reason.SYSTEMFULL, Reason.MESGTOOBIG}


def _is_postfix(bounce: Bounce, body: str) -> bool:
    if any(_POSTFIX_FIELD.search(text) for text in bounce.delivery_status):
        return True
    if not _INTRO.search(body):
        return False
    daemon = "MAILER-DAEMON" in bounce.sender.upper()
    return bool(_SUBJECT.match(bounce.subject.strip())) or daemon or bool(bounce.delivery_status)


def _command(text: str) -> str:
    name = " ".join(text.upper().split())
    return _COMMANDS.get(name, _COMMANDS.get(name.split(" ")[0], ""))


def _paragraphs(body: str) -> list[tuple[str, str]]:
    """(recipient, joined text) of each recipient paragraph of the notification."""
    found: list[tuple[str, str]] = []
    current: list[str] = []

    def close() -> None:
        if current:
            matched = _PARAGRAPH.match(" ".join(current))
            if matched:
                found.append((matched.group(1), matched.group(2).strip()))
            current.clear()

    for line in body.split("\n"):
        if _PARAGRAPH_START.match(line):
            close()
            current.append(line.strip())
        elif current and line[:1] in (" ", "\t") and line.strip():
            current.append(line.strip())
        else:
            close()
    close()
    return found


def _read_paragraph(text: str) -> Finding:
    """What one paragraph says: the remote reply, the host, the SMTP command."""
    text = _SUSPENDED.sub("", text)
    finding = Finding(diagnostic=text)
    said = _SAID.match(text)
    if said:
        finding.remote_mta = said.group(1)
        if said.group(2).lower().startswith("refused"):
            finding.smtp_command = "CONNECT"  # refused in the greeting: the sentence says so, keep it
            finding.diagnostic = " ".join(text.split())
        else:
            finding.diagnostic = said.group(3).strip()
            finding.smtp_command = _command(said.group(4) or "")
        return finding
    in_reply = _IN_REPLY.search(text)
    if in_reply:
        finding.smtp_command = _command(in_reply.group(1))
        finding.diagnostic = text[: in_reply.start()].strip()
    else:
        during = _WHILE.search(text)
        if during:
            finding.smtp_command = _command(during.group(1)) if during.group(1) else "CONNECT"
    return finding


def _mailer_error(finding: Finding, paragraph: str, dsn_diagnostic_type: str) -> bool:
    """Delivery to a local command failed: Postfix reports the program's exit, not a remote reply."""
    if not (_COMMAND_OUTPUT.search(paragraph) or dsn_diagnostic_type == "x-unix"):
        return False
    return explain(finding.diagnostic).reason not in _LOCAL_KEEP if finding.diagnostic else True


def _key(address: str) -> str:
    return clean_address(address) or address.strip().strip("<>").lower()


def _dsn_texts(bounce: Bounce, body: str) -> list[str]:
    texts = [text.replace("\r\n", "\n").replace("\r", "\n") for text in bounce.delivery_status]
    if not texts and _FINAL_RECIPIENT.search(body):
        texts = [body]  # a bounce forwarded inline: its DSN fields are plain text
    return texts


def _diagnostic_types(texts: list[str]) -> dict[str, str]:
    """Recipient -> the type of its Diagnostic-Code (``smtp``, ``x-postfix``, ``x-unix``)."""
    types: dict[str, str] = {}
    recipient = ""
    for text in texts:
        for line in text.split("\n"):
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key == "final-recipient":
                recipient = _key(value.split(";", 1)[-1])
            elif key == "diagnostic-code" and recipient and ";" in value:
                types.setdefault(recipient, value.split(";", 1)[0].strip().lower())
    return types


def _from_dsn(texts: list[str], paragraphs: dict[str, str]) -> list[Finding]:
    """One finding per DSN recipient, with the command (and any missing part) from its paragraph."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for finding in (f for text in texts for f in findings_from_dsn(text)):
        address = _key(finding.recipient)
        if not finding.recipient or address in seen:
            continue
        seen.add(address)
        paragraph = paragraphs.get(address, "")
        read = _read_paragraph(paragraph) if paragraph else Finding()
        # Older versions copy the whole sentence ("host H said: ... (in reply to ...)") into the DSN.
        own = _read_paragraph(" ".join(finding.diagnostic.split()))
        finding.diagnostic = own.diagnostic or read.diagnostic
        finding.smtp_command = read.smtp_command or own.smtp_command
        finding.remote_mta = finding.remote_mta or read.remote_mta or own.remote_mta
        findings.append(finding)
    return findings


def parse(bounce: Bounce) -> list[Finding] | None:
    body = bounce.body.replace("\r\n", "\n").replace("\r", "\n")
    if not _is_postfix(bounce, body):
        return None
    texts = _dsn_texts(bounce, body)
    paragraphs: dict[str, str] = {}
    for address, text in _paragraphs(body):
        paragraphs.setdefault(_key(address), text)
    findings = _from_dsn(texts, paragraphs)
    if not findings:  # no DSN: the paragraphs are all there is
        for address, text in _paragraphs(body):
            if any(_key(address) == _key(f.recipient) for f in findings):
                continue
            read = _read_paragraph(text)
            read.recipient, read.action = address, "failed"
            findings.append(read)
    types = _diagnostic_types(texts)
    for finding in findings:
        address = _key(finding.recipient)
        if finding.action.lower() in ("delivered", "relayed", "expanded"):
            finding.reason = Reason.DELIVERED
        elif _mailer_error(finding, paragraphs.get(address, ""), types.get(address, "")):
            finding.reason = Reason.MAILERERROR
    if not findings:
        recipient = clean_address(bounce.original_header("To"))
        if not recipient:
            return None
        findings.append(Finding(recipient=recipient, action="failed"))  # "Delivery report unavailable"
    return findings
