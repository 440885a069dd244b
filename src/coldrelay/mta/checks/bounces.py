"""Bounces arriving at the MX: parse them with ``coldrelay.bounces`` and link each record to the queued message it answers.

A bounce is addressed to the envelope sender of the message that failed, so it arrives for one of
our mailboxes; ``coldrelay.bounces.parse`` turns it into one ``BounceRecord`` per failed recipient,
carrying the Message-ID of the original (``record.message_id``, without angle brackets). The link is
that Message-ID against the ``Message-ID`` header of the messages we queued.

Schema limit (``coldrelay.db`` is not changed in this slice): ``queued_messages`` has no column for
the Message-ID header, and our queue id is not part of the Message-ID we send (the queue makes its id
only at ``enqueue``, after the message is final). So ``QueueHeaderLocator`` narrows the candidates in
SQL to messages whose envelope sender is the mailbox the bounce arrived for (a bounce goes to the
envelope sender, and submission makes that the authenticated mailbox; the addresser a bounce names is
the remote MTA's claim, so a bounce sent to one mailbox never touches another's messages), keeps those
that went to the bounced recipient, and reads their headers, newest first, up to ``max_candidates``.
That is correct, but it costs a content read per candidate; an indexed ``message_id_header`` column
filled at ``enqueue`` makes it one indexed lookup. ``MessageLocator`` is the extension point for that.

A match is recorded as a ``DeliveryLog`` row for the queued message (``attempt`` 0: it comes from a
bounce email, not from one of our delivery attempts), with the record's status, diagnostic, reason,
provider and knowledge-base article. The queue state is not changed: bounces are easy to forge, and
whether an unauthenticated bounce may mark a message bounced is a later decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from coldrelay.bounces import BounceRecord, parse
from coldrelay.db import DeliveryLog, QueuedMessage
from coldrelay.db.models import DeliveryOutcome, LogSource
from coldrelay.mta.checks.headers import field_name, field_value, split_header
from coldrelay.mta.queue import MailQueue, QueueError, SpoolError
from coldrelay.mta.store.message import InboundMessage

log = logging.getLogger(__name__)

BOUNCE_ATTEMPT = 0
"""``DeliveryLog.attempt`` of a row written from a bounce email (delivery attempts count from 1)."""
DEFAULT_MAX_CANDIDATES = 500


@dataclass(frozen=True, slots=True)
class BounceLink:
    """One record of a bounce and the queued message it answers (``queue_id`` None: no match)."""

    record: BounceRecord
    queue_id: str | None
    log_id: int | None = None  # the DeliveryLog row written for it


class MessageLocator(Protocol):
    """Finds the queued message a bounce record answers; ``mailboxes`` are the bounce's envelope recipients."""

    async def locate(self, record: BounceRecord, mailboxes: Sequence[str]) -> str | None: ...


def message_id_header(content: bytes) -> str:
    """The first ``Message-ID`` of a message, without angle brackets and whitespace ("" when absent)."""
    fields, _ = split_header(content[:65536])
    return next((field_value(f).strip("<> \t") for f in fields if field_name(f) == "message-id"), "")


class QueueHeaderLocator:
    """Matches ``record.message_id`` against the Message-ID header of candidate queued messages (see the module notes)."""

    def __init__(self, queue: MailQueue, *, max_candidates: int = DEFAULT_MAX_CANDIDATES) -> None:
        self.queue = queue
        self.max_candidates = max_candidates

    def _candidates(self, senders: set[str]) -> list[tuple[str, list[str]]]:
        query = (
            select(QueuedMessage.id, QueuedMessage.recipients)
            .where(func.lower(QueuedMessage.sender).in_(sorted(senders)))
            .order_by(QueuedMessage.created_at.desc())
            .limit(self.max_candidates)
        )
        with self.queue.engine.connect() as connection:
            return [(row.id, list(row.recipients)) for row in connection.execute(query)]

    async def locate(self, record: BounceRecord, mailboxes: Sequence[str]) -> str | None:
        wanted = record.message_id.strip("<> \t")
        senders = {a.strip().lower() for a in mailboxes if a.strip()}
        if not wanted or not senders:
            return None
        recipient = record.recipient.strip().lower()
        for queue_id, recipients in await asyncio.to_thread(self._candidates, senders):
            if recipient and recipient not in {r.lower() for r in recipients}:
                continue
            try:
                content = await self.queue.read(queue_id)
            except (QueueError, SpoolError, OSError):  # delivered and deleted meanwhile
                continue
            if message_id_header(content) == wanted:
                return queue_id
        return None


OUR_DSN_MARKER = b"\nX-Coldrelay-Queue-ID: "
"""The field coldrelay.mta.delivery.dsn puts in the DSNs it writes (in the delivery-status part)."""


class BounceStep:
    """The MX pipeline step: parse, link, log. It never changes the message and never fails the delivery."""

    def __init__(self, engine: Engine, locator: MessageLocator) -> None:
        self.engine = engine
        self.locator = locator

    async def __call__(self, content: bytes, message: InboundMessage) -> bytes:
        try:
            await self.link(content, message.recipients)
        except Exception:  # the mailbox still gets the bounce; only the link is lost, and logged
            log.exception("bounce linking failed for %s", message.queue_id)
        return content

    async def link(self, content: bytes, mailboxes: Sequence[str]) -> list[BounceLink]:
        """The message's bounce records, each with the queued message it answers; matches are logged.

        A DSN coldrelay wrote itself (a delivery-only node mails it to the MX) is not linked again:
        the delivery attempt that caused it is already in the log, and counting it twice would
        double the sender's hard bounces in the reputation guard and the charts.
        """
        if OUR_DSN_MARKER in content:
            return []
        records = await asyncio.to_thread(parse, content)
        found = [(record, await self.locator.locate(record, mailboxes)) for record in records]
        matched = [(record, queue_id) for record, queue_id in found if queue_id is not None]
        log_ids = iter(await asyncio.to_thread(self._log, matched) if matched else [])
        links = [BounceLink(record, queue_id, next(log_ids) if queue_id is not None else None) for record, queue_id in found]
        for link in links:
            log.info(
                "bounce for <%s> (%s, %s) %s",
                link.record.recipient,
                link.record.status or "-",
                link.record.reason.value,
                f"answers queued message {link.queue_id}" if link.queue_id else "matches no queued message",
            )
        return links

    def _log(self, matched: list[tuple[BounceRecord, str]]) -> list[int]:
        rows = [
            DeliveryLog(
                message_id=queue_id,
                recipient=record.recipient[:320],
                remote_host=record.remote_mta[:253] or None,
                reply_code=int(record.replycode) if record.replycode.isdigit() else None,
                enhanced_code=record.status[:16] or None,
                reply_text=record.diagnostic or None,
                reason=record.reason.value[:32],
                provider=record.provider[:64] if record.provider else None,
                article=record.article[:200] if record.article else None,
                attempt=BOUNCE_ATTEMPT,
                source=LogSource.BOUNCE,
                outcome=DeliveryOutcome.BOUNCED if record.hard_bounce or record.action == "failed" else DeliveryOutcome.DEFERRED,
                hard_bounce=record.hard_bounce,
            )
            for record, queue_id in matched
        ]
        with Session(self.engine) as session:
            session.add_all(rows)
            session.commit()
            return [row.id for row in rows]
