"""Sendmail's returned-mail notices ("Returned mail: see transcript for details").

Sendmail lists the failed addresses under ``----- The following addresses had
permanent fatal errors -----``, each with a ``(reason: ...)`` line, then writes
the SMTP transcript (``... while talking to host.:``, ``>>> command``,
``<<< reply``, ``<addr>... what sendmail made of it``) and, in MIME mode, a
delivery-status part. The transcript holds the remote server's whole reply and
the command it answered; the delivery-status part holds the final recipient and
the status. Mail gateways built on sendmail (Mirapoint, Switch, V8/cf builds)
write the same layout.

``read_transcript`` is shared with the pre-MIME sendmail layout (``v5sendmail``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from coldrelay.bounces.addresses import clean_address
from coldrelay.bounces.dsn import split_delivery_status, untyped
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding
from coldrelay.errors import Reason

NAME = "sendmail"
PRIORITY = 30
# Skipped by core.py unless a marker occurs: parse() requires the list heading: each kind followed by " errors".
MARKERS = ("permanent fatal errors", "transient non-fatal errors", "permanent delivery errors", "permanent errors")

_LIST_HEADER = re.compile(
    r"^[ \t]*-+[ \t]*The following addresses? had (permanent fatal|transient non-fatal|permanent delivery|permanent)"
    r" errors[ \t]*-+[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_SECTION = re.compile(r"^[ \t]*-{3,}[ \t]*\S.*?-{3,}[ \t]*$")
_TRANSCRIPT_HEADER = re.compile(r"^[ \t]*-+[ \t]*Transcript of session follows[ \t]*-+[ \t]*$", re.IGNORECASE | re.MULTILINE)
_SUBJECT = re.compile(r"^(?:Returned mail|Postmaster notify|Postmaster warning|Warning: could not send message)\b", re.I)
_REASON = re.compile(r"^\(reason:\s*(.*?)\)?\s*$", re.IGNORECASE)
_EXPANDED = re.compile(r"^\(expanded from:\s*(.*?)\)\s*$", re.IGNORECASE)
_SESSION = re.compile(r"^(?:\.\.\.\s*)?while talking to ([^\s:]+?)\.?:\s*$", re.IGNORECASE)
_SENT = re.compile(r"^>>>\s?(.*)$")
_RECEIVED = re.compile(r"^<<<\s?(.*)$")
_FINAL_LINE = re.compile(r"^[245]\d\d(?:\s|$)")
_ADDRESS_LINE = re.compile(r"^(?:([245]\d\d)(?:[ -]([245]\.\d{1,3}\.\d{1,3}))?\s+)?(\"[^\"]+\"|<?[^\s<>()]+?>?)\.\.\.\s*(.*)$")
_STARTS_WITH_CODE = re.compile(r"^[245]\d\d\b")
_GAVE_UP = re.compile(r"^Message could not be delivered for \d+ \w+", re.IGNORECASE | re.MULTILINE)
_DSN_START = re.compile(r"^(?:Reporting-MTA|Original-Envelope-Id|Final-Recipient|Original-Recipient)[ \t]*:", re.I | re.M)
_DSN_END = re.compile(r"^(?:--\S|Content-Type:)", re.IGNORECASE | re.MULTILINE)
_CONTINUED_CODE = re.compile(r"^[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s+)?")
_NOT_ANSWERS = frozenset({"QUIT", "RSET", "NOOP"})


@dataclass
class Reply:
    """One reply of the remote server in the transcript, with the command it answered."""

    host: str
    command: str
    lines: list[str] = field(default_factory=list)
    taken: bool = False

    @property
    def text(self) -> str:
        """The reply on one line, continuation codes after the first line dropped."""
        if not self.lines:
            return ""
        first = self.lines[0]
        rest = [_CONTINUED_CODE.sub("", line) for line in self.lines[1:]]
        return " ".join(" ".join([first, *rest]).split())


@dataclass
class AddressLine:
    """Sendmail's own verdict on one address: ``550 5.1.1 <a@b>... User unknown``."""

    address: str
    line: str
    reply: Reply | None
    after_reply: bool
    code: str = ""
    status: str = ""
    message: str = ""

    @property
    def text(self) -> str:
        """What sendmail said about the address, without the address: ``550 5.1.1 User unknown``."""
        if self.address.lstrip('"').startswith(("|", "/")):
            return " ".join(self.line.split())  # a program or file delivery: the line names it
        if _STARTS_WITH_CODE.match(self.message):
            return self.message  # "554 <a@b>... 550 Host unknown": the remote code is in the message
        return " ".join(part for part in (self.code, self.status, self.message) if part)


