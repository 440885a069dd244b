"""The delivery status notification a sender gets when recipients finally fail (RFC 3464, RFC 6522).

Three parts in a ``multipart/report; report-type=delivery-status``:

1. a ``text/plain`` note written for a cold-email sender: which recipients failed, the remote
   server's reply verbatim, and per knowledge-base article what the reply means, who must act and
   the article's fix steps, numbered, with its link. Recipients that share an article share one
   explanation, so a list that bounced 40 times on one cause reads as one cause, not 40 copies;
2. the ``message/delivery-status`` fields machines read (our own ``coldrelay.bounces`` among them);
3. ``text/rfc822-headers``: the original headers only. The body is never echoed: a cold email's
   body is the sender's copy, and mailing it back doubles the traffic for nothing.

The MIME is written by hand rather than with ``email``'s generator: the generator has no clean way
to emit a delivery-status part from text, and writing it here keeps every byte that goes into a
header under one sanitiser. Every value that comes from outside (recipients, reply lines, the
sender address, remote host names) passes through ``_one_line``, so a CR or LF in a recipient
string can never start a header or a field of its own.
"""

from __future__ import annotations

import re
import secrets
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import quoprimime
from email.header import Header, decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, make_msgid

from coldrelay.errors import PROVIDER_BY_SLUG, REASON_INFO, WHO_ACTS_MEANING, Diagnosis

ACTIONS = ("failed", "delayed")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_BASIC_CODE = re.compile(r"^\s*([245])\d\d(?![\d.])")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_WIDTH = 76  # fold delivery-status values so no line nears the 998-octet limit (RFC 5322 2.1.1)


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    """One recipient the DSN reports, with the reply that decided its fate and what it means."""

    recipient: str
    reply_line: str  # "550 5.1.1 <bob@x.test>: user unknown", or a synthetic one (null MX, gave up after 5 days)
    remote_host: str | None
    diagnosis: Diagnosis  # coldrelay.errors.explain(reply_line, remote_host=remote_host)
    action: str = "failed"  # or "delayed": a warning that delivery is still being retried
    last_attempt: datetime | None = None


def _one_line(value: str) -> str:
    """Control characters (CR and LF first of all) become single spaces; nothing else changes."""
    return " ".join(_CONTROL.sub(" ", value).split())


def _ascii(value: str) -> str:
    """A field value for the 7-bit delivery-status part: non-ASCII as RFC 6533 ``\\x{HEX}``."""
    return "".join(char if char.isascii() else f"\\x{{{ord(char):X}}}" for char in _one_line(value))


def _field(name: str, value: str) -> str:
    """``Name: value`` folded at spaces (continuation lines start with a space, as RFC 5322 folding does)."""
    lines = textwrap.wrap(
        f"{name}: {value}", width=_FIELD_WIDTH, break_long_words=False, break_on_hyphens=False, subsequent_indent=" "
    )
    return "\r\n".join(lines) if lines else f"{name}:"


def status_of(failure: FailedRecipient) -> str:
    """The Status field: the reply's enhanced code, else its class (5xx -> 5.0.0, 4xx -> 4.0.0).

    A synthetic line with no code at all takes the class of the action: a final failure is 5.0.0,
    a delay warning 4.0.0.
    """
    if failure.diagnosis.enhanced_code:
        return failure.diagnosis.enhanced_code
    basic = failure.diagnosis.basic_code
    if basic is None:
        found = _BASIC_CODE.match(failure.reply_line)
        basic = int(found.group(1)) * 100 if found else None
    if basic is not None and basic // 100 in (4, 5):
        return f"{basic // 100}.0.0"
    return "4.0.0" if failure.action == "delayed" else "5.0.0"


def _recipient_field(recipient: str) -> str:
    cleaned = _one_line(recipient)
    address_type = "rfc822" if cleaned.isascii() else "utf-8"  # RFC 6533 3: an internationalised address
    return f"{address_type}; {_ascii(cleaned)}"


def _delivery_status(
    *, reporting_mta: str, queue_id: str, arrival_date: datetime, failures: Sequence[FailedRecipient], now: datetime
) -> str:
    per_message = [
        _field("Reporting-MTA", f"dns; {_ascii(reporting_mta)}"),
        _field("X-Coldrelay-Queue-ID", _ascii(queue_id)),
        _field("Arrival-Date", format_datetime(arrival_date.astimezone(UTC))),
    ]
    blocks = ["\r\n".join(per_message)]
    for failure in failures:
        lines = [
            _field("Final-Recipient", _recipient_field(failure.recipient)),
            _field("Action", failure.action),
            _field("Status", status_of(failure)),
        ]
        if failure.remote_host:
            lines.append(_field("Remote-MTA", f"dns; {_ascii(failure.remote_host)}"))
        lines.append(_field("Diagnostic-Code", f"smtp; {_ascii(failure.reply_line)}"))
        lines.append(_field("Last-Attempt-Date", format_datetime((failure.last_attempt or now).astimezone(UTC))))
        blocks.append("\r\n".join(lines))
    return "\r\n\r\n".join(blocks) + "\r\n"


