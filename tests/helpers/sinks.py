"""Recipient MX hosts on 127.0.0.1 for the delivery tests: real aiosmtpd servers with scripted answers.

A :class:`SinkServer` runs aiosmtpd's threaded Controller and answers according to a
:class:`Behaviour`: rules chosen by the recipient's local part (shell patterns, first match wins,
everything else accepted), plus optional greeting, EHLO and MAIL answers. It records what a test
asserts on: every accepted message with its envelope, exact bytes, TLS version and the connection
it came on; every connection (TLS, messages, still open); every RCPT with the answer given; and
the most connections it ever had open at once.

    with SinkServer(Behaviour({"greylist-*": FirstTempThenAccept, "nobody*": Reply(550, "5.1.1", "no such user")})) as mx:
        ...  # deliver to 127.0.0.1:mx.port
        assert mx.messages[0].data == message_bytes

``refused_port()`` gives a port nothing listens on (a host that refuses connections).
"""

from __future__ import annotations

import asyncio
import fnmatch
import ssl
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from scripted_smtp import free_port

DROP: Literal["drop"] = "drop"
"""As a greeting: close the connection without a word."""


@dataclass(frozen=True)
class Reply:
    """Answer with this reply (at RCPT when used as a recipient rule)."""

    code: int
    enhanced: str
    text: str

    def line(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}" if self.enhanced else f"{self.code} {self.text}"


@dataclass(frozen=True)
class Accept:
    """250 at RCPT and at the end of DATA."""


@dataclass(frozen=True)
class AtData:
    """Accept at RCPT; a transaction with this recipient gets ``reply`` at the end of DATA."""

    reply: Reply


@dataclass(frozen=True)
class DropAtData:
    """Accept at RCPT; after the message content arrives, hang up instead of answering."""


Step = Accept | Reply | AtData | DropAtData


@dataclass(frozen=True)
class Script:
    """The n-th RCPT for one address (over all connections) gets ``steps[n]``; the last step repeats."""

    steps: tuple[Step, ...]

    def step(self, attempt: int) -> Step:
        return self.steps[min(attempt, len(self.steps) - 1)]


class FirstTempThenAccept(Script):
    """Greylisting: 451 for the first RCPT of an address, 250 from the second on."""

    def __init__(self, reply: Reply = Reply(451, "4.7.1", "Greylisted, please try again later")) -> None:
        super().__init__((reply, Accept()))


Rule = Step | Script
RuleClass = type[Accept] | type[DropAtData] | type[FirstTempThenAccept]
"""Rule classes that need no arguments may stand for their default instance."""


@dataclass
class Behaviour:
    rules: Mapping[str, Rule | RuleClass] = field(default_factory=dict)
    """Local-part shell pattern -> rule; a rule class stands for its default instance."""
    greeting: Reply | Literal["drop"] | None = None
    """Instead of the 220 greeting: a reply (then the server hangs up) or DROP."""
    ehlo: Reply | None = None
    """Answer EHLO with this (HELO is still accepted)."""
    mail: Reply | None = None
    """Answer MAIL FROM with this."""

    def rule_for(self, local_part: str) -> Rule:
        for pattern, rule in self.rules.items():
            if fnmatch.fnmatchcase(local_part.lower(), pattern.lower()):
                return rule() if isinstance(rule, type) else rule
        return Accept()


@dataclass
class ConnectionRecord:
    number: int
    tls_version: str | None = None
    messages: int = 0
    open: bool = True


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls_version: str | None
    connection: int
    """``ConnectionRecord.number`` of the connection it came on."""
    mail_options: list[str]


@dataclass
class RcptRecord:
    address: str
    reply: str
    connection: int


def _tls_version(session: Any) -> str | None:
    extra = getattr(session, "ssl", None)
    if not extra:
        return None
    ssl_object = extra.get("ssl_object")
    return str(ssl_object.version()) if ssl_object is not None else None


