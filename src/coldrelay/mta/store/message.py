"""What the MX hands to a store: one accepted message and its envelope, and the store's interface."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message the MX has accepted from a peer, for the mailboxes in ``recipients``.

    ``sender`` is the envelope MAIL FROM without brackets, ``""`` for the null reverse-path of a
    bounce. ``recipients`` are mailbox addresses as the directory stores them (lower case).
    ``content`` is the message as received, CRLF line endings, dot-stuffing already undone.
    """

    sender: str
    recipients: tuple[str, ...]
    content: bytes
    peer_ip: str
    helo: str
    protocol: str = "ESMTP"  # the Received header's "with" clause: SMTP, ESMTP or ESMTPS (RFC 3848)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    queue_id: str = field(default_factory=lambda: secrets.token_hex(8))  # names the message in Received and logs


class MessageStore(Protocol):
    """Where accepted messages go; ``store`` returns only once the message is durable on disk."""

    async def store(self, message: InboundMessage, *, hostname: str) -> None: ...