def _original_headers(original_message: bytes) -> bytes:
    """The header block of the original message with CRLF line ends (no body)."""
    found = _HEADER_END.search(original_message)
    head = original_message[: found.start()] if found else original_message
    lines = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return b"".join(line + b"\r\n" for line in lines if line)


def _decoded(value: str | None) -> str:
    if not value:
        return ""
    try:
        return _one_line(str(make_header(decode_header(value))))
    except (ValueError, LookupError, UnicodeError):
        return _one_line(value)


def _subject_and_id(headers: bytes) -> tuple[str, str]:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(headers)
    return _decoded(parsed.get("Subject")), _one_line(str(parsed.get("Message-ID") or ""))


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def _paragraphs(markdown: str) -> list[str]:
    """Markdown text as paragraphs and list items, each on one line (the source wraps them anywhere)."""
    items: list[str] = []
    for block in re.split(r"\n\s*\n", markdown.strip()):
        first = True
        for line in block.splitlines():
            if not line.strip():
                continue
            if first or _LIST_ITEM.match(line):
                items.append(line.strip())
                first = False
            else:
                items[-1] = f"{items[-1]} {line.strip()}"
    return items


def _wrap(text: str, indent: str, hanging: str = "") -> list[str]:
    """One paragraph wrapped to 76 columns under ``indent`` (continuation lines get ``hanging`` more)."""
    return textwrap.wrap(
        _one_line(text), width=76, initial_indent=indent, subsequent_indent=indent + hanging, break_on_hyphens=False
    ) or [indent.rstrip()]


def _explanation(group: list[FailedRecipient], base_url: str) -> list[str]:
    """What one cause means and how to fix it, for every recipient it hit."""
    diagnosis = group[0].diagnosis
    names = ", ".join(_one_line(f.recipient) for f in group)
    lines = _wrap(names if len(group) == 1 else f"{len(group)} recipients: {names}", "", "  ")
    provider = PROVIDER_BY_SLUG.get(diagnosis.provider) if diagnosis.provider else None
    if provider is not None:
        lines += _wrap(f"Receiving provider: {provider.name}", "  ", "  ")
    lines += _wrap(f"Reason: {diagnosis.reason.value} - {REASON_INFO[diagnosis.reason].meaning}", "  ", "  ")
    lines += _wrap(f"Who must act: {diagnosis.who_acts.value} - {WHO_ACTS_MEANING[diagnosis.who_acts]}", "  ", "  ")
    if diagnosis.hard_bounce:
        lines += _wrap(
            "Hard bounce: the address is bad for good. Remove it from every list and sequence; mailing it"
            " again raises your bounce rate and hurts every other campaign.",
            "  ",
            "  ",
        )
    entry = diagnosis.entry
    if entry is None:
        lines += _wrap(f"What the codes say: {diagnosis.meaning}", "  ", "  ")
        return lines
    lines += _wrap(f"Article: {entry.title}", "  ", "  ")
    if entry.summary:
        lines += _wrap(entry.summary, "  ")
    if entry.fix_steps:
        lines.append("  How to fix it:")
        for number, step in enumerate(entry.fix_steps, start=1):
            lines += _wrap(f"{number}. {step.title}", "    ", "   ")
            for paragraph in _paragraphs(step.instructions):
                lines += _wrap(paragraph, "       ", "  " if _LIST_ITEM.match(paragraph) else "")
    lines.append(f"  Read more: {base_url.rstrip('/')}{entry.url}")
    return lines


def _human_part(*, reporting_mta: str, queue_id: str, subject: str, failures: Sequence[FailedRecipient], base_url: str) -> str:
    delayed_only = all(f.action == "delayed" for f in failures)
    count = len(failures)
    plural = "s" if count != 1 else ""
    if delayed_only:
        opening = f"Your message has not reached {count} recipient{plural} yet. The mail system keeps trying;"
        closing = "you need do nothing unless a final failure notice follows."
    else:
        opening = f"Your message could not be delivered to {count} recipient{plural}. The mail system has"
        closing = "stopped trying: these recipients will not get it."
    lines = [
        f"This is the mail system at {_one_line(reporting_mta)}.",
        "",
        opening,
        closing,
        "",
        f"Message: {subject or '(no subject)'}",
        f"Queue ID: {_one_line(queue_id)}",
        "",
        "What the receiving servers replied (verbatim):",
        "",
    ]
    for failure in failures:
        where = f" (from {_one_line(failure.remote_host)})" if failure.remote_host else ""
        lines.append(f"  {_one_line(failure.recipient)}{where}:")
        lines.append(f"    {_one_line(failure.reply_line)}")
    lines += ["", "What it means and what to do:", ""]
    groups: dict[tuple[str, str], list[FailedRecipient]] = {}
    for failure in failures:
        entry = failure.diagnosis.entry
        key = (entry.slug if entry is not None else "", failure.diagnosis.reason.value)
        groups.setdefault(key, []).append(failure)
    for group in groups.values():
        lines.extend(_explanation(group, base_url))
        lines.append("")
    lines.append("The delivery report for mail software and the original message headers are attached.")
    return "\n".join(lines) + "\n"


