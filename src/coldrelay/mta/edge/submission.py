"""The submission listeners: authenticated mail from the hosted mailboxes (587 STARTTLS, 465 implicit TLS).

Built on the MX session (``MXSession``): the same connection gate, limits, idle and DATA timeouts,
reply rewriting and the same DATA reader, so bare CR/LF and end-of-data lookalikes (SMTP smuggling)
are refused here exactly as on the MX. On top of that:

- TLS first. On the STARTTLS port every command but EHLO, NOOP, STARTTLS and QUIT is answered
  ``530 5.7.0 Must issue a STARTTLS command first`` until TLS is up, AUTH included; on the implicit
  TLS port the connection is encrypted from the start. AUTH (PLAIN and LOGIN, RFC 4954) is
  advertised and accepted only under TLS, and MAIL needs AUTH (``530 5.7.0 Authentication required``).
- Wrong credentials: ``535 5.7.8``, after ``auth_failure_delay`` seconds (Postfix's error sleep).
  Failures are counted per client address and per login over ``auth_failure_window`` seconds;
  from ``auth_failures_per_user`` failures for a login, or ``auth_failures_per_ip`` from an address,
  AUTH for it is answered ``454 4.7.0`` without looking at the password, until old failures age
  out of the window. A success clears its login's count but not its address's, so one valid
  account cannot be used to reset the count of an address guessing at others. The address limit
  is the larger one because sending platforms put many customers behind a few addresses.
- ``MAIL FROM`` must be the authenticated mailbox (``553 5.7.1``), and so must the one address of
  the one ``From`` header field, checked at the end of DATA (``553 5.7.1``).
- Daily cap: messages (queue rows, whatever their recipient count) the mailbox has enqueued since
  00:00 UTC, counted from the queue table; ``Mailbox.daily_cap`` or else ``limits.daily_cap``. At the
  cap, ``450 4.7.1``: transient on purpose, because the cap lifts at midnight and a sending platform
  treats a 5xx as a failed (bounced) lead, while it retries a 4xx. Checked at MAIL FROM (early) and
  again, under a per-mailbox lock, right before the enqueue, so concurrent sessions of one mailbox
  cannot overshoot it within one process.
- SIZE (RFC 1870, as on the MX) and recipients per message (``452 4.5.3``); recipients may be at
  any domain (that is what submission is for) but must be plain ``<local@domain>`` paths.
- The pipeline after DATA: header check -> missing ``Message-ID`` and ``Date`` added -> DKIM
  signature with the sender domain's active key -> cap check and ``MailQueue.enqueue`` (durable)
  -> only then ``250``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Protocol, cast

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from coldrelay.config import LimitSettings
from coldrelay.db import QueuedMessage, utcnow, verify_password
from coldrelay.mta import replies
from coldrelay.mta.dkim import SigningError
from coldrelay.mta.edge.mx import ConnectionGate, MXHandler, MXLimits, MXServer, MXSession
from coldrelay.mta.edge.policy import MAX_LOCAL_PART, MAX_PATH
from coldrelay.mta.replies import Reply

log = logging.getLogger(__name__)

DEFAULT_DAILY_CAP = LimitSettings().daily_cap

# A recipient for outbound mail: a dot-atom local part (RFC 5322 atext) at a host name. Quoted local
# parts, source routes and address literals are refused: no real recipient of cold email needs them.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_RECIPIENT = re.compile(rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>{_LABEL}(?:\.{_LABEL})+)")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class SubmissionLimits(MXLimits):
    """The MX's limits plus those of authenticated submission, each named."""

    max_connections_per_ip: int = 50  # sending platforms run many sessions from few addresses (Postfix's default)
    daily_cap: int = DEFAULT_DAILY_CAP  # messages per mailbox per UTC day unless Mailbox.daily_cap says otherwise
    auth_failures_per_user: int = 5  # failed AUTH for one login within the window before 454
    auth_failures_per_ip: int = 20  # failed AUTH from one address within the window before 454
    auth_failure_window: float = 600.0  # seconds
    auth_failure_delay: float = 1.0  # seconds before each 535 (Postfix's smtpd_error_sleep_time)

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> SubmissionLimits:
        return cls(max_message_size=limits.max_message_size, max_recipients=limits.max_recipients, daily_cap=limits.daily_cap)


