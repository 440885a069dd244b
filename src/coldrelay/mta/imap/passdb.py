"""Dovecot's password file, written from the mailboxes table.

Each enabled mailbox becomes one ``address:{ARGON2ID}<encoded hash>`` line. The hash is the one
``db.accounts`` stored with argon2-cffi; Dovecot verifies it with libsodium (``doveadm pw -l`` lists
ARGON2ID on Debian's 2.3), so IMAP accepts exactly the password submission accepts and no second
secret exists anywhere. A disabled mailbox simply has no line, so it cannot log in.

Dovecot re-reads the file when its mtime (whole seconds) or size changes. Two rewrites in the same
second that happen to keep the size (one address disabled, another of equal length enabled) would go
unnoticed, so a changed file always gets an mtime at least one second past the old one. An unchanged
file is not rewritten at all, so the periodic refresh costs Dovecot nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from coldrelay.db.models import Mailbox
from coldrelay.mta.store.maildir import UnsafeAddress, maildir_path

log = logging.getLogger(__name__)

# argon2 encoded-hash prefix -> Dovecot's scheme name; anything else cannot be verified by Dovecot.
_SCHEMES = {"$argon2id$": "ARGON2ID", "$argon2i$": "ARGON2I"}


def passdb_line(address: str, password_hash: str) -> str | None:
    """The passwd-file line for one mailbox, or ``None`` when Dovecot could not use it safely.

    Refused: addresses that name no Maildir (the same rule the MX store uses, which also keeps
    ``:`` and newlines out of the user field) and hashes in a scheme Dovecot does not verify.
    """
    try:
        maildir_path(Path("/"), address)
    except UnsafeAddress:
        return None
    scheme = next((name for prefix, name in _SCHEMES.items() if password_hash.startswith(prefix)), None)
    if scheme is None or any(char in password_hash for char in ":\n\r\0"):
        return None
    return f"{address}:{{{scheme}}}{password_hash}"


def passdb_text(mailboxes: Iterable[tuple[str, str]]) -> tuple[str, int]:
    """The whole file for ``(address, hash)`` pairs of enabled mailboxes, and how many lines it has."""
    lines: list[str] = []
    for address, password_hash in mailboxes:
        line = passdb_line(address, password_hash)
        if line is None:
            log.warning("IMAP: mailbox %r left out of Dovecot's password file (unusable address or hash)", address)
            continue
        lines.append(line)
    lines.sort()
    header = "# Written by coldrelay from its database; edits are overwritten. address:{scheme}hash\n"
    return header + "".join(f"{line}\n" for line in lines), len(lines)


def enabled_mailboxes(engine: Engine) -> list[tuple[str, str]]:
    """``(address, password hash)`` of every enabled mailbox. Blocking: call it from a worker thread."""
    with Session(engine) as session:
        rows = session.execute(select(Mailbox.address, Mailbox.password_hash).where(Mailbox.enabled.is_(True))).all()
    return [(address, password_hash) for address, password_hash in rows]


def write_passdb(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` atomically (owner-only); ``False`` when it already held exactly that.

    Blocking: call it from a worker thread.
    """
    data = text.encode("utf-8")
    try:
        old_stat = path.stat()
        if path.read_bytes() == data:
            return False
        old_mtime: int | None = int(old_stat.st_mtime)
    except FileNotFoundError:
        old_mtime = None
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if old_mtime is not None and int(tmp.stat().st_mtime) <= old_mtime:
        bumped = old_mtime + 1  # Dovecot compares whole seconds: make the change visible (module docstring)
        os.utime(tmp, (bumped, bumped))
    os.replace(tmp, path)
    return True