def _subject(failures: Sequence[FailedRecipient]) -> str:
    delayed_only = all(f.action == "delayed" for f in failures)
    first = _one_line(failures[0].recipient)
    more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
    return f"{'Delivery delayed' if delayed_only else 'Undeliverable'}: your message to {first}{more}"


def _header(name: str, value: str) -> str:
    """``Name: value`` on one logical line, folded with CRLF; RFC 2047-encoded when not ASCII (the Subject)."""
    value = _one_line(value)
    charset = "us-ascii" if value.isascii() else "utf-8"
    return f"{name}: " + Header(value, charset, header_name=name, maxlinelen=78).encode(linesep="\r\n")


def _address(value: str) -> str:
    """An addr-spec for From/To: one line, no angle brackets of its own."""
    return _one_line(value).replace("<", "").replace(">", "").replace(" ", "")


def build_dsn(
    *,
    reporting_mta: str,
    original_sender: str,
    queue_id: str,
    arrival_date: datetime,
    original_message: bytes,
    failures: Sequence[FailedRecipient],
    now: datetime | None = None,
    base_url: str = "",
) -> bytes:
    """The complete DSN message (CRLF line ends), ready to store or enqueue with the null sender.

    ``base_url`` prefixes the knowledge-base article paths (``/smtp-errors/<slug>``) in the human
    part, e.g. ``https://coldrelay.example``; empty leaves the bare path.
    """
    if not _one_line(original_sender):
        raise ValueError("no DSN is sent for a message with the null reverse-path (RFC 5321 6.1)")
    if not failures:
        raise ValueError("a DSN needs at least one recipient to report")
    for failure in failures:
        if failure.action not in ACTIONS:
            raise ValueError(f"DSN action must be one of {', '.join(ACTIONS)}, not {failure.action!r}")
    now = now or datetime.now(UTC)
    reporting = _address(reporting_mta) or "localhost"
    headers_part = _original_headers(original_message)
    subject, original_id = _subject_and_id(headers_part)
    human = _human_part(reporting_mta=reporting, queue_id=queue_id, subject=subject, failures=failures, base_url=base_url)
    # quoprimime encodes characters below 256 one to one: hand it the UTF-8 bytes as latin-1 characters.
    human_bytes_as_text = human.encode("utf-8").decode("latin-1")
    human_body = quoprimime.body_encode(human_bytes_as_text, maxlinelen=76, eol="\r\n").encode("ascii")
    status_body = _delivery_status(
        reporting_mta=reporting, queue_id=queue_id, arrival_date=arrival_date, failures=failures, now=now
    ).encode("ascii")
    parts = [
        (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n", human_body),
        (b"Content-Type: message/delivery-status\r\n", status_body),
        (
            b"Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: "
            + (b"7bit" if headers_part.isascii() else b"8bit")
            + b"\r\n",
            headers_part,
        ),
    ]
    boundary = _boundary([body for _head, body in parts])
    top = [
        _header("From", f'"Mail Delivery System" <MAILER-DAEMON@{reporting}>'),
        f"To: <{_address(original_sender)}>",  # raw: an SMTPUTF8 address cannot be RFC 2047-encoded
        _header("Subject", _subject(failures)),
        f"Date: {format_datetime(now.astimezone(UTC))}",
        f"Message-ID: {make_msgid(domain=reporting)}",
        "Auto-Submitted: auto-replied",  # RFC 3834 5: an automatic answer; auto-responders must not reply
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="{boundary}"',
    ]
    if original_id.startswith("<") and original_id.endswith(">") and " " not in original_id:
        top.insert(5, f"In-Reply-To: {original_id}")  # mail clients thread the notice under the message it is about
    out = bytearray("\r\n".join(top).encode("utf-8") + b"\r\n\r\n")
    out += b"This is a MIME-encapsulated delivery status notification.\r\n"
    for head, body in parts:
        out += b"\r\n--" + boundary.encode("ascii") + b"\r\n" + head + b"\r\n" + body
        if not body.endswith(b"\r\n"):
            out += b"\r\n"
    out += b"\r\n--" + boundary.encode("ascii") + b"--\r\n"
    return bytes(out)


def _boundary(bodies: list[bytes]) -> str:
    """A random boundary no part contains (RFC 2046 5.1.1), so no original header can end a part early."""
    while True:
        boundary = f"=_coldrelay_dsn_{secrets.token_hex(12)}"
        if not any(boundary.encode("ascii") in body for body in bodies):
            return boundary
