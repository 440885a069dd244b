"""Delivery workers: lease due messages, deliver each, record every answer, then retry, bounce or finish.

Many workers may run against one database (``coldrelay serve --role delivery`` on several machines
with PostgreSQL): the queue hands out disjoint leases (``FOR UPDATE SKIP LOCKED``), a heartbeat keeps
the leases of messages still in flight from expiring, and a worker that dies simply lets its leases
expire, after which ``release_expired`` (run by every worker) gives them to the others. A message's
state change and its log rows are one transaction (``MailQueue.complete``), so a death at any point
leaves either nothing of the try (it is made again) or all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from coldrelay.config import Settings
from coldrelay.db import MessageState, utcnow
from coldrelay.mta.delivery.attempt import Answer, TryOutcome, completion_for, judge
from coldrelay.mta.delivery.dsn import FailedRecipient, build_dsn
from coldrelay.mta.delivery.notify import SenderNotifier
from coldrelay.mta.delivery.pool import DeliveryPool
from coldrelay.mta.delivery.reputation import ReputationGuard
from coldrelay.mta.delivery.routing import RouteError, Router
from coldrelay.mta.queue import Completion, Leased, LeaseLost, MailQueue, UnknownMessage

log = logging.getLogger(__name__)

PAUSED_RECHECK = timedelta(minutes=10)  # how soon a paused sender's message is looked at again


def worker_name() -> str:
    """A lease owner unique across machines and restarts: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(slots=True)
class WorkerStats:
    """Counters for tests, the bench and the banner."""

    tries: int = 0
    delivered: int = 0
    bounced: int = 0
    deferred: int = 0
    postponed: int = 0  # paused senders
    lost_leases: int = 0


