"""The MX listener: inbound mail for the hosted mailboxes, over aiosmtpd.

The SMTP conversation stays in aiosmtpd; this module adds what an Internet-facing MX needs on top:

- ``RCPT TO`` is decided by ``RecipientPolicy`` on the forward-path exactly as the client sent it
  (aiosmtpd's own parser would quietly turn ``<@a:user@b>`` into ``user@b``);
- ``DATA`` is read here, because the message must be refused, not repaired, when it holds a bare
  CR or LF or an end-of-data lookalike such as ``<LF>.<CR><LF>`` (SMTP smuggling, CVE-2023-51764
  and its siblings): another server on the path may take that as the end and run what follows as
  commands. aiosmtpd >= 1.4.5 only stops treating ``<LF>.<LF>`` as the end; it keeps such data;
- named limits (``MXLimits``): message size (announced as SIZE), line length, recipients per
  message, connections per client address and in all, an idle timeout reset only by complete
  commands or data lines (a slowloris trickling bytes is cut off) and a cap on the whole DATA phase;
- replies come from ``coldrelay.mta.replies``, including aiosmtpd's own, which ``push`` rewrites;
- checks (SPF/DKIM/DMARC, bounce linking) are steps of a pipeline (``coldrelay.mta.checks``) called
  on each accepted message before the store; none are run unless ``start_mx`` is given some.

STARTTLS is offered when a TLS context is given. Anything the client pipelined after STARTTLS,
before the handshake, is discarded (RFC 3207 4.2; aiosmtpd clears the plaintext buffer when the
TLS layer comes up, and the tests hold it to that).

A message is answered 250 only after the store has made every copy durable (fsync).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from coldrelay.config import LimitSettings
from coldrelay.mta import replies
from coldrelay.mta.checks.pipeline import PipelineStep, run_pipeline
from coldrelay.mta.edge.policy import MailboxDirectory, RecipientPolicy, split_forward_path
from coldrelay.mta.replies import Reply
from coldrelay.mta.store.message import InboundMessage, MessageStore

log = logging.getLogger(__name__)

GREETING_IDENT = "ESMTP coldrelay"

# An end-of-data lookalike inside a line: a dot right after a CR or LF (or at the line start) and
# right before a CR or LF. The one true end, a line that is exactly ".\r\n", is handled before.
_SMUGGLING = re.compile(rb"(?:\A|[\r\n])\.[\r\n]")


@dataclass(frozen=True, slots=True)
class MXLimits:
    """The MX's limits, each named, with Postfix-like safe defaults."""

    max_message_size: int = 26_214_400  # octets on the wire; announced in EHLO SIZE (RFC 1870)
    max_recipients: int = 100  # accepted RCPT per message; RFC 5321 4.5.3.1.8 asks for at least 100
    # RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF (1001 with a stuffed dot).
    # Real bounces quote longer lines now and then, so some slack before refusing: Postfix's 2048.
    max_line_length: int = 2048
    max_connections_per_ip: int = 20
    max_connections: int = 1000
    idle_timeout: float = 300.0  # RFC 5321 4.5.3.2.7: a server should wait at least 5 minutes per command
    data_timeout: float = 600.0  # the whole DATA phase, however steadily it trickles

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> MXLimits:
        return cls(max_message_size=limits.max_message_size, max_recipients=limits.max_recipients)


