"""One provider's inbound MX on 127.0.0.1: aiosmtpd, a trustme certificate, and the provider's own replies.

What each recipient gets is scripted by its local part (:func:`treatment_for`), so a test knows every
answer in advance:

    unknown-*       rejected at RCPT with the provider's user-unknown text (final)
    grey-*          the provider's temporary refusal on the first RCPT (per client IP, sender,
                    recipient, as greylisting keys it), accepted from the second on
    bounce-later-*  accepted, then an RFC 3464 bounce with the user-unknown text (flushed later)
    ooo-*           accepted, then an RFC 3834 out-of-office reply
    reply-*         accepted, then a human reply to the From address
    anything else   accepted

On top of the script, per message: MAIL FROM before STARTTLS is refused (530) when the profile
requires TLS; past ``rate_limit`` accepted messages per ``rate_window`` seconds from one client IP
the end of DATA gets the provider's rate-limit reply (a 421 also hangs up); a message whose SPF and
DKIM both fail gets the provider's unauthenticated text, one failing DMARC under p=reject or
quarantine the provider's DMARC text. Every answer goes to the :class:`~world.ledger.Ledger`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

import trustme
from aiosmtpd.controller import Controller

from helpers.sinks import server_tls_context
from scripted_smtp import free_port
from world.authcheck import authenticate
from world.ledger import Ledger, Verdict
from world.profiles import Profile
from world.responders import PendingEvent, Responder

__all__ = ["TREATMENTS", "ProviderMX", "Received", "treatment_for"]

TREATMENTS = {
    "unknown-": "unknown",
    "grey-": "greylist",
    "bounce-later-": "bounce",
    "ooo-": "auto-reply",
    "reply-": "reply",
}
"""Local-part prefix -> treatment; anything else is ``accept``."""


def treatment_for(address: str) -> str:
    """The scripted treatment of ``address``: unknown, greylist, bounce, auto-reply, reply or accept."""
    local = address.rpartition("@")[0].lower()
    for prefix, treatment in TREATMENTS.items():
        if local.startswith(prefix):
            return treatment
    return "accept"


@dataclass(frozen=True, slots=True)
class Received:
    """A message the receiver accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    auth: str


@dataclass(frozen=True, slots=True)
class _Headers:
    message_id: str | None
    subject: str
    from_address: str | None

    @classmethod
    def read(cls, data: bytes) -> _Headers:
        parsed = BytesHeaderParser(policy=compat32).parsebytes(data)
        authors = [address for _name, address in getaddresses(parsed.get_all("From", [])) if "@" in address]
        message_id = parsed.get("Message-ID")
        return cls(
            str(message_id).strip() if message_id else None,
            " ".join(str(parsed.get("Subject", "")).split()),
            authors[0] if len(authors) == 1 else None,
        )


class _Handler:
    """aiosmtpd hooks: the SMTP conversation stays in aiosmtpd, the provider's policy lives here."""

    def __init__(self, mx: ProviderMX) -> None:
        self.mx = mx

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        mx = self.mx
        if mx.require_tls and not session.ssl:
            return mx.answer("", address, mx.reply(mx.profile.starttls_required, ip=_ip(session)), "mail")
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        mx = self.mx
        treatment = treatment_for(address)
        ip = _ip(session)
        if treatment == "unknown":
            return mx.answer(address, envelope.mail_from, mx.reply(mx.profile.user_unknown, rcpt=address, ip=ip), "rcpt")
        if treatment == "greylist" and mx.first_attempt(ip, envelope.mail_from, address):
            return mx.answer(address, envelope.mail_from, mx.reply(mx.profile.greylisted, rcpt=address, ip=ip), "rcpt")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mx = self.mx
        data = bytes(envelope.original_content or envelope.content or b"")
        headers = _Headers.read(data)
        ip, sender, rcpts = _ip(session), envelope.mail_from, list(envelope.rcpt_tos)
        fill = {"ip": ip, "message_id": headers.message_id or "<>", "sender_domain": sender.rpartition("@")[2]}
        if mx.over_rate_limit(ip):
            line = mx.reply(mx.profile.rate_limited, **fill)
            mx.answer_all(rcpts, sender, line, headers.message_id)
            if mx.profile.closes_after(line):
                await server.push(line)
                server.transport.close()
                await asyncio.Event().wait()  # cancelled by connection_lost, like a real hang-up
            return line
        helo = session.host_name or ""
        outcome = await authenticate(data, client_ip=ip, helo=helo, mail_from=sender, dns_address=mx.dns_address)
        fill["from_domain"] = outcome.dmarc.from_domain or (headers.from_address or "").rpartition("@")[2]
        if not outcome.authenticated:
            line = mx.reply(mx.profile.unauthenticated, **fill)
        elif outcome.dmarc_rejects:
            line = mx.reply(mx.profile.dmarc_rejected, **fill)
        else:
            line = mx.reply(mx.profile.accepted, **fill)
            mx.accepted_from(ip)
            mx.messages.append(Received(sender, tuple(rcpts), data, bool(session.ssl), outcome.summary()))
            for rcpt in rcpts:
                mx.queue_answer(rcpt, sender, data, headers)
        mx.answer_all(rcpts, sender, line, headers.message_id, outcome.summary())
        return line