class DeliveryWorker:
    """Delivers leased messages; ``run`` is the lease loop, ``deliver`` one message."""

    def __init__(
        self,
        queue: MailQueue,
        settings: Settings,
        *,
        router: Router,
        pool: DeliveryPool,
        notifier: SenderNotifier,
        guard: ReputationGuard | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.delivery = settings.delivery
        self.router = router
        self.pool = pool
        self.notifier = notifier
        self.guard = guard
        self.owner = owner or worker_name()
        self.clock = clock
        self.stats = WorkerStats()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._refill = max(1, min(self.delivery.batch_size, self.delivery.concurrency // 4))

    # --- one message ------------------------------------------------------------------------------

    async def deliver(self, message: Leased) -> None:
        """Try every recipient of ``message`` once and record the outcome; never raises for remote trouble."""
        if message.sender and self.guard is not None:
            pause = await self.guard.paused(message.sender)
            if pause is not None:
                await self._finish(
                    message,
                    Completion(
                        state=MessageState.DEFERRED,
                        next_attempt_at=self.clock() + PAUSED_RECHECK,
                        error=f"sending from {pause.name} is paused: {pause.detail}",
                        count_try=False,
                    ),
                )
                self.stats.postponed += 1
                return
        answers = await self._answers(message)
        now = self.clock()
        outcome = judge(answers, created_at=message.created_at, now=now, settings=self.delivery)
        if outcome.failed and message.sender:
            await self._send_dsn(message, outcome, now)
        completion = completion_for(outcome, sender=message.sender, tries_before=message.tries, now=now, settings=self.delivery)
        if not await self._finish(message, completion):
            return
        self.stats.tries += 1
        self.stats.delivered += len(outcome.delivered)
        self.stats.bounced += len(outcome.failed)
        self.stats.deferred += len(outcome.deferred)
        if self.guard is not None and message.sender:
            for pause in await self.guard.after_results(message.sender, outcome.diagnoses):
                log.warning("reputation guard paused %s %s: %s", pause.scope.value, pause.name, pause.detail)

    async def _answers(self, message: Leased) -> list[Answer]:
        by_domain: dict[str, list[str]] = defaultdict(list)
        for recipient in message.recipients:
            by_domain[recipient.rpartition("@")[2].lower()].append(recipient)
        groups = await asyncio.gather(*(self._deliver_domain(message, d, r) for d, r in by_domain.items()))
        answers = {answer.recipient: answer for group in groups for answer in group}
        return [answers[recipient] for recipient in message.recipients]

    async def _deliver_domain(self, message: Leased, domain: str, recipients: list[str]) -> list[Answer]:
        try:
            route = await self.router.route(domain)
        except RouteError as error:
            return [Answer(r, error.code, error.enhanced, error.reply_line(), None) for r in recipients]
        result = await self.pool.send(route, message.sender, recipients, message.data)
        return [
            Answer(
                recipient=item.recipient,
                code=item.reply.code,
                enhanced=item.reply.enhanced,
                text=item.reply.line(),
                remote_host=result.remote_host,
                tls_version=result.tls_version,
            )
            for item in result.results
        ]

    async def _send_dsn(self, message: Leased, outcome: TryOutcome, now: datetime) -> None:
        failures = [
            FailedRecipient(
                recipient=answer.recipient,
                reply_line=answer.text,
                remote_host=answer.remote_host,
                diagnosis=diagnosis,
                last_attempt=now,
            )
            for answer, diagnosis in outcome.failed
        ]
        dsn = build_dsn(
            reporting_mta=self.settings.hostname,
            original_sender=message.sender,
            queue_id=message.id,
            arrival_date=message.created_at or now,
            original_message=message.data,
            failures=failures,
            now=now,
        )
        try:
            await self.notifier.notify(message.sender, dsn)
        except Exception:  # the try is still recorded; the log rows tell the sender what the DSN would have
            log.exception("could not deliver the DSN for message %s to %s", message.id, message.sender)

    async def _finish(self, message: Leased, completion: Completion) -> bool:
        try:
            await self.queue.complete(message.id, self.owner, completion)
        except (LeaseLost, UnknownMessage) as exc:
            # Another worker holds it now (our lease expired) or a person deleted it: theirs to record.
            self.stats.lost_leases += 1
            log.warning("message %s: %s", message.id, exc)
            return False
        return True

    # --- the lease loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Lease and deliver until ``stop`` is set, then let the messages in flight finish."""
        housekeeping = asyncio.create_task(self._housekeeping(stop), name="coldrelay-delivery-housekeeping")
        try:
            while not stop.is_set():
                free = self.delivery.concurrency - len(self._in_flight)
                leased: list[Leased] = []
                # Refill in batches, not one message per finished delivery: each lease is a transaction.
                worth_leasing = free >= self._refill or (free > 0 and not self._in_flight)
                if worth_leasing:
                    try:
                        leased = await self.queue.lease(
                            self.owner, min(free, self.delivery.batch_size), self.delivery.lease_seconds
                        )
                    except Exception:
                        log.exception("leasing from the queue failed; trying again shortly")
                for message in leased:
                    task = asyncio.create_task(self._guarded(message), name=f"coldrelay-deliver-{message.id}")
                    self._in_flight[message.id] = task
                if not leased or len(self._in_flight) + self._refill > self.delivery.concurrency:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wait_for_work(stop), timeout=self.delivery.poll_interval)
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping

    async def _wait_for_work(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _guarded(self, message: Leased) -> None:
        try:
            await self.deliver(message)
        except Exception:
            # A bug or a database outage: the lease expires and the message is tried again (and held
            # after repeated crashes), so nothing is lost; say so loudly.
            log.exception("delivery of message %s failed unexpectedly; its lease will expire and it will be retried", message.id)
        finally:
            self._in_flight.pop(message.id, None)
            self._wake.set()

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """Heartbeat our leases and release other workers' expired ones."""
        interval = max(0.2, min(self.delivery.lease_seconds / 3, 30.0))
        while not stop.is_set() or self._in_flight:
            try:
                if self._in_flight:
                    lost = await self.queue.extend_leases(list(self._in_flight), self.owner, self.delivery.lease_seconds)
                    for message_id in lost & set(self._in_flight):  # not those that completed meanwhile
                        log.warning("lease on message %s was lost while delivering it", message_id)
                released = await self.queue.release_expired()
                if released.requeued or released.held:
                    self._wake.set()
            except Exception:
                log.exception("queue housekeeping failed; trying again")
            await asyncio.sleep(interval)
