"""Which recipients the MX takes: existing, enabled mailboxes of hosted domains, and nothing else.

The forward-path of ``RCPT TO`` is parsed strictly (RFC 5321 4.1.2) and only the plainest form is
looked up: ``<local@domain>`` with a dot-string local part of letters, digits, ``. _ - +`` and a
host name of LDH labels. Everything a relay trick needs is outside that form and refused with
``550 5.7.1 Unable to relay`` before any lookup: ``%`` (percent hack), ``!`` (bang path), quoted
local parts, source routes (``@a:``), address literals (``[192.0.2.1]``), a second ``@``, trailing
or doubled dots, spaces, comments, backslashes, control characters and encoded forms (``%40``).
A ``+tag`` is a subaddress: ``user+tag@domain`` is delivered to ``user@domain``.
"""

from __future__ import annotations

import asyncio
import enum
import re
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldrelay.db.models import Domain, Mailbox
from coldrelay.mta import replies
from coldrelay.mta.replies import Reply

MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
MAX_PATH = 256  # RFC 5321 4.5.3.1.3, brackets included

_ATOM = r"[A-Za-z0-9_+-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>{_LABEL}(?:\.{_LABEL})+)")


class MailboxState(enum.Enum):
    """What the directory knows of an address."""

    NOT_HOSTED = "not-hosted"  # the domain is not ours
    UNKNOWN = "unknown"  # our domain, no such mailbox
    DISABLED = "disabled"
    ACTIVE = "active"


class MailboxDirectory(Protocol):
    """Looks up a ``local@domain`` address (lower case) among the hosted domains and mailboxes."""

    async def lookup(self, address: str) -> MailboxState: ...


class DatabaseDirectory:
    """The directory over ``coldrelay.db``; the query runs in a worker thread so the listener keeps serving."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def lookup(self, address: str) -> MailboxState:
        return await asyncio.to_thread(self._lookup, address)

    def _lookup(self, address: str) -> MailboxState:
        domain_name = address.rpartition("@")[2]
        with self._sessions() as session:
            domain_id = session.scalars(select(Domain.id).where(Domain.name == domain_name)).one_or_none()
            if domain_id is None:
                return MailboxState.NOT_HOSTED
            enabled = session.scalars(
                select(Mailbox.enabled).where(Mailbox.address == address, Mailbox.domain_id == domain_id)
            ).one_or_none()
        if enabled is None:
            return MailboxState.UNKNOWN
        return MailboxState.ACTIVE if enabled else MailboxState.DISABLED


@dataclass(frozen=True, slots=True)
class RecipientDecision:
    """The answer to one RCPT TO; ``mailbox`` is where an accepted recipient's copy goes."""

    reply: Reply
    mailbox: str | None = None

    @property
    def accepted(self) -> bool:
        return self.mailbox is not None


def split_forward_path(argument: str) -> tuple[str, str] | None:
    """``<path> params`` -> (``<path>``, ``params``); ``None`` when there is no bracketed path at all.

    The closing bracket is found outside quoted strings, so ``<"a>b"@x>`` is one (refused) path,
    not a path followed by garbage.
    """
    if not argument.startswith("<"):
        return None
    quoted = escaped = False
    for index, char in enumerate(argument):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            path, rest = argument[: index + 1], argument[index + 1 :]
            if rest and not rest.startswith(" "):
                return None
            return path, rest.strip()
    return None


def parse_plain_address(path: str) -> tuple[str, str] | None:
    """(local part, domain) of ``<local@domain>`` in the plain form described above, else ``None``."""
    if len(path) > MAX_PATH or not (path.startswith("<") and path.endswith(">")):
        return None
    match = _PLAIN_ADDRESS.fullmatch(path[1:-1])
    if match is None or len(match["local"]) > MAX_LOCAL_PART:
        return None
    return match["local"], match["domain"]


class RecipientPolicy:
    """Decides each RCPT TO of the MX."""

    def __init__(self, directory: MailboxDirectory) -> None:
        self.directory = directory

    async def decide(self, path: str) -> RecipientDecision:
        """``path`` is the forward-path with its brackets, as the client sent it."""
        parsed = parse_plain_address(path)
        if parsed is None:
            return RecipientDecision(replies.UNABLE_TO_RELAY)
        local, domain = parsed
        mailbox = f"{local.lower().partition('+')[0]}@{domain.lower()}"
        state = await self.directory.lookup(mailbox)
        if state is MailboxState.NOT_HOSTED:
            return RecipientDecision(replies.UNABLE_TO_RELAY)
        if state is MailboxState.UNKNOWN:
            return RecipientDecision(replies.USER_UNKNOWN)
        if state is MailboxState.DISABLED:
            return RecipientDecision(replies.MAILBOX_DISABLED)
        return RecipientDecision(replies.RECIPIENT_OK, mailbox)