@dataclass
class Transcript:
    replies: list[Reply] = field(default_factory=list)
    addresses: list[AddressLine] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    """Lines that are neither replies, commands nor address lines (host deferrals, queue notes)."""

    def line_for(self, address: str) -> AddressLine | None:
        wanted = address.strip("<>").lower()
        for item in self.addresses:
            token = item.address.strip("<>").lower()  # "<a@b>", "a@b", "|program", or a bare local part
            if token == wanted or (clean_address(token) and clean_address(token) == clean_address(wanted)):
                return item
        return None

    def reply_starting(self, text: str) -> Reply | None:
        """The reply whose first line is (or begins with) the given text."""
        wanted = " ".join(text.split())
        if not wanted:
            return None
        for reply in self.replies:
            first = " ".join(reply.lines[0].split()) if reply.lines else ""
            if first and (first == wanted or first.startswith(wanted) or wanted.startswith(first)):
                return reply
        return None


def _command_name(sent: str) -> str:
    words = sent.strip().upper().split()
    if not words:
        return ""
    word = words[0].rstrip(":")
    return {"MAIL": "MAIL", "RCPT": "RCPT"}.get(word, word)


def read_transcript(text: str) -> Transcript:
    """Replies, commands and per-address verdicts of a sendmail session transcript."""
    transcript = Transcript()
    host = ""
    command = ""
    current: Reply | None = None
    previous_was_reply = False
    session: list[Reply] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            previous_was_reply = False
            continue
        found = _SESSION.match(line)
        if found:
            host, command, current, session = found.group(1).rstrip("."), "", None, []
            previous_was_reply = False
            continue
        found = _SENT.match(line)
        if found:
            command, current = _command_name(found.group(1)), None
            previous_was_reply = False
            continue
        found = _RECEIVED.match(line)
        if found:
            if current is None or not current.lines or _FINAL_LINE.match(current.lines[-1]):
                current = Reply(host=host, command=command or "CONNECT")
                session.append(current)
                transcript.replies.append(current)
            current.lines.append(found.group(1).strip())
            previous_was_reply = True
            continue
        current = None
        found = _ADDRESS_LINE.match(line)
        if found and not found.group(3).replace(".", "").isdigit():
            answer = next((r for r in reversed(session) if not r.taken and r.command not in _NOT_ANSWERS), None)
            if answer is not None:
                answer.taken = True
            code, status, address, message = (found.group(i) or "" for i in range(1, 5))
            transcript.addresses.append(AddressLine(address, line, answer, previous_was_reply, code, status, message.strip()))
        else:
            transcript.others.append(line)
        previous_was_reply = False
    return transcript


def command_of(reply: Reply, transcript: Transcript) -> str:
    """The command a reply answered.

    With pipelining sendmail logs only the last command it sent (``>>> DATA``), so
    a refusal of RCPT appears after DATA; sendmail then writes its per-address line
    (``<a@b>... User unknown``) right below the reply, while a refused message gets
    ``Service unavailable`` instead. A reply followed at once by an address line
    therefore answered RCPT.
    """
    if reply.command == "DATA" and any(a.reply is reply and a.after_reply for a in transcript.addresses):
        return "RCPT"
    return reply.command


@dataclass
class Listed:
    """One address in the "following addresses had ... errors" list."""

    address: str
    reason: str = ""
    expanded_from: str = ""
    permanent: bool = True


def _listed(body: str) -> list[Listed]:
    entries: list[Listed] = []
    for header in _LIST_HEADER.finditer(body):
        permanent = not header.group(1).lower().startswith("transient")
        count = len(entries)
        for line in body[header.end() :].split("\n"):
            if _SECTION.match(line):
                break
            if not line.strip():
                if len(entries) > count:
                    break  # the list is one block: a blank line after it ends it
                continue
            if line[0] in " \t":
                found = _REASON.match(line.strip())
                if found and entries:
                    entries[-1].reason = found.group(1).strip()
                expanded = _EXPANDED.match(line.strip())
                if expanded and entries:
                    entries[-1].expanded_from = expanded.group(1).strip()
                continue
            entries.append(Listed(address=line.strip().strip("<>").strip(), permanent=permanent))
    return entries