class _SinkSMTP(SMTP):
    """aiosmtpd's server plus connection bookkeeping and a scriptable greeting."""

    def __init__(self, sink: SinkServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink
        self.record: ConnectionRecord | None = None
        self.steps: dict[str, Step] = {}
        """The step each recipient of the current transaction got at RCPT (DATA acts on it)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        fresh = self._original_transport is None  # not the second call that STARTTLS makes
        super().connection_made(transport)
        if fresh:
            self.record = self.sink._opened()

    def connection_lost(self, error: Exception | None) -> None:
        if self.record is not None and self.record.open:
            self.sink._closed(self.record)
        super().connection_lost(error)

    async def _handle_client(self) -> None:  # aiosmtpd has no hook for the greeting: override its loop entry
        greeting = self.sink.behaviour.greeting
        if greeting is None:
            await super()._handle_client()
            return
        if isinstance(greeting, Reply):
            await self.push(greeting.line())
        assert self.transport is not None
        self.transport.close()


class _Handler:
    def __init__(self, sink: SinkServer) -> None:
        self.sink = sink

    async def handle_EHLO(self, server: _SinkSMTP, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        if self.sink.behaviour.ehlo is not None:
            return [self.sink.behaviour.ehlo.line()]
        session.host_name = hostname
        if server.record is not None and server.record.tls_version is None:
            server.record.tls_version = _tls_version(session)
        return responses

    async def handle_MAIL(self, server: _SinkSMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.sink.behaviour.mail is not None:
            return self.sink.behaviour.mail.line()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: _SinkSMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        rule = self.sink.behaviour.rule_for(address.rpartition("@")[0])
        if isinstance(rule, Script):
            attempt = self.sink._rcpt_attempts[address.lower()]
            self.sink._rcpt_attempts[address.lower()] += 1
            rule = rule.step(attempt)
        server.steps[address] = rule
        answer = rule.line() if isinstance(rule, Reply) else "250 2.1.5 Recipient OK"
        self.sink.rcpts.append(RcptRecord(address, answer, server.record.number if server.record else 0))
        if not isinstance(rule, Reply):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return answer

    async def handle_DATA(self, server: _SinkSMTP, session: Any, envelope: Any) -> str:
        steps = [server.steps.get(address, Accept()) for address in envelope.rcpt_tos]
        if any(isinstance(step, DropAtData) for step in steps):
            assert server.transport is not None
            server.transport.close()
            await asyncio.Event().wait()  # cancelled by connection_lost
        for step in steps:
            if isinstance(step, AtData):
                return step.reply.line()
        record = server.record
        message = ReceivedMessage(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            bytes(envelope.original_content),
            _tls_version(session),
            record.number if record else 0,
            list(envelope.mail_options),
        )
        self.sink.messages.append(message)
        if record is not None:
            record.messages += 1
        return f"250 2.0.0 OK queued as {len(self.sink.messages)}"


class _SinkController(Controller):
    def __init__(self, sink: SinkServer, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self.sink = sink

    def factory(self) -> SMTP:
        return _SinkSMTP(self.sink, self.handler, **self.SMTP_kwargs)


def server_tls_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def broken_tls_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server context whose handshake fails with every client (no cipher anyone shares): a receiver
    with a broken TLS setup that still offers STARTTLS."""
    context = server_tls_context(cert)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("PSK")
    return context


class SinkServer:
    """A recipient MX on 127.0.0.1 (see the module docstring); a context manager."""

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        tls: trustme.LeafCert | ssl.SSLContext | None = None,
        hostname: str = "mx.sink.test",
        data_size_limit: int | None = 33_554_432,
        smtputf8: bool = True,
        idle_timeout: float = 300.0,
    ) -> None:
        self.behaviour = behaviour or Behaviour()
        context = server_tls_context(tls) if isinstance(tls, trustme.LeafCert) else tls
        self.messages: list[ReceivedMessage] = []
        self.connections: list[ConnectionRecord] = []
        self.rcpts: list[RcptRecord] = []
        self.max_concurrent = 0
        self._active = 0
        self._recording = False
        self._lock = threading.Lock()
        self._rcpt_attempts: defaultdict[str, int] = defaultdict(int)
        self.port = free_port()
        self._controller = _SinkController(
            self,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname=hostname,
            tls_context=context,
            require_starttls=False,
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=smtputf8,
            timeout=idle_timeout,
        )

    def _opened(self) -> ConnectionRecord | None:
        with self._lock:
            if not self._recording:  # the Controller's own start-up probe
                return None
            record = ConnectionRecord(len(self.connections) + 1)
            self.connections.append(record)
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
            return record

    def _closed(self, record: ConnectionRecord) -> None:
        with self._lock:
            record.open = False
            self._active -= 1

    @property
    def open_connections(self) -> int:
        return self._active

    def start(self) -> SinkServer:
        self._controller.start()
        self._recording = True
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SinkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def refused_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused."""
    return free_port()


__all__ = [
    "DROP",
    "Accept",
    "AtData",
    "Behaviour",
    "ConnectionRecord",
    "DropAtData",
    "FirstTempThenAccept",
    "ReceivedMessage",
    "Reply",
    "Script",
    "SinkServer",
    "broken_tls_context",
    "refused_port",
    "server_tls_context",
]
