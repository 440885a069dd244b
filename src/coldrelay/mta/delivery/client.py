"""One SMTP client connection to one hop, and the results of a transaction over it.

The conversation is aiosmtplib's; this module decides what each answer means for delivery:

- anything before MAIL FROM that goes wrong (refused, greeting or EHLO 4xx/5xx, a dropped
  connection, TLS that a policy requires but cannot be had) is a :class:`HopFailure`: the hop did
  not take the message and the pool tries the next one;
- from the answer to MAIL FROM on, the answers are final for this try and become one
  :class:`RecipientResult` per recipient (RFC 5321 section 3.3: per-RCPT replies per recipient,
  the MAIL and DATA replies for all recipients of the transaction).

TLS follows RFC 7435 (opportunistic security) unless a policy asks for more: STARTTLS whenever it
is offered, without checking the certificate, and when the handshake itself fails the pool
reconnects once in plaintext (as Postfix does; a receiver with a broken TLS stack still gets its
mail). Under a VERIFIED requirement (MTA-STS enforce) STARTTLS is mandatory, the certificate must be
valid for the MX host name, and nothing is ever sent in plaintext.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from coldrelay.mta.delivery.routing import TlsRequirement

QUIT_TIMEOUT = 5.0
"""A polite QUIT never holds a worker for long: the message is already delivered."""
RSET_TIMEOUT = 30.0

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


class Stage(enum.StrEnum):
    """Where in the conversation a result was decided."""

    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


@dataclass(frozen=True, slots=True)
class SmtpReply:
    code: int
    enhanced: str | None
    text: str
    """The whole reply text, lines joined with a space, enhanced codes of continuation lines removed."""

    def line(self) -> str:
        """``550 5.1.1 text``: the form ``coldrelay.errors.explain`` takes."""
        return f"{self.code} {self.enhanced} {self.text}" if self.enhanced else f"{self.code} {self.text}"

    @classmethod
    def parse(cls, code: int, message: str) -> SmtpReply:
        """From aiosmtplib's (code, message), whose lines are joined with newlines.

        The enhanced code is taken only from the first line and only when its class agrees with the basic
        code (RFC 2034 section 4); servers repeat it on every line of a multi-line reply, which would
        otherwise clutter the one-line text the knowledge base reads.
        """
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        enhanced: str | None = None
        if lines:
            match = _ENHANCED.match(lines[0])
            if match and match.group(1) == str(code)[0]:
                enhanced = match.group(0)
        if enhanced is not None:
            lines = [line[len(enhanced) :].strip() if line.startswith(enhanced) else line for line in lines]
        return cls(code, enhanced, " ".join(line for line in lines if line))


@dataclass(frozen=True, slots=True)
class RecipientResult:
    recipient: str
    reply: SmtpReply
    stage: str
    """connect | greeting | ehlo | starttls | mail | rcpt | data (see :class:`Stage`)."""

    @property
    def accepted(self) -> bool:
        return 200 <= self.reply.code < 300

    @property
    def temporary(self) -> bool:
        """4xx, including the synthetic 4xx of a hop that could not be reached."""
        return 400 <= self.reply.code < 500

    @property
    def permanent(self) -> bool:
        return self.reply.code >= 500


@dataclass(frozen=True, slots=True)
class TransactionResult:
    remote_host: str | None
    """The hop host name we ended on (None when no hop could be reached)."""
    remote_address: str | None
    """``ip:port`` (``[ip]:port`` for IPv6)."""
    tls_version: str | None
    """``TLSv1.3`` when STARTTLS was used, else None."""
    results: tuple[RecipientResult, ...]
    """Exactly one per recipient given, in order."""


class HopFailure(Exception):
    """The hop did not take the transaction (nothing was decided for any recipient): try the next one."""

    def __init__(self, stage: Stage, detail: str, *, tls: bool = False, fallback: bool = False) -> None:
        super().__init__(detail)
        self.stage = stage
        self.detail = detail
        self.tls = tls
        """TLS that the route requires could not be had (MTA-STS)."""
        self.fallback = fallback
        """An opportunistic TLS handshake failed: reconnecting in plaintext may work."""


def format_address(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def needs_smtputf8(address: str) -> bool:
    return not address.isascii()


@functools.cache
def opportunistic_context() -> ssl.SSLContext:
    """Encryption without authentication (RFC 7435): any certificate is taken, TLS 1.2 or later."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _connect_failure(exc: SMTPConnectError) -> HopFailure:
    """Refused, unreachable, timed out, or closed before the greeting: said briefly for the synthetic reply."""
    if isinstance(exc, SMTPConnectTimeoutError):
        if "ready message" in str(exc):  # aiosmtplib's wording for a greeting that never came
            return HopFailure(Stage.GREETING, "no greeting in time")
        return HopFailure(Stage.CONNECT, "connection timed out")
    cause = exc.__cause__
    if isinstance(cause, SMTPServerDisconnected):
        return HopFailure(Stage.GREETING, "connection closed before the greeting")
    if isinstance(cause, ConnectionRefusedError):
        return HopFailure(Stage.CONNECT, "connection refused")
    if isinstance(cause, OSError) and cause.strerror:
        return HopFailure(Stage.CONNECT, cause.strerror.lower())
    return HopFailure(Stage.CONNECT, str(exc) or type(exc).__name__)


