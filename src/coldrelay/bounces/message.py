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
import functools
import re
from dataclasses import dataclass, field

from coldrelay.bounces.mime import Part, parse_headers, parse_part

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
_FIRST_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:", re.MULTILINE)
_CR_RUNS = re.compile(rb"\r+")
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


@functools.lru_cache(maxsize=4096)
def decode_header(value: str | None) -> str:
    """A header value with its encoded words (``=?ISO-2022-JP?B?...?=``) decoded."""
    if not value:
        return ""
    if "=?" not in value:  # no encoded words: only raw 8-bit bytes may need a charset guess
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = decode_bytes(value.encode("utf-8", errors="surrogateescape"))
        return " ".join(value.split())
    try:
        parts = email.header.decode_header(str(value))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return " ".join(str(value).split())
    out = []
    for chunk, charset in parts:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return " ".join("".join(out).split())


def part_text(part: Part) -> str:
    """The decoded text of one MIME part (transfer encoding and charset both undone)."""
    text = decode_bytes(part.payload(), part.charset)
    if part.content_type == "text/html":
        text = _HTML_SPACE.sub("\n", _TAG.sub(" ", re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)))
    return text


class Headers:
    """The bounce's own headers, read-only, with the lookups format modules use (like ``email.message``'s)."""

    __slots__ = ("_items", "_lowered")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._lowered = [(name.lower(), value) for name, value in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for key, value in self._lowered:
            if key == wanted:
                return value
        return default

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        wanted = name.lower()
        found = [value for key, value in self._lowered if key == wanted]
        return found or default

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def get_content_type(self) -> str:
        value = self.get("Content-Type") or "text/plain"
        main = value.split(";", 1)[0].strip().lower()
        return main if "/" in main else "text/plain"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


@dataclass
class Bounce:
    """A bounce email reduced to what format modules read."""

    message: Headers
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
    attached: list[bytes] = field(default_factory=list)
    """Raw bytes of each attached message (message/rfc822): a gateway may wrap a whole bounce."""

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
    """First ``Name: value`` header in a block of text, with folded lines joined and encoded words decoded."""
    return _headers_of(text).get(name.lower(), "")


@functools.lru_cache(maxsize=64)
def _headers_of(text: str) -> dict[str, str]:
    """The header block at the start of ``text`` (or the first one in it), by lowercase name.

    Format modules and the classifier ask the returned message for From, To,
    Subject and Message-ID many times; reading its headers once is enough.
    """
    start = _FIRST_HEADER.search(text)
    if start is None:
        return {}
    block = text[start.start() :]
    end = block.find("\n\n")
    headers: dict[str, str] = {}
    for name, value in parse_headers((block if end < 0 else block[:end]).encode("utf-8", errors="surrogateescape")):
        headers.setdefault(name.lower(), decode_header(value))
    return headers


def normalise(data: bytes) -> bytes:
    """One line-break style and no mbox ``From`` line: what every reader below expects."""
    if b"\r" in data:
        if b"\n" not in data and b"\r\r" in data:
            data = _undouble_crs(data)
        data = _LINE_BREAK.sub(b"\n", data)
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return data.lstrip(b"\n")


def _undouble_crs(data: bytes) -> bytes:
    """Undo a CRLF file whose LFs were turned into CRs: each CR CR pair was one line break.

    A real CR-only file ends most lines with a single CR; when nearly every run
    of CRs is two or more long, the file was CRLF once, and a run of n CRs
    stands for n/2 breaks (rounded up where a bare LF line was mixed in).
    """
    runs = _CR_RUNS.findall(data)
    if sum(1 for run in runs if len(run) >= 2) < 0.8 * len(runs):
        return data
    return _CR_RUNS.sub(lambda run: b"\r" * ((len(run.group()) + 1) // 2), data)


def read_bounce(data: bytes) -> Bounce:
    """Split raw bytes into the notification text, the DSN parts and the returned message."""
    root = parse_part(normalise(data))
    plain_parts: list[str] = []
    html_parts: list[str] = []
    delivery_status: list[str] = []
    feedback = ""
    original = ""
    attached: list[bytes] = []
    skip: set[int] = set()
    for part in root.walk():
        if id(part) in skip:
            continue
        ctype = part.content_type
        if ctype in ("message/rfc822", "message/global"):
            for inner in part.walk()[1:]:
                skip.add(id(inner))
            if not original and part.children:
                original = _original_text(part.children[0])
            attached.append(part.payload())
            continue
        if ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/partial"):
            original = original or part_text(part)
            continue
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            delivery_status.append(decode_bytes(part.payload(), part.charset))
            continue
        if ctype == "message/feedback-report":
            feedback = decode_bytes(part.payload(), part.charset)
            continue
        if part.children or not (ctype.startswith("text/") or part is root):
            continue
        if ctype == "text/html":
            html_parts.append(part_text(part))
        else:
            plain_parts.append(part_text(part))
    body = "\n".join(plain_parts or html_parts)
    if not original:
        split = _ORIGINAL_SEPARATORS.search(body)
        if split:
            original = body[split.end() :].lstrip("\n")
            body = body[: split.start()]
    return Bounce(
        message=Headers(root.headers),
        subject=decode_header(root.get("Subject")),
        sender=decode_header(root.get("From")),
        body=body,
        delivery_status=delivery_status,
        feedback_report=feedback,
        original=original,
        attached=attached,
    )


def _original_text(message: Part) -> str:
    """Headers of the returned message, plus its text when it is a simple one-part message."""
    headers = "".join(f"{name}: {value}\n" for name, value in message.headers)
    if message.children or not message.content_type.startswith("text/"):
        return headers
    return f"{headers}\n{part_text(message)}"
