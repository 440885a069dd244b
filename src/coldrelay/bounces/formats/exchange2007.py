"""Microsoft Exchange 2007 and later (on premises): "Undeliverable:" non-delivery reports.

Exchange writes a human part ("Delivery has failed to these recipients or
groups:", then ``Name<mailto:address>`` and an explanation), then a section for
administrators: "Generating server: host", and per recipient the address, the
remote host perhaps, and the reply as ``#550 5.1.1 RESOLVER... ##`` or
``Remote Server returned '550 ...'``. The human part is localised; the
administrators' lines keep their English keywords. A DSN part usually follows,
but not always: the text alone must be enough. ``office365`` reuses the reader.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS, clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "exchange2007"
PRIORITY = 30

_ONLY_ADDRESS = re.compile(rf"^\s*<?({ADDRESS.pattern})>?\s*$")
_HOSTNAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+)\.?(?:\s+\([0-9a-fA-F.:]+\))?\s*$")
_MAILTO = re.compile(rf"<mailto:({ADDRESS.pattern})>", re.IGNORECASE)
_HEADER_LINE = re.compile(
    r"^(?:Received|Return-Path|DKIM-Signature|ARC-[\w-]+|Authentication-Results|Message-ID|MIME-Version|"
    r"Content-Type|X-[\w-]+):[ \t]",
    re.IGNORECASE,
)
_RETURNED = re.compile(r"\breturned\s+'", re.IGNORECASE)
_REMOTE_AT = re.compile(r"Remote Server at\s+(\S+)", re.IGNORECASE)
_HASHED = re.compile(r"^\s*#\s*(.*?)\s*##\s*$", re.DOTALL)
_DISPLAYED = re.compile(r"#<\s*#(\d\.\d{1,3}\.\d{1,3})\s+(?:smtp;\s*)?(.*?)>\s*#SMTP#", re.IGNORECASE | re.DOTALL)
_GENERATING = re.compile(
    r"^\s*(?:Generating server|Server di generazione|Generierender Server|Serveur de g\S+ration|Servidor de generaci\S+n"
    r"|生成サーバー)\s*:\s*(\S+)",
    re.IGNORECASE | re.MULTILINE,
)
_RECEIVING = re.compile(
    r"^\s*(?:Receiving server|Server di ricezione|Empfangender Server|Serveur de r\S+ception)\s*:\s*(\S+)", re.I | re.M
)
_REPORTED = re.compile(r"^\s*Reported error:\s*(.+)$", re.MULTILINE)
_RECIPIENT_ADDRESS = re.compile(rf"^\s*Recipient Address:\s*<?({ADDRESS.pattern})", re.MULTILINE)
_REMOTE_SERVER = re.compile(r"^\s*Remote server:\s*(\S+)", re.MULTILINE)
_STATUS_CODE = re.compile(r"^\s*Status code:\s*([245]\d\d(?:\s+[245]\.\d{1,3}\.\d{1,3})?)", re.MULTILINE)
_COULD_NOT = re.compile(rf"Your message to\s+<?({ADDRESS.pattern})>?\s+couldn'?\S?t be delivered", re.IGNORECASE)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_DELAYED = re.compile(r"^\s*Delivery is delayed to these recipients|This message hasn'?\S?t been delivered yet", re.I | re.M)
_DELAY_SUBJECT = re.compile(r"^Delivery delayed:|\(Delay\)", re.IGNORECASE)
_NOISE = re.compile(r"^(?:_{5,}|-{5,}|\[https?://\S+\])$")

_NDR_LINES = re.compile(
    r"^\s*(?:Diagnostic information for administrators|Generating server\s*:|Delivery has failed to these recipients"
    r"|Delivery is delayed to these recipients"
    r"|Informazioni di diagnostica per gli amministratori|Diagnoseinformationen f\S+r Administratoren"
    r"|Informations de diagnostic pour les administrateurs|Informaci\S+n de diagn\S+stico para administradores)"
    r"|^\s*#[245]\d\d [245]\.\d{1,3}\.\d{1,3} .*##\s*$|^\s*Remote Server (?:at \S+ .*)?returned '",
    re.IGNORECASE | re.MULTILINE,
)
"""Lines only an Exchange 2007+ NDR writes."""

# The NDR header or one of the lines above (each contains one of these literals) is required.
MARKERS = (
    "x-ms-exchange-message-is-ndr",
    "diagnostic information for administrators",
    "generating server",
    "delivery has failed to these recipients",
    "delivery is delayed to these recipients",
    "informazioni di diagnostica per gli amministratori",
    "diagnoseinformationen f",
    "informations de diagnostic pour les administrateurs",
    "stico para administradores",
    "##",
    "returned '",
)


def is_exchange_ndr(bounce: Bounce) -> bool:
    """The report carries Exchange's NDR header or its administrators' section."""
    if bounce.message.get("X-MS-Exchange-Message-Is-Ndr") is not None:
        return True
    return bool(_NDR_LINES.search(_report_text(bounce.body)))


def _report_text(body: str) -> str:
    """The body without the original headers Exchange appends to it."""
    lines = body.split("\n")
    for index, line in enumerate(lines):
        if _HEADER_LINE.match(line) and index > 0:
            return "\n".join(lines[:index])
    return body


def _unquote(text: str) -> str:
    """The reply inside ``returned '...'``, ``#... ##`` or ``#< #5.1.1 smtp;... > #SMTP#``."""
    text = " ".join(text.split())
    found = _RETURNED.search(text)
    if found:
        inner = text[found.end() :].strip()
        return inner[:-1].strip() if inner.endswith("'") else inner
    shown = _DISPLAYED.search(text)
    if shown:
        return shown.group(2).strip()
    hashed = _HASHED.match(text)
    if hashed:
        return hashed.group(1).strip()
    return text


