"""The client side of an SMTP conversation, reduced to what the probe and the relay test need.

Replies are read exactly as RFC 5321 section 4.2 frames them (``250-first``,
``250 last``), with a time limit on every step, and every way a server can let
us down (refusing the connection, going silent, closing, answering with
something that is not SMTP, failing the TLS handshake) becomes one
``SessionFailure`` with the stage it happened at. The checks turn that into
findings; nothing here reaches the caller as an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_REPLY_LINES = 200
"""More continuation lines than any real server sends (a long EHLO list has about 20)."""

MAX_LINE_BYTES = 8192
"""RFC 5321 4.5.3.1.5 caps a reply line at 512 octets; allow generous slack before calling it garbage."""

QUIT_TIMEOUT = 2.0
"""The most we wait for the answer to QUIT (or for a close) when the conversation is over anyway."""

MAX_SHOWN_CHARS = 200
"""How much of a garbage line the transcript and the findings keep."""

_REPLY_LINE = re.compile(r"^([2-5]\d\d)(?:([ -])(.*))?$")
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)")


def split_host_port(target: str, default_port: int = 25) -> tuple[str, int]:
    """``host``, ``host:587``, ``[2001:db8::1]:25`` or ``192.0.2.1`` into (host, port); ValueError if malformed."""
    target = target.strip()
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if target.count(":") == 1:
        host, _, port = target.partition(":")
        return host, int(port)
    return target, default_port


def elapsed_ms(started: float) -> float:
    """Milliseconds since a ``time.perf_counter()`` reading, to a tenth."""
    return round((time.perf_counter() - started) * 1000, 1)


def shorten(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class SMTPReply:
    """One complete server reply: its three-digit code and the text of each line."""

    code: int
    lines: tuple[str, ...]
    """The text after ``250-``/``250 ``, one entry per line (a bare ``250`` gives ``""``)."""

    @property
    def text(self) -> str:
        return " ".join(line for line in self.lines if line)

    @property
    def enhanced_code(self) -> str | None:
        """The RFC 3463 code (``5.7.1``) when the first line starts with one."""
        found = _ENHANCED.match(self.lines[0]) if self.lines else None
        return found.group(1) if found else None

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def wire_lines(self) -> list[str]:
        """The reply as it came over the wire, without line ends."""
        last = len(self.lines) - 1
        return [f"{self.code}{'-' if i < last else ' '}{line}".rstrip() for i, line in enumerate(self.lines)]

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "enhanced_code": self.enhanced_code, "lines": list(self.lines), "text": str(self)}


class FailureKind(StrEnum):
    REFUSED = "refused"
    """Nothing listens on the port: the connection was refused."""
    UNREACHABLE = "unreachable"
    """The name did not resolve or the network said no (other than a refusal or a timeout)."""
    TIMEOUT = "timeout"
    CLOSED = "closed"
    """The server closed the connection (or reset it) before answering."""
    GARBAGE = "garbage"
    """The server sent something that is not an SMTP reply."""
    REJECTED = "rejected"
    """A well-formed reply that ends the conversation (a 554 greeting, EHLO and HELO both refused)."""
    TLS = "tls"
    """The TLS handshake after STARTTLS failed."""


@dataclass(frozen=True, slots=True)
class SessionFailure:
    """Where and how a conversation ended before it should have."""

    stage: str
    """``connect``, ``banner``, ``EHLO``, ``HELO``, ``STARTTLS``, ``TLS``, ``EHLO after TLS``, ``MAIL``, ``RCPT``, ``RSET``."""
    kind: FailureKind
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "kind": self.kind.value, "detail": self.detail}


def _fail(stage: str, kind: FailureKind, detail: str) -> SessionError:
    return SessionError(SessionFailure(stage, kind, detail))


class SessionError(Exception):
    """Raised inside this package only; the public checks catch it and report the failure."""

    def __init__(self, failure: SessionFailure, *, verify_code: int | None = None, verify_message: str | None = None) -> None:
        super().__init__(f"{failure.stage}: {failure.kind.value}: {failure.detail}")
        self.failure = failure
        self.verify_code = verify_code
        """OpenSSL's X509 verification error code when the handshake failed on the certificate."""
        self.verify_message = verify_message


@dataclass(frozen=True, slots=True)
class TLSSession:
    """What the handshake negotiated, read from the SSL object."""

    version: str | None
    cipher: str | None
    cipher_bits: int | None
    certificate_der: bytes | None


def parse_reply_line(raw: bytes) -> tuple[int, bool, str] | None:
    """``(code, is_last, text)`` for one reply line, or None when it is not SMTP."""
    line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    found = _REPLY_LINE.match(line)
    if found is None:
        return None
    return int(found.group(1)), found.group(2) != "-", found.group(3) or ""