def _dsn_texts(bounce: Bounce) -> list[str]:
    """The delivery-status parts, or the DSN fields written into the body of a message without MIME headers."""
    if bounce.delivery_status:
        return bounce.delivery_status
    start = _DSN_START.search(bounce.body)
    if start is None:
        return []
    end = _DSN_END.search(bounce.body, start.start())
    return [bounce.body[start.start() : end.start() if end else len(bounce.body)]]


_RECIPIENT_FIELDS = ("final-recipient", "x-actual-recipient", "original-recipient")
"""In the order a recipient is taken: the address the sender wrote comes before what an alias made of it."""


def _recipient(block: dict[str, str], listed: Listed | None) -> str:
    for name in _RECIPIENT_FIELDS:
        address = clean_address(untyped(block.get(name, "")))
        if address:
            return address
    if listed is None:
        return ""
    return clean_address(listed.address) or clean_address(listed.expanded_from)


def _pair(listed: list[Listed], blocks: list[dict[str, str]]) -> list[tuple[Listed | None, dict[str, str]]]:
    if not blocks:
        return [(entry, {}) for entry in listed]
    if len(blocks) == len(listed):
        return list(zip(listed, blocks, strict=True))
    pairs: list[tuple[Listed | None, dict[str, str]]] = []
    for block in blocks:
        names = {clean_address(untyped(block.get(name, ""))) for name in _RECIPIENT_FIELDS}
        match = next((entry for entry in listed if clean_address(entry.address) in names - {""}), None)
        pairs.append((match, block))
    return pairs


def diagnose(listed: Listed | None, address: str, transcript: Transcript) -> tuple[str, str, str]:
    """(diagnostic, command, remote host) for one address, from the list and the transcript."""
    reason = listed.reason if listed else ""
    line = transcript.line_for(listed.address if listed else address) or transcript.line_for(address)
    reply = line.reply if line is not None else None
    if reason and (reply is None or transcript.reply_starting(reason) not in (None, reply)):
        reply = transcript.reply_starting(reason) or reply
    if reply is not None and reply.lines:
        return reply.text, command_of(reply, transcript), reply.host
    if reason:
        return reason, "", ""
    if line is not None:
        return line.text, "", ""
    return "", "", ""


def gave_up(transcript_text: str) -> bool:
    """Sendmail's own statement that the queue lifetime ran out ("Message could not be delivered for 5 days")."""
    return bool(_GAVE_UP.search(transcript_text))


def _is_sendmail(bounce: Bounce) -> bool:
    if not _LIST_HEADER.search(bounce.body):
        return False
    return bool(
        _TRANSCRIPT_HEADER.search(bounce.body)
        or _SUBJECT.search(bounce.subject)
        or "mail delivery subsystem" in bounce.sender.lower()
        or re.search(r"^The original message was received at ", bounce.body, re.M)
    )


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_sendmail(bounce):
        return None
    listed = [entry for entry in _listed(bounce.body) if entry.address]
    per_message: dict[str, str] = {}
    blocks: list[dict[str, str]] = []
    for text in _dsn_texts(bounce):
        fields, recipients = split_delivery_status(text)
        for key, value in fields.items():
            per_message.setdefault(key, value)
        blocks.extend(recipients)
    if not listed and not blocks:
        return None  # a gateway's wrapper around another notice: its list is empty
    split = _TRANSCRIPT_HEADER.search(bounce.body)
    transcript_text = bounce.body[split.end() :] if split else ""
    transcript = read_transcript(transcript_text)
    expired = gave_up(transcript_text)
    findings: list[Finding] = []
    for entry, block in _pair(listed, blocks):
        recipient = _recipient(block, entry)
        if not recipient:
            continue
        diagnostic, command, host = diagnose(entry, recipient, transcript)
        action = block.get("action", "").split()[0] if block.get("action") else ""
        if not action:
            action = "failed" if entry is None or entry.permanent else "delayed"
        findings.append(
            Finding(
                recipient=recipient,
                action=action,
                status=block.get("status", ""),
                diagnostic=diagnostic or untyped(block.get("diagnostic-code", "")),
                remote_mta=untyped(block.get("remote-mta", "")) or host,
                reporting_mta=untyped(per_message.get("reporting-mta", "")),
                smtp_command=command,
                reason=Reason.EXPIRED if expired and action.lower() == "failed" else None,
                timestamp=block.get("last-attempt-date", "") or per_message.get("arrival-date", ""),
            )
        )
    return findings or None
