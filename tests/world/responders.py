"""What comes back after a 250: asynchronous bounces, out-of-office replies and human replies.

Receivers only queue these (:meth:`Responder.queue`) while they answer SMTP; the test decides when
they travel by calling :meth:`Responder.flush`, so a run is deterministic: every message is delivered
before the first reply lands. Each one goes to coldrelay's MX over SMTP like a provider's outbound
mail would (opportunistic STARTTLS, the MX host name as HELO) and the MX's answer goes in the ledger.

- bounce: RFC 3464 ``multipart/report`` from the null sender; its ``text/rfc822-headers`` part holds
  the original header block, so the Message-ID links the bounce to the queued message.
- auto-reply: RFC 3834 (``Auto-Submitted: auto-replied``, null MAIL FROM, to the envelope sender).
- reply: a person answering: ``Re: <subject>``, In-Reply-To and References the original Message-ID.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.utils import formatdate, make_msgid

from world.ledger import AsyncEvent, Ledger

__all__ = ["PendingEvent", "Responder", "build_auto_reply", "build_dsn", "build_reply", "header_block"]

_ENHANCED = re.compile(r"^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b")
_KINDS = ("bounce", "auto-reply", "reply")


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An answer a receiver owes for a message it accepted."""

    kind: str
    recipient: str
    sender: str
    """The original MAIL FROM (where bounces and auto-replies go)."""
    author: str
    """The original From address (where a person's reply goes); the sender when there is none."""
    provider: str
    mx_host: str
    original: bytes
    """The original message as received (headers are quoted from it)."""
    message_id: str
    subject: str
    diagnostic: str | None = None


def header_block(message: bytes) -> bytes:
    """The header section of ``message`` without the blank line, CRLF line ends."""
    head = message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return head.replace(b"\n", b"\r\n")


def _lines(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def build_dsn(event: PendingEvent, message_id: str) -> bytes:
    """An RFC 3464 failure report for ``event.recipient`` quoting ``event.diagnostic``."""
    diagnostic = event.diagnostic or "550 5.1.1 user unknown"
    match = _ENHANCED.match(diagnostic)
    status = match.group(1) if match else "5.1.1"
    boundary = "dsn-" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
    head = _lines(
        f"From: Mail Delivery Subsystem <mailer-daemon@{event.mx_host}>",
        f"To: {event.sender}",
        "Subject: Delivery Status Notification (Failure)",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"Your message to {event.recipient} could not be delivered. The remote server answered:",
        "",
        f"    {diagnostic}",
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {event.mx_host}",
        "",
        f"Final-Recipient: rfc822; {event.recipient}",
        "Action: failed",
        f"Status: {status}",
        f"Remote-MTA: dns; {event.mx_host}",
        f"Diagnostic-Code: smtp; {diagnostic}",
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    )
    return head + header_block(event.original) + _lines("", f"--{boundary}--")


def build_auto_reply(event: PendingEvent, message_id: str) -> bytes:
    """An RFC 3834 out-of-office answer from ``event.recipient``."""
    return _lines(
        f"From: {event.recipient}",
        f"To: {event.sender}",
        f"Subject: Automatic reply: {event.subject}",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: {message_id}",
        f"In-Reply-To: {event.message_id}",
        f"References: {event.message_id}",
        "Auto-Submitted: auto-replied",
        "X-Auto-Response-Suppress: All",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "I am out of the office until Monday with limited access to email.",
        "For urgent matters please contact the office.",
    )


def build_reply(event: PendingEvent, message_id: str) -> bytes:
    """A person's answer: ``Re:`` subject, In-Reply-To and References, the original quoted."""
    subject = event.subject if event.subject.lower().startswith("re:") else f"Re: {event.subject}"
    return _lines(
        f"From: {event.recipient}",
        f"To: {event.author}",
        f"Subject: {subject}",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: {message_id}",
        f"In-Reply-To: {event.message_id}",
        f"References: {event.message_id}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Thanks for reaching out - yes, I am the right person. Could you send more details?",
        "",
        f"> (your message {event.message_id})",
    )


class Responder:
    """Holds the world's pending answers and delivers them to coldrelay's MX on :meth:`flush`."""

    def __init__(self, ledger: Ledger, our_mx: str | None = None, *, timeout: float = 10.0) -> None:
        self.ledger = ledger
        self.our_mx = our_mx
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pending: list[PendingEvent] = []

    def queue(self, event: PendingEvent) -> None:
        if event.kind not in _KINDS:
            raise ValueError(f"unknown event kind {event.kind!r}: use one of {', '.join(_KINDS)}")
        with self._lock:
            self._pending.append(event)

    @property
    def pending(self) -> list[PendingEvent]:
        with self._lock:
            return list(self._pending)

    def flush(self, our_mx: str | None = None) -> list[AsyncEvent]:
        """Send every pending answer to ``our_mx`` (``host:port``), record each in the ledger, return them."""
        target = our_mx or self.our_mx
        if not target:
            raise ValueError("no address for coldrelay's MX: pass our_mx='127.0.0.1:PORT'")
        host, _, port_text = target.rpartition(":")
        if not host or not port_text.isdigit():
            raise ValueError(f"our_mx must be host:port, not {target!r}")
        with self._lock:
            batch, self._pending = self._pending, []
        sent = []
        for event in batch:
            message_id = make_msgid(domain=event.mx_host)
            if event.kind == "bounce":
                data, mail_from, to = build_dsn(event, message_id), "", event.sender
            elif event.kind == "auto-reply":
                data, mail_from, to = build_auto_reply(event, message_id), "", event.sender
            else:
                data, mail_from, to = build_reply(event, message_id), event.recipient, event.author
            answer = self._send(host, int(port_text), event.mx_host, mail_from, to, data)
            record = AsyncEvent(
                event.kind,
                event.recipient,
                to,
                event.provider,
                event.mx_host,
                event.message_id,
                message_id,
                event.diagnostic,
                answer,
            )
            self.ledger.record_event(record)
            sent.append(record)
        return sent

    def _send(self, host: str, port: int, helo: str, mail_from: str, to: str, data: bytes) -> str:
        """One SMTP transaction; the final answer as one line, or ``error: ...`` (never raises)."""
        try:
            with smtplib.SMTP(host, port, local_hostname=helo, timeout=self.timeout) as client:
                client.ehlo()
                if client.has_extn("starttls"):
                    # Opportunistic, as between real MTAs: coldrelay's MX may use a self-signed certificate.
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    client.starttls(context=context)
                    client.ehlo()
                for code, text in (client.mail(mail_from), client.rcpt(to)):
                    if code >= 300:
                        return f"{code} {text.decode('utf-8', 'replace')}"
                code, text = client.data(data)
                return f"{code} {text.decode('utf-8', 'replace')}"
        except (OSError, smtplib.SMTPException) as exc:
            return f"error: {exc}"