class SMTPClient:
    """One TCP connection to an SMTP server, spoken line by line with a time limit on each step.

    ``transcript`` collects every line sent (``C: ...``) and received (``S: ...``); the
    caller passes one list so several connections of one check share it.
    """

    def __init__(self, host: str, port: int, timeout: float, transcript: list[str]) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.transcript = transcript
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.peer: str | None = None
        """The IP address actually connected to."""
        self._handshake_failed = False

    async def connect(self) -> float:
        """Open the TCP connection; returns the milliseconds it took."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE_BYTES)
        except TimeoutError:
            raise _fail("connect", FailureKind.TIMEOUT, f"no TCP answer within {self.timeout:g} s") from None
        except ConnectionRefusedError as error:
            raise _fail("connect", FailureKind.REFUSED, error.strerror or str(error)) from None
        except OSError as error:
            raise _fail("connect", FailureKind.UNREACHABLE, error.strerror or str(error)) from None
        except UnicodeError:  # a name the IDNA codec refuses (an empty or over-long label) never reaches DNS
            raise _fail("connect", FailureKind.UNREACHABLE, f"{self.host!r} is not a valid host name") from None
        peer = self._writer.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = str(peer[0])
        return elapsed_ms(started)

    async def read_reply(self, stage: str, *, timeout: float | None = None) -> SMTPReply:
        """Read one complete (possibly multi-line) reply."""
        reader = self._require_reader(stage)
        limit = self.timeout if timeout is None else timeout
        code: int | None = None
        lines: list[str] = []
        try:
            async with asyncio.timeout(limit):
                while True:
                    try:
                        raw = await reader.readline()
                    except ValueError:  # the line outgrew MAX_LINE_BYTES
                        self.transcript.append(f"S: <a line longer than {MAX_LINE_BYTES} bytes>")
                        raise _fail(stage, FailureKind.GARBAGE, f"a reply line longer than {MAX_LINE_BYTES} bytes") from None
                    if not raw:
                        self.transcript.append("S: <connection closed>")
                        raise _fail(stage, FailureKind.CLOSED, "the server closed the connection")
                    parsed = parse_reply_line(raw)
                    if parsed is None or (code is not None and parsed[0] != code):
                        shown = shorten(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                        self.transcript.append(f"S: {shown}")
                        raise _fail(stage, FailureKind.GARBAGE, f"not an SMTP reply: {shown!r}")
                    self.transcript.append(f"S: {raw.decode('utf-8', errors='replace').rstrip()}")
                    code = parsed[0]
                    lines.append(parsed[2])
                    if parsed[1]:
                        return SMTPReply(code, tuple(lines))
                    if len(lines) >= MAX_REPLY_LINES:
                        raise _fail(stage, FailureKind.GARBAGE, f"a reply of more than {MAX_REPLY_LINES} lines")
        except TimeoutError:
            self.transcript.append(f"S: <no reply within {limit:g} s>")
            raise _fail(stage, FailureKind.TIMEOUT, f"no reply within {limit:g} s") from None
        except (ConnectionError, OSError) as error:
            self.transcript.append("S: <connection lost>")
            raise SessionError(SessionFailure(stage, FailureKind.CLOSED, str(error) or type(error).__name__)) from None

    async def send(self, line: str, stage: str) -> None:
        writer = self._require_writer(stage)
        self.transcript.append(f"C: {line}")
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(line.encode("utf-8") + b"\r\n")
                await writer.drain()
        except TimeoutError:
            raise _fail(stage, FailureKind.TIMEOUT, f"could not send within {self.timeout:g} s") from None
        except (ConnectionError, OSError) as error:
            raise SessionError(SessionFailure(stage, FailureKind.CLOSED, str(error) or type(error).__name__)) from None

    async def command(self, line: str, stage: str) -> SMTPReply:
        """Send one command and read its reply."""
        await self.send(line, stage)
        return await self.read_reply(stage)

    async def starttls(self, context: ssl.SSLContext, server_hostname: str) -> TLSSession:
        """Upgrade the connection after a 220 to STARTTLS (RFC 3207) and describe the result."""
        writer = self._require_writer("TLS")
        self._handshake_failed = True  # until it succeeds: a failed start_tls leaves a writer whose wait_closed never ends
        try:
            async with asyncio.timeout(self.timeout):
                await writer.start_tls(context, server_hostname=server_hostname, ssl_handshake_timeout=self.timeout)
        except ssl.SSLCertVerificationError as error:
            message = str(error.verify_message or error.reason or error)
            self.transcript.append(f"-- TLS handshake failed: certificate verify failed: {message}")
            raise SessionError(
                SessionFailure("TLS", FailureKind.TLS, f"certificate verify failed: {message}"),
                verify_code=int(error.verify_code) if error.verify_code is not None else None,
                verify_message=message,
            ) from None
        except TimeoutError:
            self.transcript.append("-- TLS handshake timed out")
            raise _fail("TLS", FailureKind.TIMEOUT, f"no TLS handshake within {self.timeout:g} s") from None
        except ssl.SSLError as error:
            message = str(error.reason or error)
            self.transcript.append(f"-- TLS handshake failed: {message}")
            raise _fail("TLS", FailureKind.TLS, message) from None
        except (ConnectionError, OSError) as error:
            message = str(error) or type(error).__name__
            self.transcript.append(f"-- TLS handshake failed: {message}")
            raise _fail("TLS", FailureKind.TLS, f"the connection broke during the handshake: {message}") from None
        ssl_object = writer.get_extra_info("ssl_object")
        version = cipher = None
        bits: int | None = None
        der: bytes | None = None
        if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            version = ssl_object.version()
            negotiated = ssl_object.cipher()
            if negotiated is not None:
                cipher, bits = negotiated[0], negotiated[2]
            der = ssl_object.getpeercert(binary_form=True)
        self._handshake_failed = False
        self.transcript.append(f"-- TLS established: {version} {cipher}")
        return TLSSession(version, cipher, bits, der)

    async def quit(self) -> SMTPReply | None:
        """Say QUIT and close; a server that does not answer politely changes nothing."""
        reply: SMTPReply | None = None
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(SessionError):
                await self.send("QUIT", "QUIT")
                reply = await self.read_reply("QUIT", timeout=min(self.timeout, QUIT_TIMEOUT))
        await self.close()
        return reply

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        if self._handshake_failed:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(min(self.timeout, QUIT_TIMEOUT)):
                await writer.wait_closed()

    def _require_reader(self, stage: str) -> asyncio.StreamReader:
        if self._reader is None:
            raise _fail(stage, FailureKind.CLOSED, "the connection is not open")
        return self._reader

    def _require_writer(self, stage: str) -> asyncio.StreamWriter:
        if self._writer is None or self._writer.is_closing():
            raise _fail(stage, FailureKind.CLOSED, "the connection is not open")
        return self._writer


@dataclass(frozen=True, slots=True)
class Greeting:
    """The opening of a conversation: the banner and the answer to EHLO (or HELO)."""

    banner: SMTPReply
    command: str
    """``EHLO``, or ``HELO`` when the server refused EHLO."""
    reply: SMTPReply
    ehlo_refusal: SMTPReply | None
    """The EHLO reply that made us fall back to HELO."""


_DOMAIN = re.compile(
    r"^(?=.{1,253}\.?$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
)
_ADDRESS_LITERAL = re.compile(r"^\[(?:IPv6:[0-9A-Fa-f:.]+|\d{1,3}(?:\.\d{1,3}){3})\]$")


def announced_host(reply: SMTPReply | None) -> str | None:
    """The host name a banner (``220 mx.example.com ESMTP``) or an EHLO reply (``250-mx.example.com``) announces."""
    if reply is None or not reply.lines:
        return None
    first = reply.lines[0].split()
    if not first:
        return None
    token = first[0]
    if _DOMAIN.match(token):
        return token.rstrip(".").lower()
    if _ADDRESS_LITERAL.match(token):
        return token
    return None


def parse_extensions(reply: SMTPReply) -> dict[str, str]:
    """EHLO keywords (upper case) to their parameters; the first line is the greeting, not an extension.

    AUTH may come twice, once in the pre-RFC 4954 form (``AUTH=LOGIN PLAIN``) that old
    clients need; the mechanisms of both lines are merged in order of appearance.
    """
    extensions: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if not keyword:
            continue
        keyword = keyword.upper()
        if keyword.startswith("AUTH="):
            keyword, params = "AUTH", f"{keyword[5:]} {params}"
        if keyword == "AUTH" and "AUTH" in extensions:
            known = extensions["AUTH"].split()
            params = " ".join(known + [m for m in params.split() if m not in known])
        extensions[keyword] = " ".join(params.split())
    return extensions


def auth_mechanisms(extensions: dict[str, str] | None) -> list[str]:
    if not extensions or "AUTH" not in extensions:
        return []
    return [m.upper() for m in extensions["AUTH"].split()]


async def greet(client: SMTPClient, ehlo_name: str) -> Greeting:
    """Read the banner and introduce ourselves; EHLO first, HELO when EHLO is refused (RFC 5321 4.1.1.1)."""
    banner = await client.read_reply("banner")
    if banner.code != 220:
        raise _fail("banner", FailureKind.REJECTED, f"the greeting was {banner}")
    return await hello(client, banner, ehlo_name)


async def hello(client: SMTPClient, banner: SMTPReply, ehlo_name: str) -> Greeting:
    ehlo = await client.command(f"EHLO {ehlo_name}", "EHLO")
    if ehlo.code == 250:
        return Greeting(banner, "EHLO", ehlo, None)
    if ehlo.code == 421:
        raise _fail("EHLO", FailureKind.REJECTED, f"EHLO was answered with {ehlo}")
    helo = await client.command(f"HELO {ehlo_name}", "HELO")
    if helo.code != 250:
        raise _fail("HELO", FailureKind.REJECTED, f"EHLO was answered with {ehlo} and HELO with {helo}")
    return Greeting(banner, "HELO", helo, ehlo)


def check_ehlo_name(ehlo_name: str) -> None:
    """A caller bug, not a server problem: refuse names that would break the command line."""
    if not ehlo_name or any(c.isspace() for c in ehlo_name) or not ehlo_name.isascii():
        raise ValueError(f"ehlo_name must be one ASCII word without spaces, got {ehlo_name!r}")


def check_target(port: int, timeout: float) -> None:
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")


def unverified_context() -> ssl.SSLContext:
    """A client context that completes the handshake whatever the certificate, to read it and carry on."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