class ConnectionGate:
    """Counts open connections, per client address and in all, and says who may not open another."""

    def __init__(self, per_ip: int, total: int) -> None:
        self.per_ip = per_ip
        self.total = total
        self.open: Counter[str] = Counter()

    def admit(self, ip: str) -> Reply | None:
        """``None``: admitted (and counted until ``release``); else the reply to close with."""
        if sum(self.open.values()) >= self.total:
            return replies.SERVER_BUSY
        if self.open[ip] >= self.per_ip:
            return replies.TOO_MANY_CONNECTIONS
        self.open[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.open[ip] -= 1
        if self.open[ip] <= 0:
            del self.open[ip]


class MXHandler:
    """aiosmtpd hooks: the recipient policy, the recipient limit, the check pipeline and the store step."""

    def __init__(
        self,
        policy: RecipientPolicy,
        store: MessageStore,
        limits: MXLimits,
        hostname: str,
        pipeline: Sequence[PipelineStep] = (),
    ) -> None:
        self.policy = policy
        self.store = store
        self.limits = limits
        self.hostname = hostname
        self.pipeline = tuple(pipeline)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        # Any sender, the null one of bounces included: an MX takes mail from the whole Internet.
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return str(replies.SENDER_OK)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, path: str, options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            return str(replies.TOO_MANY_RECIPIENTS)
        try:
            decision = await self.policy.decide(path)
        except Exception:
            log.exception("recipient lookup failed for %r", path)
            return str(replies.LOOKUP_FAILED)
        if decision.mailbox is not None:
            # Every accepted RCPT counts toward the limit, repeats too; the copies are made once per mailbox.
            envelope.rcpt_tos.append(decision.mailbox)
        return str(decision.reply)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.mail_from is not None and envelope.original_content is not None
        peer_ip = server.peer_ip if isinstance(server, MXSession) else "unknown"
        protocol = "ESMTPS" if session.ssl is not None else "ESMTP" if session.extended_smtp else "SMTP"
        message = InboundMessage(
            sender="" if envelope.mail_from == "<>" else envelope.mail_from,
            recipients=tuple(dict.fromkeys(envelope.rcpt_tos)),
            content=envelope.original_content,
            peer_ip=peer_ip,
            helo=session.host_name or "",
            protocol=protocol,
        )
        if self.pipeline:
            try:
                message = await run_pipeline(self.pipeline, message)
            except Exception:
                log.exception("the check pipeline failed for message %s", message.queue_id)
                return str(replies.LOCAL_ERROR)
        try:
            await self.store.store(message, hostname=self.hostname)
        except Exception:
            log.exception("storing message %s failed", message.queue_id)
            return str(replies.STORE_FAILED)
        log.info("accepted %s from <%s> [%s] for %s", message.queue_id, message.sender, peer_ip, ", ".join(message.recipients))
        return str(replies.MESSAGE_ACCEPTED)

    async def handle_exception(self, error: Exception) -> str:
        log.error("MX session error", exc_info=error)
        return str(replies.LOCAL_ERROR)


class MXSession(SMTP):
    """One SMTP connection to the MX."""

    def __init__(
        self,
        handler: MXHandler,
        *,
        gate: ConnectionGate,
        sessions: set[MXSession],
        limits: MXLimits,
        hostname: str,
        tls_context: ssl.SSLContext | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # Read by SMTP.__init__ to size the stream reader, so it must be set first.
        self.line_length_limit = limits.max_line_length
        # aiosmtpd keeps these on the class, shared by every session of every listener, and clears them
        # whenever any connection opens; each session gets its own.
        self.command_size_limits = defaultdict(lambda: SMTP.command_size_limit)
        super().__init__(
            handler,
            data_size_limit=limits.max_message_size,
            hostname=hostname,
            ident=GREETING_IDENT,
            tls_context=tls_context,
            timeout=limits.idle_timeout,
            loop=loop,
        )
        self.limits = limits
        self.peer_ip = "unknown"
        self._gate = gate
        self._sessions = sessions
        self._refusal: Reply | None = None
        self._admitted = False

    # --- connection ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # the TCP connection; after STARTTLS this is called again for the TLS layer
            peer = transport.get_extra_info("peername")
            self.peer_ip = str(peer[0]) if peer else "unknown"
            self._refusal = self._gate.admit(self.peer_ip)
            self._admitted = self._refusal is None
            self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self._gate.release(self.peer_ip)
        self._sessions.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            log.warning("refused connection from %s: %s", self.peer_ip, self._refusal)
            await self.push(str(self._refusal))
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{replies.IDLE_TIMEOUT}\r\n".encode("ascii"))  # type: ignore[attr-defined]
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            await super().push(replies.library_reply(status))
        else:
            await super().push(status)

    # --- commands --------------------------------------------------------------------------------------------

    @syntax("RCPT TO: <address>")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None
        if self.envelope.mail_from is None:
            await self.push(str(replies.NEED_MAIL))
            return
        rest = self._strip_command_keyword("TO:", arg) if arg else None
        split = split_forward_path(rest) if rest is not None else None
        if split is None:
            await self.push(str(replies.RCPT_SYNTAX))
            return
        path, params = split
        if params:  # no RCPT extension (DSN, ...) is offered
            await self.push(str(replies.RCPT_PARAMETERS_UNSUPPORTED))
            return
        status = await self._call_handler_hook("RCPT", path, [])
        await self.push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(str(replies.NEED_RCPT))
            return
        if arg:
            await self.push(str(replies.DATA_SYNTAX))
            return
        await self.push(str(replies.START_MAIL_INPUT))
        outcome = await self._read_data()
        if outcome is None:  # the session was closed while reading
            return
        if isinstance(outcome, Reply):
            log.warning("refused message from %s: %s", self.peer_ip, outcome)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(str(outcome))
            return
        self.envelope.content = self.envelope.original_content = outcome
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)

    async def _read_data(self) -> bytes | Reply | None:
        """The message up to the lone ``.`` line, unstuffed; or the refusal, once all of it has been read.

        The whole message is read even when it is refused (RFC 5321 4.2.5), so that the reply comes
        at the point the client expects it; refused data is not kept in memory.
        """
        deadline = self.loop.time() + self.limits.data_timeout
        lines: list[bytes] = []
        size = 0
        refusal: Reply | None = None
        inside_long_line = False
        while True:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as overrun:
                await self._reader.readexactly(overrun.consumed)
                refusal = refusal or replies.LINE_TOO_LONG
                inside_long_line = True
                lines.clear()
                if self._past(deadline):
                    return None
                continue
            if self._past(deadline):
                return None
            self._reset_timeout()
            if inside_long_line:  # the tail of an overlong line, even if it looks like ".\r\n"
                inside_long_line = False
                continue
            if line == b".\r\n":
                break
            size += len(line)
            if refusal is None:
                body = line[:-2]
                if size > self.limits.max_message_size:
                    refusal = replies.MESSAGE_TOO_BIG
                elif len(line) > self.limits.max_line_length:  # the reader's limit lets a separator run past it
                    refusal = replies.LINE_TOO_LONG
                elif _SMUGGLING.search(line):
                    refusal = replies.SMUGGLING_REJECTED
                elif b"\n" in body:
                    refusal = replies.BARE_LF_REJECTED
                elif b"\r" in body:
                    refusal = replies.BARE_CR_REJECTED
            if refusal is None:
                lines.append(line[1:] if line.startswith(b".") else line)  # RFC 5321 4.5.2 transparency
            else:
                lines.clear()
        return refusal if refusal is not None else b"".join(lines)

    def _past(self, deadline: float) -> bool:
        """Past the DATA deadline: say so and close (the data read so far is dropped)."""
        if self.loop.time() <= deadline:
            return False
        log.warning("DATA from %s took longer than %ss", self.peer_ip, self.limits.data_timeout)
        if self.transport is not None:
            self.transport.write(f"{replies.DATA_TIMEOUT}\r\n".encode("ascii"))  # type: ignore[attr-defined]
            self.transport.close()
        return True


class MXServer:
    """A running MX listener; ``stop`` closes it and every open session."""

    def __init__(self, server: asyncio.Server, sessions: set[MXSession], gate: ConnectionGate) -> None:
        self._server = server
        self._sessions = sessions
        self.gate = gate

    @property
    def address(self) -> tuple[str, int]:
        sockname: Any = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    @property
    def port(self) -> int:
        return self.address[1]

    async def stop(self) -> None:
        self._server.close()
        tasks = []
        for session in list(self._sessions):
            if session._handler_coroutine is not None:
                tasks.append(session._handler_coroutine)
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


async def start_mx(
    host: str,
    port: int,
    directory: MailboxDirectory,
    store: MessageStore,
    limits: MXLimits | None = None,
    *,
    hostname: str = "localhost",
    tls_context: ssl.SSLContext | None = None,
    pipeline: Sequence[PipelineStep] = (),
) -> MXServer:
    """Listen for inbound mail on ``host:port`` (port 0: any free port, see ``MXServer.port``).

    ``pipeline``: steps run in order on each accepted message before it is stored (``coldrelay.mta.checks``).
    """
    limits = limits or MXLimits()
    loop = asyncio.get_running_loop()
    handler = MXHandler(RecipientPolicy(directory), store, limits, hostname, pipeline)
    gate = ConnectionGate(limits.max_connections_per_ip, limits.max_connections)
    sessions: set[MXSession] = set()

    def new_session() -> MXSession:
        return MXSession(
            handler, gate=gate, sessions=sessions, limits=limits, hostname=hostname, tls_context=tls_context, loop=loop
        )

    server = await loop.create_server(new_session, host, port)
    log.info("MX listening on %s:%s", host, server.sockets[0].getsockname()[1])
    return MXServer(server, sessions, gate)
