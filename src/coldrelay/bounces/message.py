"""Read a bounce email whatever its shape: line endings, charsets, MIME layout.

Real bounces arrive with CR-only line endings, mislabelled charsets (Shift_JIS
sent as ISO-2022-JP, UTF-7 from old Exchange), headers folded in odd places
and the returned message attached in four different ways. ``Bounce`` hides all
of that behind a few plain strings the format modules read.
"""

from __future__ import annotations

import codecs
import email
import email.header
import re
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32

_CHARSET_ALIASES = {
    "x-sjis": "cp932",
    "shift-jis": "cp932",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "ks_c_5601-1987": "cp949",
    "unicode-1-1-utf-7": "utf-7",
    "x-user-defined": "latin-1",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
_TAG = re.compile(r"<[^>]+>")
_LINE_BREAK = re.compile(rb"\r*\n|\r")
"""LF, CRLF, CR alone, and the CR-CR-LF that converting an already-CRLF file leaves, are all one break."""
_HTML_SPACE = re.compile(r"[ \t]*\n[ \t\n]*")
_ORIGINAL_SEPARATORS = re.compile(
    r"^(?:-+ ?Below this line is a copy of the message\.?|-+ ?This is a copy of the message.*|"
    r"-+ ?(?:The )?original message (?:follows|headers?)\b.*|-+ ?Original message.*|"
    r"-+ ?Forwarded message.*|-+ ?Returned mail follows.*|-+ ?Unsent message below.*|"
    r"-+ ?The header of the original message is following\.?.*|-+ ?Message header follows.*|"
    r"Original-Message-Headers?:.*|\s*----- Original message -----.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(raw: bytes, charset: str | None = None) -> str:
    """Text from bytes: the declared charset if it works, else the likely ones, never an exception."""
    tried: list[str] = []
    declared = _codec(charset)
    if b"\x1b$" in raw or b"\x1b(" in raw:
        tried.append("iso2022_jp")  # escape sequences: ISO-2022-JP whatever the label says
    if declared:
        tried.append(declared)
        if declared == "iso2022_jp":
            tried.append("iso2022_jp_ext")
    tried += ["utf-8", "cp932", "euc_jp"]
    for name in tried:
        try:
            return raw.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("utf-8", errors="replace")


def decode_header(value: str | None) -> str:
    """A header value with its encoded words (``=?ISO-2022-JP?B?...?=``) decoded."""
    if not value:
        return ""
    try:
        parts = email.header.decode_header(str(value))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return " ".join(str(value).split())
    out = []
    for chunk, charset in parts:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return " ".join("".join(out).split())


def part_text(part: Message) -> str:
    """The decoded text of one MIME part (transfer encoding and charset both undone)."""
    payload = part.get_payload(decode=True)
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    if not isinstance(payload, bytes):
        return str(payload)
    text = decode_bytes(payload, part.get_content_charset())
    if part.get_content_type() == "text/html":
        text = _HTML_SPACE.sub("\n", _TAG.sub(" ", re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)))
    return text


def load_message(data: bytes) -> Message:
    """Parse bytes into a message, with line endings unified and an mbox ``From`` line dropped."""
    data = _LINE_BREAK.sub(b"\n", data)
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return email.message_from_bytes(data.lstrip(b"\n"), policy=compat32)


@dataclass
class Bounce:
    """A bounce email reduced to what format modules read."""

    message: Message
    subject: str
    sender: str
    """The bounce's own From header (MAILER-DAEMON@..., postmaster@...)."""
    body: str
    """The human-readable text of the notification, without the returned message."""
    delivery_status: list[str] = field(default_factory=list)
    """Texts of message/delivery-status parts (RFC 3464), one per part."""
    feedback_report: str = ""
    """Text of a message/feedback-report part (RFC 5965)."""
    original: str = ""
    """Headers (and perhaps body) of the message that bounced, as text."""

    def header(self, name: str) -> str:
        """A header of the bounce itself, decoded."""
        return decode_header(self.message.get(name))

    @property
    def content_type(self) -> str:
        return self.message.get_content_type()

    def original_header(self, name: str) -> str:
        """A header of the returned message, when the bounce carries it."""
        return header_in(self.original, name)


def header_in(text: str, name: str) -> str:
    """First ``Name: value`` header in a block of text, with folded lines joined."""
    found = re.search(rf"^{re.escape(name)}:[ \t]*(.*(?:\n[ \t]+.*)*)", text, re.IGNORECASE | re.MULTILINE)
    return decode_header(" ".join(found.group(1).split())) if found else ""


def _walk(message: Message) -> list[Message]:
    try:
        return list(message.walk())
    except (TypeError, AttributeError):
        return [message]


def read_bounce(message: Message) -> Bounce:
    """Split a parsed message into the notification text, the DSN parts and the returned message."""
    plain_parts: list[str] = []
    html_parts: list[str] = []
    delivery_status: list[str] = []
    feedback = ""
    original = ""
    inside_original: set[int] = set()
    for part in _walk(message):
        if id(part) in inside_original:
            continue
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers", "message/partial"):
            if ctype.startswith("message/") and part.is_multipart():
                for inner in _walk(part):
                    inside_original.add(id(inner))
                payload = part.get_payload()
                inner_message = payload[0] if isinstance(payload, list) and payload else None
                if not original and isinstance(inner_message, Message):
                    # Headers plus a plain body; re-serialising the whole message costs more than the parse.
                    inner_body = inner_message.get_payload()
                    original = _headers_text(inner_message) + ("\n" + inner_body if isinstance(inner_body, str) else "")
            elif not original:
                original = part_text(part)
            continue
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            delivery_status.append(_delivery_status_text(part))
            continue
        if ctype == "message/feedback-report":
            feedback = _delivery_status_text(part)
            continue
        if part.is_multipart() or part.get_content_maintype() not in ("text", "application"):
            continue
        if ctype == "text/html":
            html_parts.append(part_text(part))
        elif ctype.startswith("text/") or part is message:
            plain_parts.append(part_text(part))
    body = "\n".join(plain_parts or html_parts).replace("\r\n", "\n").replace("\r", "\n")
    if not original:
        split = _ORIGINAL_SEPARATORS.search(body)
        if split:
            original = body[split.end() :].lstrip("\n")
            body = body[: split.start()]
    return Bounce(
        message=message,
        subject=decode_header(message.get("Subject")),
        sender=decode_header(message.get("From")),
        body=body,
        delivery_status=delivery_status,
        feedback_report=feedback,
        original=original,
    )


def _headers_text(message: Message) -> str:
    return "".join(f"{name}: {value}\n" for name, value in message.items())


def _delivery_status_text(part: Message) -> str:
    """The fields of a delivery-status part, whether the parser split them into sub-parts or not."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                blocks.append(_headers_text(block))
        return "\n".join(blocks)
    return part_text(part)
