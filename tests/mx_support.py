"""The MX on 127.0.0.1 for the inbound tests: a real SQLite database with hosted domains and mailboxes,
the Maildir store in a temporary data directory, and the listener on its own event loop in a thread,
so that tests talk to it with blocking smtplib and raw sockets."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from coldrelay.db import create_domain, create_engine, create_mailbox, session_factory, upgrade_database
from coldrelay.mta.edge import DatabaseDirectory, MXLimits, MXServer, start_mx
from coldrelay.mta.store import MaildirStore, MessageStore

T = TypeVar("T")

HOSTED = "hosted.test"
OTHER_HOSTED = "second.test"
MAILBOXES = ("alice@hosted.test", "bob@hosted.test", "carol@second.test")
DISABLED = "gone@hosted.test"
MX_HOSTNAME = "mx.hosted.test"


class LoopThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def make_database(tmp_path: Path) -> Any:
    """A migrated SQLite database with two hosted domains, three mailboxes and a disabled one."""
    engine = create_engine(f"sqlite:///{tmp_path / 'coldrelay.db'}")
    upgrade_database(engine)
    sessions = session_factory(engine)
    with sessions() as session:
        create_domain(session, HOSTED)
        create_domain(session, OTHER_HOSTED)
        for address in MAILBOXES:
            create_mailbox(session, address, "a long enough password")
        create_mailbox(session, DISABLED, "a long enough password").enabled = False
        session.commit()
    return engine


@dataclass
class RunningMX:
    loop: LoopThread
    server: MXServer
    data_dir: Path

    @property
    def port(self) -> int:
        return self.server.port

    def maildir(self, address: str) -> Path:
        local, _, domain = address.partition("@")
        return self.data_dir / "mail" / domain / local / "Maildir"

    def delivered(self, address: str) -> list[bytes]:
        """The messages in the mailbox's new/, oldest name first."""
        new = self.maildir(address) / "new"
        return [path.read_bytes() for path in sorted(new.iterdir())] if new.is_dir() else []

    def all_stored(self) -> list[Path]:
        mail = self.data_dir / "mail"
        return sorted(p for p in mail.rglob("*") if p.is_file()) if mail.is_dir() else []


def start(
    tmp_path: Path,
    limits: MXLimits | None = None,
    *,
    tls_context: ssl.SSLContext | None = None,
    store: MessageStore | None = None,
) -> RunningMX:
    engine = make_database(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    loop = LoopThread()
    directory = DatabaseDirectory(session_factory(engine))
    server = loop.run(
        start_mx(
            "127.0.0.1",
            0,
            directory,
            store or MaildirStore(data_dir),
            limits,
            hostname=MX_HOSTNAME,
            tls_context=tls_context,
        )
    )
    return RunningMX(loop, server, data_dir)


def stop(mx: RunningMX) -> None:
    mx.loop.run(mx.server.stop())
    mx.loop.close()


# --- raw socket client -----------------------------------------------------------------------------------------


class RawClient:
    """A line-level SMTP client on a plain socket, for what smtplib will not send."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        """One complete (possibly multi-line) reply, lines joined with newlines, CRLF removed."""
        lines: list[str] = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"connection closed; partial reply {self.buffer!r}, lines {lines}")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            text = line.decode("ascii")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)

    def command(self, line: str) -> str:
        self.send(line.encode("ascii") + b"\r\n")
        return self.reply()

    def closed_by_server(self, timeout: float = 5) -> bool:
        """True once the server has closed the connection (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def transaction(port: int, rcpt: str = "alice@hosted.test") -> RawClient:
    """A raw session that has greeted, said EHLO, MAIL FROM and one accepted RCPT TO."""
    client = RawClient(port)
    assert client.reply().startswith("220 ")
    assert client.command("EHLO client.example").startswith("250-")
    assert client.command("MAIL FROM:<sender@example.net>") == "250 2.1.0 Sender OK"
    assert client.command(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Recipient OK"
    return client


def wait_until(predicate: Any, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
