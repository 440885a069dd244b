"""Maildir delivery: ``<data-dir>/mail/<domain>/<local>/Maildir/{tmp,new,cur}``, the way qmail defined it.

The message is written under a unique name in ``tmp/``, fsync'ed, renamed into ``new/``, and then
``new/`` itself is fsync'ed so the rename survives a power cut: only after that does the MX answer
250. Readers (Dovecot) never see a half-written file, because a file appears in ``new/`` whole.

Files are stored with LF line endings, as Postfix's and Dovecot's own delivery agents write them;
the MX has already refused any message with a bare CR or LF, so the conversion is lossless.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import threading
import time
from email.utils import format_datetime
from pathlib import Path

from coldrelay.mta.store.message import InboundMessage

MAILDIR_SUBDIRS = ("tmp", "new", "cur")
_SAFE_LOCAL = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_SAFE_DOMAIN = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")
_HEADER_UNSAFE = re.compile(r"[^\x21-\x7e]")  # anything but visible ASCII is replaced in trace headers

_deliveries = itertools.count(1)
_deliveries_lock = threading.Lock()


class UnsafeAddress(ValueError):
    """An address that cannot name a Maildir (it would escape the mail directory or is not a mailbox)."""


def maildir_path(data_dir: Path, address: str) -> Path:
    """The Maildir of a mailbox; refuses anything that is not a stored mailbox address."""
    local, at, domain = address.rpartition("@")
    if not at or not _SAFE_LOCAL.fullmatch(local) or ".." in local or not _SAFE_DOMAIN.fullmatch(domain):
        raise UnsafeAddress(f"not a mailbox address: {address!r}")
    return data_dir / "mail" / domain / local / "Maildir"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_maildir(root: Path) -> None:
    """Create the Maildir and any missing parents (owner-only), fsync'ing each parent that gained an entry."""
    missing: list[Path] = []
    for path in (root, *root.parents):
        if path.is_dir():
            break
        missing.append(path)
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # a concurrent delivery made it first
            continue
        _fsync_dir(path.parent)
    for sub in MAILDIR_SUBDIRS:
        target = root / sub
        if not target.is_dir():
            try:
                target.mkdir(mode=0o700)
            except FileExistsError:
                continue
            _fsync_dir(root)


def unique_name(hostname: str) -> str:
    """A Maildir file name no other delivery (this process, another process, another host) can take.

    The modern qmail/Dovecot form ``<sec>.M<usec>P<pid>Q<n>R<random>.<host>``; ``/`` and ``:`` in the
    host name are escaped as the Maildir spec asks.
    """
    now = time.time()
    seconds = int(now)
    with _deliveries_lock:
        count = next(_deliveries)
    host = hostname.replace("/", r"\057").replace(":", r"\072") or "localhost"
    return f"{seconds}.M{int((now - seconds) * 1_000_000)}P{os.getpid()}Q{count}R{secrets.token_hex(8)}.{host}"


def _clean(text: str) -> str:
    return _HEADER_UNSAFE.sub("_", text)


def trace_headers(message: InboundMessage, recipient: str, hostname: str) -> bytes:
    """``Return-Path:`` (RFC 5321 4.4) and our ``Received:`` line, LF-terminated."""
    sender = _clean(message.sender)
    received = (
        f"Received: from {_clean(message.helo) or 'unknown'} ([{_clean(message.peer_ip)}])\n"
        f"\tby {_clean(hostname)} (coldrelay) with {message.protocol} id {message.queue_id}\n"
        f"\tfor <{_clean(recipient)}>; {format_datetime(message.received_at)}\n"
    )
    return f"Return-Path: <{sender}>\n{received}".encode("ascii")


def deliver_to_maildir(
    data_dir: Path, recipient: str, message: InboundMessage, *, hostname: str, chown_to: tuple[int, int] | None = None
) -> Path:
    """Deliver one copy durably; returns its path in ``new/``. Blocking: call it from a worker thread.

    ``chown_to`` (uid, gid) hands the file to another user while it is still in ``tmp/``: once it
    is in ``new/`` an IMAP server may move it at any moment, so a later chown could miss it.
    """
    root = maildir_path(data_dir, recipient)
    ensure_maildir(root)
    name = unique_name(hostname)
    tmp_path = root / "tmp" / name
    data = trace_headers(message, recipient, hostname) + message.content.replace(b"\r\n", b"\n")
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            if chown_to is not None:
                os.fchown(fd, *chown_to)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        final_path = root / "new" / name
        os.rename(tmp_path, final_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(root / "new")
    return final_path


class MaildirStore:
    """The MX's store step: one Maildir copy per accepted recipient, all durable before ``store`` returns."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    async def store(self, message: InboundMessage, *, hostname: str) -> None:
        await asyncio.to_thread(self._deliver_all, message, hostname)

    def _deliver_all(self, message: InboundMessage, hostname: str) -> list[Path]:
        # A mailbox named twice (user+a, user+b) gets one copy, as RFC 5321 3.3 expects of a final delivery.
        return [deliver_to_maildir(self.data_dir, rcpt, message, hostname=hostname) for rcpt in dict.fromkeys(message.recipients)]