def _attempts(lines: list[str]) -> list[str]:
    """Reply lines of one recipient: each ``returned '`` line starts a new attempt, the latest first."""
    attempts: list[str] = []
    for line in lines:
        if _RETURNED.search(line) or not attempts:
            attempts.append(line)
        else:
            attempts[-1] = f"{attempts[-1]} {line.strip()}"
    return attempts


def admin_blocks(body: str) -> list[Finding]:
    """One finding per recipient of the administrators' section (address line, host, reply)."""
    text = _report_text(body)
    start = _GENERATING.search(text)
    reporting = start.group(1) if start else ""
    receiving = _RECEIVING.search(text)
    section = text[start.end() :] if start else text
    findings: list[Finding] = []
    current: Finding | None = None
    lines: list[str] = []

    def close() -> None:
        if current is None:
            return
        replies = [line for line in _attempts(lines) if line.strip()]
        if replies:
            reply = _unquote(replies[0])
            remote = _REMOTE_AT.search(replies[0])
            if remote and not current.remote_mta:
                current.remote_mta = remote.group(1)
            current.diagnostic = reply
            status = _STATUS.search(reply) or _STATUS.search(replies[0])
            current.status = status.group(1) if status else ""
        findings.append(current)

    for raw in section.split("\n"):
        line = raw.strip()
        address = _ONLY_ADDRESS.match(line)
        if address:
            close()
            current = Finding(
                recipient=address.group(1),
                action="failed",
                reporting_mta=reporting,
                remote_mta=receiving.group(1) if receiving else "",
            )
            lines = []
            continue
        if current is None:
            continue
        if not line:
            if lines:
                close()
                current, lines = None, []
            continue
        host = _HOSTNAME.match(line)
        if host and not lines:
            current.remote_mta = host.group(1)
            continue
        lines.append(line)
    close()
    return [finding for finding in findings if finding.diagnostic or finding.status]


def human_blocks(body: str) -> list[Finding]:
    """Recipients of the human part: ``Name<mailto:address>`` and the paragraph that explains it."""
    text = _report_text(body)
    findings: list[Finding] = []
    paragraphs = re.split(r"\n\s*\n", text)
    for paragraph in paragraphs:
        found = _MAILTO.search(paragraph)
        if not found:
            continue
        rest = paragraph[found.end() :]
        explanation = " ".join(line.strip() for line in rest.split("\n") if line.strip() and not _NOISE.match(line.strip()))
        if any(f.recipient == found.group(1).lower() for f in findings):
            continue
        findings.append(Finding(recipient=found.group(1).lower(), action="failed", diagnostic=explanation))
    return findings


def details_block(body: str) -> list[Finding]:
    """The newer Exchange Online layout: "Recipient Address:", "Reported error:", "Remote server:"."""
    recipient = _RECIPIENT_ADDRESS.search(body) or _COULD_NOT.search(body)
    reported = _REPORTED.search(body)
    code = _STATUS_CODE.search(body)
    if not recipient or not (reported or code):
        return []
    remote = _REMOTE_SERVER.search(body)
    diagnostic = reported.group(1).strip() if reported else (code.group(1) if code else "")
    status = _STATUS.search(diagnostic)
    return [
        Finding(
            recipient=recipient.group(1),
            action="failed",
            diagnostic=diagnostic,
            status=status.group(1) if status else "",
            remote_mta=remote.group(1) if remote else "",
        )
    ]


def ndr_findings(bounce: Bounce) -> list[Finding]:
    """Findings of an Exchange NDR: the DSN when it has one, completed from the text, else the text alone."""
    from_text = admin_blocks(bounce.body) or details_block(bounce.body)
    human = human_blocks(bounce.body)
    if _DELAYED.search(bounce.body) or _DELAY_SUBJECT.search(bounce.subject):
        for finding in (*from_text, *human):
            finding.action = "delayed"
    by_recipient = {clean_address(f.recipient): f for f in from_text}
    for finding in human:
        by_recipient.setdefault(clean_address(finding.recipient), finding)
    dsn = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    if dsn:
        for finding in dsn:
            known = by_recipient.get(clean_address(finding.recipient))
            if known is None:
                continue
            if not finding.diagnostic:
                finding.diagnostic = known.diagnostic
            finding.remote_mta = finding.remote_mta or known.remote_mta
        return dsn
    if from_text:
        seen = {clean_address(f.recipient) for f in from_text}
        return from_text + [f for f in human if clean_address(f.recipient) not in seen]
    return human


def parse(bounce: Bounce) -> list[Finding] | None:
    if not is_exchange_ndr(bounce):
        return None
    return ndr_findings(bounce) or None
