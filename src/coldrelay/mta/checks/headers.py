"""The header section of a message as raw bytes: split it into fields, drop some, add one on top.

The MX hands the pipeline the message exactly as received (CRLF line endings). Going through
``email.message`` would re-fold and re-encode header fields and break the DKIM signatures that the
next hop, or the mailbox's owner, may still want to check, so these helpers cut bytes and nothing more.
"""

from __future__ import annotations

import re

_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)")


def split_header(message: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its continuation lines and line endings) and the rest (blank line and body).

    The header section ends at the first empty line, or at the first line that is neither a field nor a
    continuation (a malformed message: that line and all after it are left as the rest, unchanged).
    """
    fields: list[bytes] = []
    pos = 0
    while pos < len(message):
        end = message.find(b"\n", pos)
        end = len(message) if end < 0 else end + 1
        line = message[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif b":" in line and line[:1] not in (b" ", b"\t"):
            fields.append(line)
        else:
            break
        pos = end
    return fields, message[pos:]


def field_name(field: bytes) -> str:
    """The field's name, lower case (``Authentication-Results`` -> ``authentication-results``)."""
    return field.split(b":", 1)[0].strip().decode("ascii", errors="replace").lower()


def field_value(field: bytes) -> str:
    """The field's value, unfolded (continuation line breaks removed), outer whitespace stripped."""
    raw = field.split(b":", 1)[1] if b":" in field else b""
    return re.sub(rb"\r?\n(?=[ \t])", b"", raw).strip().decode("utf-8", errors="replace")


def authserv_id(field: bytes) -> str:
    """The authserv-id an ``Authentication-Results`` field claims (RFC 8601 2.2), lower case; comments skipped."""
    raw = field.split(b":", 1)[1] if b":" in field else b""
    raw = re.sub(rb"\r?\n(?=[ \t])", b"", raw)
    previous = None
    while previous != raw:  # nested comments: strip from the inside out
        previous, raw = raw, _COMMENT.sub(b" ", raw)
    first = raw.split(b";", 1)[0].split()
    return first[0].decode("utf-8", errors="replace").strip('"').lower().rstrip(".") if first else ""


def remove_authentication_results(message: bytes, hostname: str) -> tuple[bytes, int]:
    """The message without any ``Authentication-Results`` field that claims ``hostname`` as its authserv-id.

    RFC 8601 section 5: a border MTA removes such fields arriving from outside, since only it may speak
    for its own authserv-id; fields of other authserv-ids are left alone. Returns the message and how many
    fields were removed.
    """
    fields, rest = split_header(message)
    own = hostname.lower().rstrip(".")
    kept = [f for f in fields if not (field_name(f) == "authentication-results" and authserv_id(f) == own)]
    removed = len(fields) - len(kept)
    if not removed:
        return message, 0
    return b"".join(kept) + rest, removed


def prepend_field(message: bytes, field: str) -> bytes:
    """The message with ``field`` (no line ending; CRLF folding inside is fine) added above every other field."""
    ending = b"\n" if b"\r\n" not in message[:4096] and b"\n" in message[:4096] else b"\r\n"
    encoded = field.encode("ascii").replace(b"\r\n", ending)
    return encoded + ending + message
