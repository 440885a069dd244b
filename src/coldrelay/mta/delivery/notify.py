"""Getting a delivery status notification to the sender: straight into a hosted mailbox, else the queue.

A cold-email sender's envelope address is one of our mailboxes (submission enforces it), so the
DSN is written into that mailbox's Maildir, where the sending platform reads it over IMAP: no
SMTP round trip, and no chance of a bounce loop. A sender we do not host (mail relayed for an
outside address) gets the DSN through the queue with the null reverse-path, as RFC 5321 6.1 asks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldrelay.db import Mailbox
from coldrelay.mta.queue import MailQueue
from coldrelay.mta.store import MaildirStore
from coldrelay.mta.store.message import InboundMessage, MessageStore


class SenderNotifier:
    """Delivers DSNs to the senders of failed messages."""

    def __init__(
        self,
        *,
        data_dir: Path,
        hostname: str,
        sessions: sessionmaker[Session],
        queue: MailQueue,
        store: MessageStore | None = None,
        local_mailboxes: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.hostname = hostname
        self.sessions = sessions
        self.queue = queue
        # The MX's store, so a DSN lands in the Maildir exactly as inbound mail does (owner included,
        # which Dovecot needs when serve runs as root).
        self.store: MessageStore = store or MaildirStore(data_dir)
        # False on a delivery-only node: the Maildirs live with the MX on another machine, so a DSN
        # travels there by mail (our own MX, found through the sender domain's MX record).
        self.local_mailboxes = local_mailboxes

    async def notify(self, sender: str, dsn: bytes) -> str:
        """Send ``dsn`` to ``sender``; returns ``maildir`` or the queue id it was enqueued under.

        Never called for the null sender: a bounce of a bounce is not sent (RFC 5321 6.1, RFC 3464 2).
        """
        if not sender:
            raise ValueError("no DSN is sent for a message with the null reverse-path")
        address = sender.lower()
        if self.local_mailboxes and await asyncio.to_thread(self._is_hosted, address):
            message = InboundMessage(
                sender="",
                recipients=(address,),
                content=dsn,
                peer_ip="127.0.0.1",
                helo=self.hostname,
                protocol="LOCAL",
            )
            await self.store.store(message, hostname=self.hostname)
            return "maildir"
        return await self.queue.enqueue("", [sender], dsn)

    def _is_hosted(self, address: str) -> bool:
        with self.sessions() as session:
            return session.scalars(select(Mailbox.id).where(Mailbox.address == address)).first() is not None
