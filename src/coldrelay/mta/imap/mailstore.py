"""Maildirs that Dovecot's mail processes can open: owned by the mail user from the first byte.

As a normal user nothing changes: coldrelay and Dovecot are the same user, and delivery is
``mta.store.maildir.deliver_to_maildir`` itself. Under root they are not: Dovecot refuses to open
mail as uid 0, so its mail processes run as ``conf.ROOT_MAIL_USER``, and the MX (root) must hand
each file and directory it creates to that user. A file is ``fchown``'ed in ``tmp/`` before the
rename into ``new/``, because once it is in ``new/`` Dovecot may move it to ``cur/`` at any moment:
a ``chown`` after the rename could miss it, and a reader could meet a root-owned file it cannot open.

The durable-write sequence (write, fsync, rename, fsync ``new/``) is the store's own
(``deliver_to_maildir`` with ``chown_to``); this module adds the directories' ownership.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from coldrelay.mta.store.maildir import (
    MAILDIR_SUBDIRS,
    deliver_to_maildir,
    ensure_maildir,
    maildir_path,
)
from coldrelay.mta.store.message import InboundMessage


@dataclass(frozen=True, slots=True)
class MailOwner:
    """The user and group Dovecot opens the Maildirs as."""

    uid: int
    gid: int

    @property
    def is_current_user(self) -> bool:
        return self.uid == os.geteuid() and self.gid == os.getegid()


def _own(path: Path, owner: MailOwner) -> None:
    status = path.lstat()
    if (status.st_uid, status.st_gid) != (owner.uid, owner.gid):
        os.lchown(path, owner.uid, owner.gid)


def _ensure_owned_maildir(mail_root: Path, root: Path, owner: MailOwner) -> None:
    """``ensure_maildir``, then every directory from the mail root down handed to ``owner``."""
    ensure_maildir(root)
    relative = root.relative_to(mail_root)  # <domain>/<local>/Maildir
    for directory in (*reversed(relative.parents), relative):  # ".", "<domain>", ... down to the Maildir
        _own(mail_root / directory, owner)
    for sub in MAILDIR_SUBDIRS:
        _own(root / sub, owner)


def deliver_owned(data_dir: Path, recipient: str, message: InboundMessage, *, hostname: str, owner: MailOwner) -> Path:
    """Deliver one copy durably, owned by ``owner``; returns its path in ``new/``. Blocking."""
    if owner.is_current_user:
        return deliver_to_maildir(data_dir, recipient, message, hostname=hostname)
    _ensure_owned_maildir(data_dir / "mail", maildir_path(data_dir, recipient), owner)
    return deliver_to_maildir(data_dir, recipient, message, hostname=hostname, chown_to=(owner.uid, owner.gid))


class OwnedMaildirStore:
    """The MX's store step when IMAP serves the Maildirs: ``MaildirStore`` with the mail user as owner."""

    def __init__(self, data_dir: Path, owner: MailOwner) -> None:
        self.data_dir = data_dir
        self.owner = owner

    async def store(self, message: InboundMessage, *, hostname: str) -> None:
        await asyncio.to_thread(self._deliver_all, message, hostname)

    def _deliver_all(self, message: InboundMessage, hostname: str) -> list[Path]:
        # One copy per mailbox, as MaildirStore does (RFC 5321 3.3).
        return [
            deliver_owned(self.data_dir, rcpt, message, hostname=hostname, owner=self.owner)
            for rcpt in dict.fromkeys(message.recipients)
        ]


def adopt_mail_tree(mail_root: Path, owner: MailOwner) -> int:
    """Create the mail root if needed and hand everything under it to ``owner``; returns how many changed.

    Run before Dovecot starts, for Maildirs delivered before IMAP was enabled (or by a run as
    another user). Blocking: call it from a worker thread.
    """
    if not mail_root.is_dir():
        mail_root.mkdir(mode=0o700, parents=True)
    if owner.is_current_user:
        return 0
    changed = 0
    paths = [mail_root]
    for directory, subdirs, files in os.walk(mail_root):
        paths.extend(Path(directory) / name for name in (*subdirs, *files))
    for path in paths:
        status = path.lstat()
        if (status.st_uid, status.st_gid) != (owner.uid, owner.gid):
            os.lchown(path, owner.uid, owner.gid)
            changed += 1
    return changed
