"""The delivery service as ``coldrelay serve`` runs it: one worker, its router, pool, guard and notifier."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping

from sqlalchemy import Engine

from coldrelay.config import Settings
from coldrelay.db import session_factory
from coldrelay.dns import Resolver
from coldrelay.mta.delivery.notify import SenderNotifier
from coldrelay.mta.delivery.pool import DeliveryPool
from coldrelay.mta.delivery.reputation import ReputationGuard
from coldrelay.mta.delivery.routing import Router
from coldrelay.mta.delivery.worker import DeliveryWorker
from coldrelay.mta.queue import MailQueue
from coldrelay.mta.store.message import MessageStore


class DeliveryService:
    """Owns the worker task; ``start`` returns at once, ``stop`` finishes the messages in flight."""

    def __init__(
        self,
        queue: MailQueue,
        engine: Engine,
        settings: Settings,
        resolver: Resolver,
        *,
        tls_context: ssl.SSLContext | None = None,
        port_override: int | Mapping[str, int] | None = None,
        owner: str | None = None,
        store: MessageStore | None = None,
        local_mailboxes: bool = True,
    ) -> None:
        self.settings = settings
        self.pool = DeliveryPool(
            settings.delivery,
            helo_hostname=settings.hostname,
            resolver=resolver,
            tls_context=tls_context,
            port_override=port_override,
        )
        self.guard = ReputationGuard(engine, settings.reputation)
        self.worker = DeliveryWorker(
            queue,
            settings,
            router=Router(resolver, settings.delivery),
            pool=self.pool,
            notifier=SenderNotifier(
                data_dir=settings.data_dir,
                hostname=settings.hostname,
                sessions=session_factory(engine),
                queue=queue,
                store=store,
                local_mailboxes=local_mailboxes,
            ),
            guard=self.guard,
            owner=owner,
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def owner(self) -> str:
        return self.worker.owner

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self.worker.run(self._stop), name="coldrelay-delivery")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.pool.close()