def _tls_detail(exc: BaseException) -> str:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate not valid ({current.verify_message or current.reason})"
        if isinstance(current, ssl.SSLError):
            return f"TLS handshake failed ({current.reason or current})"
        current = current.__cause__
    return f"TLS handshake failed ({exc or type(exc).__name__})"


class SmtpSession:
    """One open, greeted connection to a hop; reusable for several transactions (RSET between them)."""

    def __init__(self, smtp: aiosmtplib.SMTP, *, host: str, address: str, port: int, tls: TlsRequirement) -> None:
        self.smtp = smtp
        self.host = host
        self.address = address
        self.port = port
        self.tls = tls
        self.tls_version: str | None = None
        self.transactions = 0
        """Transactions that reached MAIL FROM on this connection (``messages_per_connection`` counts them)."""

    @property
    def remote_address(self) -> str:
        return format_address(self.address, self.port)

    @property
    def alive(self) -> bool:
        return self.smtp.is_connected

    @classmethod
    async def open(
        cls,
        *,
        host: str,
        address: str,
        port: int,
        helo_hostname: str,
        tls: TlsRequirement,
        verified_context: ssl.SSLContext,
        connect_timeout: float,
        command_timeout: float,
        try_starttls: bool = True,
    ) -> SmtpSession:
        """Connect, read the greeting, EHLO (HELO after a 5xx), STARTTLS as the requirement says.

        Raises :class:`HopFailure`; ``fallback`` on it means the opportunistic TLS handshake failed and a
        plaintext connection (``try_starttls=False``) is worth one more try.
        """
        smtp = aiosmtplib.SMTP(
            hostname=address,
            port=port,
            local_hostname=helo_hostname,
            timeout=command_timeout,
            start_tls=False,
            validate_certs=tls is TlsRequirement.VERIFIED,
        )
        session = cls(smtp, host=host, address=address, port=port, tls=tls)
        try:
            await session._connect(connect_timeout)
            await session._hello(helo_hostname)
            if try_starttls or tls is TlsRequirement.VERIFIED:
                await session._starttls(helo_hostname, verified_context)
        except HopFailure:
            smtp.close()
            raise
        except (SMTPException, OSError) as exc:  # anything else the library or the socket says: this hop failed
            smtp.close()
            raise HopFailure(Stage.CONNECT, str(exc) or type(exc).__name__) from exc
        return session

    async def _connect(self, timeout: float) -> None:
        try:
            await self.smtp.connect(timeout=timeout)
        except SMTPConnectResponseError as exc:
            reply = SmtpReply.parse(exc.code, exc.message)
            raise HopFailure(Stage.GREETING, f"greeting {reply.line()}") from exc
        except SMTPConnectError as exc:
            raise _connect_failure(exc) from exc

    async def _hello(self, helo_hostname: str) -> None:
        """EHLO; a 5xx to EHLO means an old server (RFC 5321 section 3.2): HELO instead."""
        try:
            await self.smtp.ehlo(hostname=helo_hostname)
            return
        except SMTPHeloError as exc:
            if exc.code < 500 or exc.code >= 600 or not self.smtp.is_connected:
                raise HopFailure(Stage.EHLO, f"EHLO {SmtpReply.parse(exc.code, exc.message).line()}") from exc
        except SMTPServerDisconnected as exc:
            raise HopFailure(Stage.EHLO, "connection closed after EHLO") from exc
        except SMTPTimeoutError as exc:
            raise HopFailure(Stage.EHLO, "timed out waiting for the EHLO reply") from exc
        try:
            await self.smtp.helo(hostname=helo_hostname)
        except SMTPHeloError as exc:
            raise HopFailure(Stage.EHLO, f"HELO {SmtpReply.parse(exc.code, exc.message).line()}") from exc
        except (SMTPServerDisconnected, SMTPTimeoutError) as exc:
            raise HopFailure(Stage.EHLO, "connection lost after HELO") from exc

    async def _starttls(self, helo_hostname: str, verified_context: ssl.SSLContext) -> None:
        required = self.tls is TlsRequirement.VERIFIED
        if not self.smtp.supports_extension("starttls"):
            if required:
                raise HopFailure(Stage.STARTTLS, "STARTTLS not offered, but the MTA-STS policy requires TLS", tls=True)
            return
        if required and _is_ip(self.host):
            raise HopFailure(Stage.STARTTLS, "an IP address cannot be verified against an MTA-STS policy", tls=True)
        context = verified_context if required else opportunistic_context()
        server_hostname = None if _is_ip(self.host) else self.host
        try:
            await self.smtp.starttls(server_hostname=server_hostname, tls_context=context)
        except SMTPResponseException as exc:
            # 454 "TLS not available": the connection is still fine in plaintext unless TLS is required.
            reply = SmtpReply.parse(exc.code, exc.message)
            if required or not self.smtp.is_connected:
                raise HopFailure(Stage.STARTTLS, f"STARTTLS {reply.line()}", tls=required, fallback=not required) from exc
            return
        except (ssl.SSLError, SMTPServerDisconnected, SMTPTimeoutError, ConnectionError, OSError) as exc:
            raise HopFailure(Stage.STARTTLS, _tls_detail(exc), tls=required, fallback=not required) from exc
        ssl_object = self.smtp.get_transport_info("ssl_object")
        self.tls_version = ssl_object.version() if ssl_object is not None else None
        await self._hello(helo_hostname)  # RFC 3207 section 4.2: forget what was learnt before TLS

    def max_size(self) -> int | None:
        """The SIZE the server announced (RFC 1870), None when none or 0 (no limit)."""
        value = self.smtp.esmtp_extensions.get("size", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    async def reset(self) -> bool:
        """RSET before reusing the connection; False when the connection turned out to be broken."""
        if not self.smtp.is_connected:
            return False
        try:
            await self.smtp.rset(timeout=RSET_TIMEOUT)
        except (SMTPException, OSError):
            self.smtp.close()
            return False
        return True

    async def quit(self) -> None:
        """QUIT and close; never raises (the peer may already be gone)."""
        try:
            if self.smtp.is_connected:
                await self.smtp.quit(timeout=QUIT_TIMEOUT)
        except (SMTPException, OSError):
            pass
        finally:
            self.smtp.close()

    async def transact(self, sender: str, recipients: Sequence[str], data: bytes) -> list[RecipientResult]:
        """MAIL, RCPT for each recipient, DATA when one was accepted; one result per recipient.

        Raises :class:`HopFailure` only when the connection breaks before MAIL FROM is answered (the hop
        then took nothing). A refused MAIL or RCPT leaves the connection reusable (RSET).
        """
        limit = self.max_size()
        if limit is not None and len(data) > limit:
            reply = SmtpReply(552, "5.3.4", f"Message too big for {self.host}: {len(data)} bytes, it accepts at most {limit}")
            return [RecipientResult(r, reply, Stage.MAIL) for r in recipients]
        utf8 = needs_smtputf8(sender) or any(needs_smtputf8(r) for r in recipients)
        if utf8 and not self.smtp.supports_extension("smtputf8"):
            reply = SmtpReply(553, "5.6.7", f"{self.host} does not support SMTPUTF8, needed for a non-ASCII address")
            return [RecipientResult(r, reply, Stage.MAIL) for r in recipients]
        options: list[str] = []
        if self.smtp.supports_extension("size"):
            options.append(f"SIZE={len(data)}")
        if self.smtp.supports_extension("8bitmime") and not data.isascii():
            options.append("BODY=8BITMIME")
        if utf8:
            options.append("SMTPUTF8")
        encoding = "utf-8" if utf8 else "ascii"

        self.transactions += 1
        try:
            await self.smtp.mail(sender, options=options, encoding=encoding)
        except SMTPSenderRefused as exc:
            reply = SmtpReply.parse(exc.code, exc.message)
            await self.reset()
            return [RecipientResult(r, reply, Stage.MAIL) for r in recipients]
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
            raise HopFailure(Stage.MAIL, "connection lost at MAIL FROM") from exc

        results: dict[int, RecipientResult] = {}
        accepted: list[int] = []
        for index, recipient in enumerate(recipients):
            try:
                response = await self.smtp.rcpt(recipient, encoding=encoding)
            except SMTPRecipientRefused as exc:
                results[index] = RecipientResult(recipient, SmtpReply.parse(exc.code, exc.message), Stage.RCPT)
                continue
            except (SMTPServerDisconnected, SMTPTimeoutError, OSError):
                lost = SmtpReply(451, "4.4.2", f"Connection to {self.host} lost at RCPT TO")
                for other, name in enumerate(recipients):
                    if other >= index or other in accepted:
                        results[other] = RecipientResult(name, lost, Stage.RCPT)
                return [results[i] for i in range(len(recipients))]
            results[index] = RecipientResult(recipient, SmtpReply.parse(response.code, response.message), Stage.RCPT)
            accepted.append(index)

        if not accepted:
            await self.reset()
            return [results[i] for i in range(len(recipients))]

        try:
            response = await self.smtp.data(data)
            final = SmtpReply.parse(response.code, response.message)
        except SMTPDataError as exc:
            final = SmtpReply.parse(exc.code, exc.message)
            if self.smtp.is_connected:
                await self.reset()
        except SMTPTimeoutError:
            final = SmtpReply(451, "4.4.2", f"Timed out waiting for {self.host} to answer DATA")
            self.smtp.close()
        except (SMTPServerDisconnected, OSError):
            final = SmtpReply(451, "4.4.2", f"Connection to {self.host} lost during DATA")
            self.smtp.close()
        for index in accepted:
            results[index] = RecipientResult(recipients[index], final, Stage.DATA)
        return [results[i] for i in range(len(recipients))]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


__all__ = [
    "HopFailure",
    "RecipientResult",
    "SmtpReply",
    "SmtpSession",
    "Stage",
    "TransactionResult",
    "format_address",
    "opportunistic_context",
]