# --- throttling and per-mailbox serialisation ---------------------------------------------------------------------


class FailureThrottle:
    """Failures per key within a sliding window; a key with ``limit`` of them is blocked until they age out."""

    MAX_KEYS = 100_000  # memory bound against a flood of distinct logins

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self._clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def blocked(self, key: str) -> bool:
        failures = self._recent(key)
        return failures is not None and len(failures) >= self.limit

    def record(self, key: str) -> None:
        if len(self._failures) >= self.MAX_KEYS:
            for stale in list(self._failures)[: self.MAX_KEYS // 10]:  # oldest keys first (insertion order)
                del self._failures[stale]
        self._failures.setdefault(key, deque(maxlen=self.limit)).append(self._clock())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class SubmissionGuards:
    """State the STARTTLS and implicit-TLS listeners share: AUTH failure counts and per-mailbox send locks."""

    def __init__(self, limits: SubmissionLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.by_ip = FailureThrottle(limits.auth_failures_per_ip, limits.auth_failure_window, clock)
        self.by_user = FailureThrottle(limits.auth_failures_per_user, limits.auth_failure_window, clock)
        self._locks: dict[str, asyncio.Lock] = {}

    def sending(self, address: str) -> asyncio.Lock:
        """Held from the cap check to the end of the enqueue, so one mailbox's sessions take turns there."""
        return self._locks.setdefault(address, asyncio.Lock())


# --- accounts ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthenticatedMailbox:
    """Who a session authenticated as."""

    address: str  # normalized: lower case, A-label domain
    daily_cap: int | None  # None: limits.daily_cap

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


class SubmissionAccounts(Protocol):
    """Logins and the day's sending count."""

    async def authenticate(self, login: str, password: str) -> AuthenticatedMailbox | None: ...

    async def sent_today(self, address: str) -> int: ...


class DatabaseAccounts:
    """``SubmissionAccounts`` over ``coldrelay.db``; argon2 and the queries run in worker threads."""

    def __init__(self, sessions: sessionmaker[DbSession]) -> None:
        self._sessions = sessions

    async def authenticate(self, login: str, password: str) -> AuthenticatedMailbox | None:
        return await asyncio.to_thread(self._authenticate, login, password)

    def _authenticate(self, login: str, password: str) -> AuthenticatedMailbox | None:
        with self._sessions.begin() as session:  # committed: verify_password may store a rehash
            mailbox = verify_password(session, login, password)
            return None if mailbox is None else AuthenticatedMailbox(mailbox.address, mailbox.daily_cap)

    async def sent_today(self, address: str) -> int:
        return await asyncio.to_thread(self._sent_today, address)

    def _sent_today(self, address: str) -> int:
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        query = (
            select(func.count())
            .select_from(QueuedMessage)
            .where(QueuedMessage.sender == address, QueuedMessage.created_at >= midnight)
        )
        with self._sessions() as session:
            return int(session.scalar(query) or 0)


class MessageSigner(Protocol):
    async def sign(self, message: bytes, domain: str) -> bytes: ...


class MessageQueue(Protocol):
    async def enqueue(self, sender: str, recipients: list[str], data: bytes) -> str: ...


# --- the message steps ---------------------------------------------------------------------------------------------


class MessageRefused(Exception):
    """A step refused the message; ``reply`` says why."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


def header_fields(message: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, unfolded value) of each header field; raises ``MessageRefused`` on a malformed header.

    The header ends at the first empty line (or the end of the message). Lines end in CRLF: the
    DATA reader has refused anything else.
    """
    end = message.find(b"\r\n\r\n")
    block = message if end < 0 else message[: end + 2]
    if block.startswith(b"\r\n"):
        return []
    fields: list[tuple[str, bytes]] = []
    for line in block.split(b"\r\n")[:-1] if block.endswith(b"\r\n") else block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise MessageRefused(replies.HEADER_MALFORMED)
            name, value = fields[-1]
            fields[-1] = (name, value + line)
            continue
        match = _FIELD.match(line)
        if match is None:
            raise MessageRefused(replies.HEADER_MALFORMED)
        fields.append((match.group(1).decode("ascii").lower(), match.group(2)))
    return fields


def check_from(fields: list[tuple[str, bytes]], mailbox: str) -> None:
    """Exactly one From field holding exactly one address, the authenticated mailbox (any case)."""
    values = [value for name, value in fields if name == "from"]
    if len(values) != 1:
        raise MessageRefused(replies.FROM_HEADER_NOT_OWNED)
    addresses = getaddresses([values[0].decode("utf-8", errors="replace")])
    if len(addresses) != 1 or addresses[0][1].lower() != mailbox:
        raise MessageRefused(replies.FROM_HEADER_NOT_OWNED)


def add_missing_headers(message: bytes, fields: list[tuple[str, bytes]], domain: str) -> bytes:
    """``Message-ID`` (at the sender's domain) and ``Date`` (now, UTC) prepended when the message has none."""
    present = {name for name, _ in fields}
    added = b""
    if "message-id" not in present:
        added += f"Message-ID: {make_msgid(domain=domain)}\r\n".encode("ascii")
    if "date" not in present:
        added += f"Date: {format_datetime(utcnow())}\r\n".encode("ascii")
    return added + message


def parse_recipient(path: str) -> str | None:
    """``local@domain`` (domain lower-cased) of a plain ``<local@domain>`` forward-path, else ``None``."""
    if len(path) > MAX_PATH or not (path.startswith("<") and path.endswith(">")):
        return None
    match = _RECIPIENT.fullmatch(path[1:-1])
    if match is None or len(match["local"]) > MAX_LOCAL_PART:
        return None
    return f"{match['local']}@{match['domain'].lower()}"


# --- the SMTP handler and session ------------------------------------------------------------------------------------


def _mailbox_of(session: Session) -> AuthenticatedMailbox:
    mailbox = session.auth_data
    assert isinstance(mailbox, AuthenticatedMailbox), "MAIL is only reachable after AUTH"
    return mailbox


class SenderPauses(Protocol):
    """The reputation guard as submission sees it: is this sender (or its domain) paused?"""

    async def paused(self, sender: str) -> object | None: ...


class SubmissionHandler:
    """aiosmtpd hooks: sender ownership, paused senders, the daily cap, recipients, and the DATA pipeline."""

    def __init__(
        self,
        accounts: SubmissionAccounts,
        queue: MessageQueue,
        signer: MessageSigner,
        limits: SubmissionLimits,
        guards: SubmissionGuards,
        pauses: SenderPauses | None = None,
    ) -> None:
        self.accounts = accounts
        self.queue = queue
        self.signer = signer
        self.limits = limits
        self.guards = guards
        self.pauses = pauses

    def cap_of(self, mailbox: AuthenticatedMailbox) -> int:
        return mailbox.daily_cap if mailbox.daily_cap is not None else self.limits.daily_cap

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        mailbox = _mailbox_of(session)
        if address.lower() != mailbox.address:
            log.warning("%s tried MAIL FROM:<%s>", mailbox.address, address)
            return str(replies.SENDER_NOT_OWNED)
        try:
            # A paused sender is told at once (450: nothing is lost, the platform keeps the message)
            # rather than having its mail pile up in a queue that will not send it.
            if self.pauses is not None and await self.pauses.paused(mailbox.address) is not None:
                return str(replies.SENDER_PAUSED)
            sent = await self.accounts.sent_today(mailbox.address)
        except Exception:
            log.exception("sender checks (pause, daily count) for %s failed", mailbox.address)
            return str(replies.LOCAL_ERROR)
        if sent >= self.cap_of(mailbox):
            return str(replies.DAILY_CAP_REACHED)
        envelope.mail_from = mailbox.address
        envelope.mail_options.extend(options)
        return str(replies.SENDER_OK)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, path: str, options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            return str(replies.TOO_MANY_RECIPIENTS)
        recipient = parse_recipient(path)
        if recipient is None:
            return str(replies.RECIPIENT_SYNTAX_INVALID)
        envelope.rcpt_tos.append(recipient)
        return str(replies.RECIPIENT_OK)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.original_content is not None
        mailbox = _mailbox_of(session)
        try:
            return str(await self._accept(mailbox, list(dict.fromkeys(envelope.rcpt_tos)), envelope.original_content))
        except MessageRefused as refused:
            log.warning("refused message from %s: %s", mailbox.address, refused.reply)
            return str(refused.reply)

    async def _accept(self, mailbox: AuthenticatedMailbox, recipients: list[str], content: bytes) -> Reply:
        fields = header_fields(content)
        check_from(fields, mailbox.address)
        message = add_missing_headers(content, fields, mailbox.domain)
        try:
            signed = await self.signer.sign(message, mailbox.domain)
        except SigningError as exc:
            log.error("%s", exc)
            return replies.SIGNING_FAILED
        except Exception:
            log.exception("DKIM signing for %s failed", mailbox.domain)
            return replies.SIGNING_FAILED
        async with self.guards.sending(mailbox.address):
            try:
                if await self.accounts.sent_today(mailbox.address) >= self.cap_of(mailbox):
                    return replies.DAILY_CAP_REACHED
                queue_id = await self.queue.enqueue(mailbox.address, recipients, signed)
            except Exception:
                log.exception("queueing a message from %s failed", mailbox.address)
                return replies.STORE_FAILED
        log.info("queued %s from <%s> for %s", queue_id, mailbox.address, ", ".join(recipients))
        return replies.MESSAGE_ACCEPTED

    async def handle_exception(self, error: Exception) -> str:
        log.error("submission session error", exc_info=error)
        return str(replies.LOCAL_ERROR)


class SubmissionSession(MXSession):
    """One connection to a submission port: an MX session that requires TLS and AUTH."""

    def __init__(
        self,
        handler: SubmissionHandler,
        *,
        gate: ConnectionGate,
        sessions: set[MXSession],
        limits: SubmissionLimits,
        hostname: str,
        tls_context: ssl.SSLContext | None,
        implicit_tls: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # MXSession hands the handler to aiosmtpd untouched; its type names the MX's handler only.
        super().__init__(
            cast(MXHandler, handler),
            gate=gate,
            sessions=sessions,
            limits=limits,
            hostname=hostname,
            tls_context=None if implicit_tls else tls_context,
            loop=loop,
        )
        self.submission = handler
        self.implicit_tls = implicit_tls
        self._auth_required = True  # MAIL, RCPT, DATA: 530 5.7.0 Authentication required
        # On the STARTTLS port nothing but EHLO/NOOP/STARTTLS/QUIT before TLS; AUTH is advertised only after it.
        # Implicit TLS is invisible to aiosmtpd (it only knows its own STARTTLS layer): AUTH is advertised at once.
        self.require_starttls = not implicit_tls
        self._auth_require_tls = not implicit_tls

    @property
    def encrypted(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    @syntax("AUTH <mechanism> [initial-response]")
    async def smtp_AUTH(self, arg: str | None) -> None:
        assert self.session is not None
        if not self.session.host_name or not self.session.extended_smtp:
            await self.push(str(replies.AUTH_NEEDS_EHLO))
            return
        if not self.encrypted:
            await self.push(str(replies.TLS_REQUIRED))
            return
        if self.session.authenticated:
            await self.push(str(replies.ALREADY_AUTHENTICATED))
            return
        parts = (arg or "").split()
        if not 1 <= len(parts) <= 2:
            await self.push(str(replies.AUTH_SYNTAX))
            return
        mechanism, initial = parts[0].upper(), parts[1] if len(parts) == 2 else None
        if mechanism not in ("PLAIN", "LOGIN"):
            await self.push(str(replies.AUTH_MECHANISM_UNSUPPORTED))
            return
        guards = self.submission.guards
        if guards.by_ip.blocked(self.peer_ip):
            log.warning("AUTH from %s throttled (address)", self.peer_ip)
            await self.push(str(replies.AUTH_THROTTLED))
            return
        credentials = await (self._plain(initial) if mechanism == "PLAIN" else self._login(initial))
        if credentials is None:
            return  # the reply has been sent
        login, password = credentials
        user_key = login.strip().lower()
        if guards.by_user.blocked(user_key):
            log.warning("AUTH from %s as %r throttled (login)", self.peer_ip, login)
            await self.push(str(replies.AUTH_THROTTLED))
            return
        try:
            mailbox = await self.submission.accounts.authenticate(login, password) if login and password else None
        except Exception:
            log.exception("AUTH lookup for %r failed", login)
            await self.push(str(replies.AUTH_TEMPORARY_FAILURE))
            return
        if mailbox is None:
            guards.by_ip.record(self.peer_ip)
            guards.by_user.record(user_key)
            log.warning("AUTH %s from %s as %r failed", mechanism, self.peer_ip, login)
            if self.submission.limits.auth_failure_delay > 0:
                await asyncio.sleep(self.submission.limits.auth_failure_delay)
            await self.push(str(replies.AUTH_FAILED))
            return
        guards.by_user.clear(user_key)
        self.session.authenticated = True
        self.session.auth_data = mailbox  # type: ignore[assignment]  # aiosmtpd annotates it as None
        log.info("AUTH %s from %s as %s", mechanism, self.peer_ip, mailbox.address)
        await self.push(str(replies.AUTH_SUCCEEDED))

    async def _plain(self, initial: str | None) -> tuple[str, str] | None:
        """RFC 4616: ``authzid NUL authcid NUL passwd``; an authzid other than the login is refused."""
        blob = await (self._challenge(b"") if initial is None else self._decode(initial))
        if blob is None:
            return None
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push(str(replies.AUTH_SYNTAX))
            return None
        authzid, login, password = (_text(part) for part in parts)
        if authzid and authzid.lower() != login.lower():
            return login, ""  # acting as someone else is not offered: counted as a failure
        return login, password

    async def _login(self, initial: str | None) -> tuple[str, str] | None:
        """The LOGIN mechanism: user name (maybe as initial response), then the password."""
        user = await (self._challenge(b"Username:") if initial is None else self._decode(initial))
        if user is None:
            return None
        password = await self._challenge(b"Password:")
        if password is None:
            return None
        return _text(user), _text(password)

    async def _decode(self, text: str) -> bytes | None:
        if text == "=":  # RFC 4954: an empty initial response
            return b""
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            await self.push(str(replies.AUTH_BASE64_INVALID))
            return None

    async def _challenge(self, challenge: bytes) -> bytes | None:
        """Send a 334 challenge and decode the client's answer; ``None`` after an abort or a bad answer."""
        await self.push(b"334 " + base64.b64encode(challenge))
        try:
            line = await self._reader.readline()
        except ValueError:  # longer than the line limit; the reader dropped it
            await self.push(str(replies.COMMAND_TOO_LONG))
            return None
        if not line.endswith(b"\n"):  # the connection closed
            return None
        self._reset_timeout()
        answer = line.strip()
        if answer == b"*":
            await self.push(str(replies.AUTH_ABORTED))
            return None
        try:
            return base64.b64decode(answer, validate=True)
        except binascii.Error:
            await self.push(str(replies.AUTH_BASE64_INVALID))
            return None


def _text(data: bytes) -> str:
    """Credentials as text; bytes that are not UTF-8 can never match a password, so they become U+FFFD."""
    return data.decode("utf-8", errors="replace")


class SubmissionServer(MXServer):
    """A running submission listener; ``stop`` closes it and every open session."""


async def start_submission(
    host: str,
    port: int,
    *,
    implicit_tls: bool,
    tls_context: ssl.SSLContext,
    accounts: SubmissionAccounts,
    queue: MessageQueue,
    signer: MessageSigner,
    limits: SubmissionLimits | None = None,
    hostname: str = "localhost",
    guards: SubmissionGuards | None = None,
    pauses: SenderPauses | None = None,
) -> SubmissionServer:
    """Listen for submission on ``host:port`` (port 0: any free port), STARTTLS or implicit TLS.

    Pass one ``guards`` to both listeners so that AUTH failures and the daily cap count across them.
    """
    limits = limits or SubmissionLimits()
    guards = guards or SubmissionGuards(limits)
    loop = asyncio.get_running_loop()
    handler = SubmissionHandler(accounts, queue, signer, limits, guards, pauses)
    gate = ConnectionGate(limits.max_connections_per_ip, limits.max_connections)
    sessions: set[MXSession] = set()

    def new_session() -> SubmissionSession:
        return SubmissionSession(
            handler,
            gate=gate,
            sessions=sessions,
            limits=limits,
            hostname=hostname,
            tls_context=tls_context,
            implicit_tls=implicit_tls,
            loop=loop,
        )

    server = await loop.create_server(new_session, host, port, ssl=tls_context if implicit_tls else None)
    kind = "implicit TLS" if implicit_tls else "STARTTLS"
    log.info("submission (%s) listening on %s:%s", kind, host, server.sockets[0].getsockname()[1])
    return SubmissionServer(server, sessions, gate)