def _ip(session: Any) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class ProviderMX:
    """One recipient domain's MX: a threaded aiosmtpd server answering as ``profile`` (a context manager)."""

    def __init__(
        self,
        profile: Profile,
        port: int | None = None,
        *,
        domain: str,
        mx_host: str,
        ca: trustme.CA,
        dns_address: str,
        ledger: Ledger,
        responder: Responder | None = None,
        rate_limit: int | None = None,
        rate_window: float = 60.0,
        require_tls: bool | None = None,
    ) -> None:
        if rate_limit is not None and rate_limit < 1:
            raise ValueError(f"rate_limit must be at least 1 message per window, not {rate_limit}")
        self.profile = profile
        self.port = port or free_port()
        self.domain = domain.lower()
        self.mx_host = mx_host.lower().rstrip(".")
        self.dns_address = dns_address
        self.ledger = ledger
        self.responder = responder
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.require_tls = profile.require_tls if require_tls is None else require_tls
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str, str]] = set()
        self._accepted_at: defaultdict[str, deque[float]] = defaultdict(deque)
        self._replies = 0
        self._seed = sum(self.mx_host.encode()) * 7919
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            server_hostname=self.mx_host,
            tls_context=server_tls_context(ca.issue_cert(self.mx_host)),
            require_starttls=False,  # our own 530 with the provider's text, in handle_MAIL
            enable_SMTPUTF8=True,
        )

    # ------------------------------------------------------------------ policy state (thread-safe)

    def first_attempt(self, ip: str, sender: str, rcpt: str) -> bool:
        """True the first time this (client IP, sender, recipient) triplet is seen: greylisting's key."""
        key = (ip, sender.lower(), rcpt.lower())
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def over_rate_limit(self, ip: str) -> bool:
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        with self._lock:
            window = self._accepted_at[ip]
            while window and now - window[0] >= self.rate_window:
                window.popleft()
            return len(window) >= self.rate_limit

    def accepted_from(self, ip: str) -> None:
        with self._lock:
            self._accepted_at[ip].append(time.monotonic())

    # ------------------------------------------------------------------ replies and records

    def reply(self, template: str, **values: str) -> str:
        """``template`` filled in; each reply gets its own token, as Google's do."""
        with self._lock:
            self._replies += 1
            number = self._replies
        fields = {
            "rcpt": "",
            "domain": self.domain,
            "sender_domain": "",
            "from_domain": "",
            "ip": "",
            "mx": self.mx_host,
            "message_id": "<>",
            "token": f"{self._seed:x}si{number}.{number % 400}",
            **values,
        }
        return template.format(**fields)

    def answer(
        self, rcpt: str, sender: str, line: str, stage: str, message_id: str | None = None, auth: str | None = None
    ) -> str:
        final = not line.startswith("4")
        verdict = Verdict(rcpt, sender, self.profile.name, self.mx_host, line, stage, final, message_id, auth)
        self.ledger.record(verdict)
        return line

    def answer_all(self, rcpts: list[str], sender: str, line: str, message_id: str | None, auth: str | None = None) -> None:
        for rcpt in rcpts:
            self.answer(rcpt, sender, line, "data", message_id, auth)

    def queue_answer(self, rcpt: str, sender: str, data: bytes, headers: _Headers) -> None:
        """Queue the bounce or reply the script asks for ``rcpt``, if any."""
        kind = treatment_for(rcpt)
        if kind not in ("bounce", "auto-reply", "reply") or self.responder is None:
            return
        diagnostic = self.reply(self.profile.user_unknown, rcpt=rcpt, ip="127.0.0.1") if kind == "bounce" else None
        self.responder.queue(
            PendingEvent(
                kind,
                rcpt,
                sender,
                headers.from_address or sender,
                self.profile.name,
                self.mx_host,
                data,
                headers.message_id or "",
                headers.subject,
                diagnostic,
            )
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> str:
        """``mx_host:port``: the value for coldrelay's ``[transports]`` (the name resolves via the world's DNS)."""
        return f"{self.mx_host}:{self.port}"

    def start(self) -> ProviderMX:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> ProviderMX:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
