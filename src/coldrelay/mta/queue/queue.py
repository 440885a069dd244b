"""The durable mail queue: enqueue with group commit, leases for delivery workers, explicit states.

States (``QueueState``): ``queued`` (due now), ``leased`` (a worker holds it until the lease
expires), ``deferred`` (due at ``next_attempt_at``), ``held`` (quarantined: it kept killing the
workers that leased it; a person releases it with ``retry``), and the final ``delivered`` and
``bounced``. Every move is one conditional UPDATE, and every move out of ``leased`` names the
lease owner, so a slow worker whose lease expired and went to another worker gets ``LeaseLost``
instead of overwriting the other's result.

Durability: ``enqueue`` returns (and the edge may say 250) only once the bytes and the row are
committed: the spool file is written and fsync'ed, the spool directory fsync'ed, then the row
committed (SQLite WAL with ``synchronous=FULL`` fsyncs the WAL; PostgreSQL commits durably).
Group commit: enqueues go to one writer task that collects whatever arrives within
``commit_window`` (and whatever piles up while the previous commit is running) and commits it as
one transaction, so N concurrent sessions pay for far fewer than N fsyncs.

Why blocking calls in ``asyncio.to_thread`` rather than SQLAlchemy's asyncio extension: the
engine factory in ``coldrelay.db`` already sets the durability pragmas on the sync SQLite driver,
the asyncio extension would need a second pair of drivers (aiosqlite, which itself runs sqlite3 in
a thread, and psycopg's async mode) and a second engine with its own pool and pragmas, and every
queue operation is one short statement; the writer makes one thread hop per *batch*, not per
message. So the event loop never blocks, with one engine and one set of settings.

Where the bytes live (``ContentStore``): in spool files for SQLite (see ``spool.py`` for why); in
the row for PostgreSQL by default, because delivery nodes on other machines share the queue and
cannot read a file on the edge's local disk, and one commit then covers bytes and row alike.

Schema limits worked around here (no change to ``coldrelay.db`` in this slice): the model's state
CHECK has no ``held``, so a held message is stored as ``deferred`` with ``next_attempt_at`` at
``HELD_UNTIL`` (the end of time) and reported as ``held``; and there is one counter, ``attempts``,
which here counts leases that expired without an outcome (the crash counter).
"""

from __future__ import annotations

import asyncio
import builtins
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from sqlalchemy import ColumnElement, Engine, Table, case, delete, insert, select, update
from sqlalchemy.engine import Row

from coldrelay.db import DeliveryLog, MessageState, QueuedMessage, utcnow
from coldrelay.db.models import new_message_id
from coldrelay.mta.queue.spool import Spool, SpoolError

log = logging.getLogger(__name__)

DEFAULT_MAX_CRASHES = 5  # expired leases before a message is held (Mailman's poison-message counter)
DEFAULT_COMMIT_WINDOW = 0.002  # seconds the writer waits for more enqueues to share a commit
DEFAULT_MAX_BATCH = 256  # rows per group commit
DEFAULT_LEASE_SECONDS = 300.0
DEFAULT_ORPHAN_GRACE = 3600.0  # seconds before an unreferenced spool file counts as a crash leftover
HELD_UNTIL = datetime(9999, 12, 31, tzinfo=UTC)  # next_attempt_at of a held message

_TABLE = cast(Table, QueuedMessage.__table__)
_LOG_TABLE = cast(Table, DeliveryLog.__table__)


class QueueState(enum.StrEnum):
    """What the queue reports; ``held`` is stored as deferred-until-``HELD_UNTIL`` (see the module notes)."""

    QUEUED = "queued"
    LEASED = "leased"
    DEFERRED = "deferred"
    HELD = "held"
    DELIVERED = "delivered"
    BOUNCED = "bounced"


class ContentStore(enum.StrEnum):
    """Where message bytes are kept: a spool file per message, or the row's blob."""

    SPOOL = "spool"
    ROW = "row"


class QueueError(Exception):
    """A queue operation that cannot be done."""


class UnknownMessage(QueueError):
    """No queued message has this id."""


class LeaseLost(QueueError):
    """The caller no longer holds the lease (it expired and was released, or another worker has it)."""


class WrongState(QueueError):
    """The message is not in a state this operation applies to."""


class QueueClosed(QueueError):
    """``enqueue`` after ``close``."""


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One message as the dashboard and CLI see it (without its bytes; ``MailQueue.read`` has those)."""

    id: str
    sender: str
    recipients: list[str]
    state: QueueState
    attempts: int  # leases that expired without an outcome: the crash counter
    next_attempt_at: datetime | None  # None while held
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    message_path: str | None  # spool file name, or None when the bytes are in the row


@dataclass(frozen=True, slots=True)
class Leased:
    """A message a worker now holds: deliver it, then record the try with ``complete`` (or the single-step
    ``mark_delivered``, ``defer``, ``bounce``)."""

    id: str
    sender: str
    recipients: list[str]
    data: bytes
    attempts: int  # expired leases so far (the crash counter)
    owner: str
    lease_expires_at: datetime
    tries: int = 0  # delivery tries already made (the retry schedule's position)
    created_at: datetime | None = None  # when the message was accepted (retries give up relative to it)


@dataclass(frozen=True, slots=True)
class Completion:
    """What one delivery try did to a message, for ``MailQueue.complete``.

    ``state``: delivered or bounced (final) or deferred (``next_attempt_at`` required);
    ``remaining``: the recipients still to try when some were done (deferred only);
    ``log_rows``: ``DeliveryLog`` column values, one dict per recipient answered in this try.
    """

    state: MessageState
    next_attempt_at: datetime | None = None
    remaining: Sequence[str] | None = None
    error: str | None = None
    log_rows: Sequence[dict[str, Any]] = ()
    count_try: bool = True  # False when nothing was tried (a paused sender's message is only postponed)


def _completion_values(completion: Completion) -> dict[str, Any]:
    """The row values a completion sets; ``ValueError`` for a move no try can make."""
    values: dict[str, Any] = {
        "state": completion.state,
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": completion.error,
    }
    if completion.count_try:
        values["tries"] = QueuedMessage.tries + 1
    if completion.state is MessageState.DEFERRED:
        if completion.next_attempt_at is None or completion.next_attempt_at.tzinfo is None:
            raise ValueError("a deferred completion needs an aware next_attempt_at")
        values["next_attempt_at"] = completion.next_attempt_at
    elif completion.state not in (MessageState.DELIVERED, MessageState.BOUNCED):
        raise ValueError(f"a completion cannot move a message to {completion.state}")
    if completion.remaining is not None:
        if not completion.remaining:
            raise ValueError("remaining recipients, when given, cannot be empty")
        values["recipients"] = builtins.list(completion.remaining)
    return values


@dataclass(slots=True)
class _PendingCompletion:
    message_id: str
    owner: str
    values: dict[str, Any]
    log_rows: Sequence[dict[str, Any]]
    done: asyncio.Future[None] = field(repr=False)
    group_key: tuple[object, ...] = ()  # completions with equal keys set equal values: one UPDATE serves them all


@dataclass(frozen=True, slots=True)
class Released:
    """What ``release_expired`` did: messages back in the queue, and messages it quarantined."""

    requeued: tuple[str, ...]
    held: tuple[str, ...]


@dataclass(slots=True)
class QueueStats:
    """Counters of the group-commit writer (for tests, benchmarks and the dashboard)."""

    enqueued: int = 0
    commits: int = 0
    largest_batch: int = 0


@dataclass(slots=True)
class _Pending:
    id: str
    sender: str
    recipients: list[str]
    path: str | None
    blob: bytes | None
    done: asyncio.Future[None] = field(repr=False)


def _state_of(state: MessageState, next_attempt_at: datetime) -> QueueState:
    if state is MessageState.DEFERRED and next_attempt_at >= HELD_UNTIL:
        return QueueState.HELD
    return QueueState(state.value)


def _state_filter(state: QueueState) -> ColumnElement[bool]:
    if state is QueueState.HELD:
        return (QueuedMessage.state == MessageState.DEFERRED) & (QueuedMessage.next_attempt_at >= HELD_UNTIL)
    if state is QueueState.DEFERRED:
        return (QueuedMessage.state == MessageState.DEFERRED) & (QueuedMessage.next_attempt_at < HELD_UNTIL)
    return QueuedMessage.state == MessageState(state.value)


class MailQueue:
    """The queue over a ``coldrelay.db`` engine and a spool directory (``<data-dir>/spool``).

    Use one instance per process and event loop; several processes (and several machines, on
    PostgreSQL) may share one database. ``close`` (or ``async with``) drains pending enqueues.
    """

    def __init__(
        self,
        engine: Engine,
        spool_dir: Path,
        *,
        content: ContentStore | None = None,
        max_crashes: int = DEFAULT_MAX_CRASHES,
        commit_window: float = DEFAULT_COMMIT_WINDOW,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_crashes < 1:
            raise ValueError("max_crashes must be at least 1")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.engine = engine
        self.spool = Spool(spool_dir)
        if content is None:
            content = ContentStore.ROW if engine.dialect.name == "postgresql" else ContentStore.SPOOL
        self.content = content
        self.max_crashes = max_crashes
        self.commit_window = commit_window
        self.max_batch = max_batch
        self.stats = QueueStats()
        self._inbox: asyncio.Queue[_Pending | None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._completions: asyncio.Queue[_PendingCompletion | None] | None = None
        self._completer: asyncio.Task[None] | None = None
        self._completer_loop: asyncio.AbstractEventLoop | None = None
        self._writer_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._active = 0  # enqueues in progress

    async def __aenter__(self) -> MailQueue:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    # --- enqueue with group commit ----------------------------------------------------------------

    async def enqueue(self, sender: str, recipients: Sequence[str], data: bytes) -> str:
        """Store a message durably and return its id; only then may the edge answer 250."""
        if self._closed:
            raise QueueClosed("the queue is closed")
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        self._active += 1
        try:
            message_id = new_message_id()
            path: str | None = None
            if self.content is ContentStore.SPOOL:
                path = await asyncio.to_thread(self.spool.write, message_id, data)
            inbox = self._ensure_writer()
            pending = _Pending(
                message_id,
                sender,
                builtins.list(recipients),
                path,
                None if path else data,
                asyncio.get_running_loop().create_future(),
            )
            inbox.put_nowait(pending)
            await pending.done
            return message_id
        finally:
            self._active -= 1

    def _ensure_writer(self) -> asyncio.Queue[_Pending | None]:
        loop = asyncio.get_running_loop()
        if self._inbox is None or self._writer is None or self._writer.done() or self._writer_loop is not loop:
            self._inbox = asyncio.Queue()
            self._writer_loop = loop
            self._writer = loop.create_task(self._write_loop(self._inbox), name="coldrelay-queue-writer")
        return self._inbox

    async def _write_loop(self, inbox: asyncio.Queue[_Pending | None]) -> None:
        stopping = False
        while not stopping:
            first = await inbox.get()
            if first is None:
                return
            batch = [first]
            if self.commit_window > 0 and inbox.empty():
                await asyncio.sleep(self.commit_window)
            while len(batch) < self.max_batch and not inbox.empty():
                item = inbox.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                await asyncio.to_thread(self._commit_batch, batch)
            except Exception as exc:
                log.error("queue commit of %d message(s) failed: %s", len(batch), exc)
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_result(None)

    def _commit_batch(self, batch: builtins.list[_Pending]) -> None:
        """One transaction for the whole batch; the spool renames are made durable first.

        On failure the spool files stay: if the commit did happen after all (a connection lost
        while committing), the rows need them; ``recover`` removes true orphans later.
        """
        if any(p.path for p in batch):
            self.spool.sync_directory()
        now = utcnow()
        rows = [
            {
                "id": p.id,
                "sender": p.sender,
                "recipients": p.recipients,
                "message_path": p.path,
                "message_blob": p.blob,
                "state": MessageState.QUEUED,
                "attempts": 0,
                "next_attempt_at": now,
                "lease_owner": None,
                "lease_expires_at": None,
                "created_at": now,
            }
            for p in batch
        ]
        with self.engine.begin() as connection:
            connection.execute(insert(_TABLE), rows)
        self.stats.commits += 1
        self.stats.enqueued += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))

    async def close(self) -> None:
        """Refuse new enqueues and wait for the pending enqueues and completions to commit."""
        self._closed = True
        while self._active:  # enqueues still writing their spool file have yet to reach the writer
            await asyncio.sleep(0.001)
        writer, inbox = self._writer, self._inbox
        if writer is not None and inbox is not None and not writer.done() and self._writer_loop is asyncio.get_running_loop():
            inbox.put_nowait(None)
            await writer
        completer, completions = self._completer, self._completions
        running_here = self._completer_loop is asyncio.get_running_loop()
        if completer is not None and completions is not None and not completer.done() and running_here:
            completions.put_nowait(None)
            await completer

    # --- leases -----------------------------------------------------------------------------------

    async def lease(self, owner: str, limit: int = 10, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> builtins.list[Leased]:
        """Take up to ``limit`` due messages for ``owner`` until ``lease_seconds`` from now.

        One statement: ``UPDATE ... WHERE id IN (due rows) RETURNING``; on PostgreSQL the due rows
        are chosen with ``FOR UPDATE SKIP LOCKED``, so concurrent lessors on any number of nodes
        take disjoint sets without waiting on each other. SQLite has a single writer, which makes
        the statement atomic by itself.
        """
        if not owner:
            raise ValueError("a lease needs an owner")
        if limit < 1 or lease_seconds <= 0:
            return []
        return await asyncio.to_thread(self._lease, owner, limit, lease_seconds)

    def _lease(self, owner: str, limit: int, lease_seconds: float) -> builtins.list[Leased]:
        now = utcnow()
        expires = now + timedelta(seconds=lease_seconds)
        due_states = (MessageState.QUEUED, MessageState.DEFERRED)
        due = (
            select(QueuedMessage.id)
            .where(QueuedMessage.state.in_(due_states), QueuedMessage.next_attempt_at <= now)
            .order_by(QueuedMessage.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")  # a CTE with FOR UPDATE is evaluated once; an IN (subquery) may be rescanned
        )
        statement = (
            update(_TABLE)
            .where(QueuedMessage.id.in_(select(due.c.id)), QueuedMessage.state.in_(due_states))
            .values(state=MessageState.LEASED, lease_owner=owner, lease_expires_at=expires)
            .returning(
                QueuedMessage.id,
                QueuedMessage.sender,
                QueuedMessage.recipients,
                QueuedMessage.message_path,
                QueuedMessage.message_blob,
                QueuedMessage.attempts,
                QueuedMessage.tries,
                QueuedMessage.created_at,
            )
        )
        with self.engine.begin() as connection:
            rows = connection.execute(statement).all()
        leased: builtins.list[Leased] = []
        for row in rows:
            try:
                data = self._content(row.message_path, row.message_blob)
            except SpoolError as exc:
                log.error("queue message %s is unreadable and is held: %s", row.id, exc)
                self._finish(row.id, owner, state=MessageState.DEFERRED, next_attempt_at=HELD_UNTIL)
                continue
            leased.append(
                Leased(
                    row.id,
                    row.sender,
                    builtins.list(row.recipients),
                    data,
                    row.attempts,
                    owner,
                    expires,
                    tries=row.tries,
                    created_at=row.created_at,
                )
            )
        return leased

    async def extend_leases(
        self, message_ids: Sequence[str], owner: str, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> set[str]:
        """Push the expiry of leases ``owner`` still holds; returns the ids it no longer holds.

        A delivery worker calls this as a heartbeat while slow servers or politeness waits keep a
        message in flight, so no other worker takes a message that is still being delivered.
        """
        if not message_ids:
            return set()
        return await asyncio.to_thread(self._extend_leases, builtins.list(message_ids), owner, lease_seconds)

    def _extend_leases(self, message_ids: builtins.list[str], owner: str, lease_seconds: float) -> set[str]:
        expires = utcnow() + timedelta(seconds=lease_seconds)
        statement = (
            update(_TABLE)
            .where(
                QueuedMessage.id.in_(message_ids),
                QueuedMessage.state == MessageState.LEASED,
                QueuedMessage.lease_owner == owner,
            )
            .values(lease_expires_at=expires)
            .returning(QueuedMessage.id)
        )
        with self.engine.begin() as connection:
            kept = set(connection.execute(statement).scalars())
        return set(message_ids) - kept

    async def complete(self, message_id: str, owner: str, completion: Completion) -> None:
        """Record one delivery try: the message's new state and the try's log rows, in one transaction.

        One transaction, so a crash can never leave a message marked delivered without the log rows
        that say to whom, nor log rows for a try whose state change was lost (the try is then simply
        made again by the next lease holder). ``LeaseLost`` if ``owner`` no longer holds the lease:
        nothing is written then.

        Completions share commits the way enqueues do (one writer task, whatever arrives while the
        previous commit runs goes into the next): SQLite has one writer, and dozens of workers each
        committing alone spend their time waiting for its lock.
        """
        values = _completion_values(completion)  # bad input fails here, in the caller
        if self._completer is None or self._completer.done() or self._completer_loop is not asyncio.get_running_loop():
            self._completions = asyncio.Queue()
            self._completer_loop = asyncio.get_running_loop()
            self._completer = self._completer_loop.create_task(
                self._complete_loop(self._completions), name="coldrelay-queue-completer"
            )
        assert self._completions is not None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key: tuple[object, ...] = (
            owner,
            completion.state,
            completion.error,
            completion.next_attempt_at,
            completion.count_try,
            tuple(completion.remaining) if completion.remaining is not None else None,
        )
        self._completions.put_nowait(_PendingCompletion(message_id, owner, values, completion.log_rows, done, key))
        await done

    async def _complete_loop(self, inbox: asyncio.Queue[_PendingCompletion | None]) -> None:
        while True:
            first = await inbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch and not inbox.empty():
                item = inbox.get_nowait()
                if item is None:
                    inbox.put_nowait(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                outcomes = await asyncio.to_thread(self._complete_batch, batch)
            except Exception as exc:
                log.error("queue commit of %d completion(s) failed: %s", len(batch), exc)
                outcomes = [exc] * len(batch)
            for pending, outcome in zip(batch, outcomes, strict=True):
                if pending.done.done():
                    continue
                if outcome is None:
                    pending.done.set_result(None)
                else:
                    pending.done.set_exception(outcome)

    def _complete_batch(self, batch: builtins.list[_PendingCompletion]) -> builtins.list[Exception | None]:
        """One transaction for the batch: completions that set the same values (the common case: one
        worker's deliveries) share one UPDATE ... WHERE id IN, and all log rows one INSERT."""
        groups: dict[tuple[object, ...], builtins.list[_PendingCompletion]] = {}
        for pending in batch:
            groups.setdefault(pending.group_key, []).append(pending)
        done: set[str] = set()
        with self.engine.begin() as connection:
            for members in groups.values():
                first = members[0]
                statement = (
                    update(_TABLE)
                    .where(
                        QueuedMessage.id.in_([m.message_id for m in members]),
                        QueuedMessage.state == MessageState.LEASED,
                        QueuedMessage.lease_owner == first.owner,
                    )
                    .values(**first.values)
                    .returning(QueuedMessage.id)
                )
                done.update(connection.execute(statement).scalars())
            rows = [
                {**row, "message_id": pending.message_id}
                for pending in batch
                if pending.message_id in done
                for row in pending.log_rows
            ]
            if rows:
                connection.execute(insert(_LOG_TABLE), rows)
        return [None if p.message_id in done else self._lease_lost(p.message_id, p.owner) for p in batch]

    def _lease_lost(self, message_id: str, owner: str) -> QueueError:
        """Why an update guarded by the lease matched nothing: the message is gone, or not ours."""
        entry = self._get(message_id)
        if entry is None:
            return UnknownMessage(message_id)
        return LeaseLost(f"{owner!r} does not hold the lease on {message_id} (it is {entry.state}, owner {entry.lease_owner!r})")

    async def mark_delivered(self, message_id: str, owner: str) -> None:
        """Every recipient accepted the message (final)."""
        await asyncio.to_thread(self._finish, message_id, owner, state=MessageState.DELIVERED)

    async def defer(self, message_id: str, owner: str, until: datetime, reason: str) -> None:
        """A transient failure: try again at ``until`` (aware UTC)."""
        if until.tzinfo is None:
            raise ValueError("defer needs an aware datetime (coldrelay.db.utcnow() + delay)")
        await asyncio.to_thread(self._finish, message_id, owner, state=MessageState.DEFERRED, next_attempt_at=until)
        log.info("queue message %s deferred until %s: %s", message_id, until.isoformat(), reason)

    async def bounce(self, message_id: str, owner: str, reason: str) -> None:
        """A permanent failure (final); the relay sends the DSN and writes the delivery log."""
        await asyncio.to_thread(self._finish, message_id, owner, state=MessageState.BOUNCED)
        log.info("queue message %s bounced: %s", message_id, reason)

    def _finish(self, message_id: str, owner: str, **values: Any) -> None:
        statement = (
            update(_TABLE)
            .where(
                QueuedMessage.id == message_id,
                QueuedMessage.state == MessageState.LEASED,
                QueuedMessage.lease_owner == owner,
            )
            .values(lease_owner=None, lease_expires_at=None, **values)
            .returning(QueuedMessage.id)
        )
        with self.engine.begin() as connection:
            if connection.execute(statement).first() is not None:
                return
        raise self._lease_lost(message_id, owner)

    async def release_expired(self) -> Released:
        """Put messages whose lease expired back in the queue, counting a crash for each.

        A message whose crash count reaches ``max_crashes`` is held instead: it has killed (or
        outlived) that many workers and must not take the next one down.
        """
        return await asyncio.to_thread(self._release_expired)

    def _release_expired(self) -> Released:
        now = utcnow()
        expired = (QueuedMessage.state == MessageState.LEASED) & (QueuedMessage.lease_expires_at < now)
        cleared = {"lease_owner": None, "lease_expires_at": None, "attempts": QueuedMessage.attempts + 1}
        with self.engine.begin() as connection:
            held = connection.execute(
                update(_TABLE)
                .where(expired, QueuedMessage.attempts + 1 >= self.max_crashes)
                .values(state=MessageState.DEFERRED, next_attempt_at=HELD_UNTIL, **cleared)
                .returning(QueuedMessage.id)
            ).scalars()
            held_ids = tuple(sorted(held))
            requeued = connection.execute(
                update(_TABLE)
                .where(expired)
                .values(state=MessageState.QUEUED, next_attempt_at=now, **cleared)
                .returning(QueuedMessage.id)
            ).scalars()
            requeued_ids = tuple(sorted(requeued))
        for message_id in held_ids:
            log.warning("queue message %s held after %d expired leases", message_id, self.max_crashes)
        return Released(requeued_ids, held_ids)

    # --- inspection and administration ------------------------------------------------------------

    async def get(self, message_id: str) -> QueueEntry | None:
        return await asyncio.to_thread(self._get, message_id)

    def _get(self, message_id: str) -> QueueEntry | None:
        with self.engine.connect() as connection:
            row = connection.execute(self._entry_query().where(QueuedMessage.id == message_id)).first()
        return None if row is None else self._entry(row)

    async def list(self, state: QueueState | str | None = None) -> builtins.list[QueueEntry]:
        """Messages, oldest first; ``state`` narrows to one state (``held`` included)."""
        query = self._entry_query().order_by(QueuedMessage.created_at, QueuedMessage.id)
        if state is not None:
            query = query.where(_state_filter(QueueState(state)))
        return await asyncio.to_thread(self._list, query)

    def _list(self, query: Any) -> builtins.list[QueueEntry]:
        with self.engine.connect() as connection:
            return [self._entry(row) for row in connection.execute(query)]

    @staticmethod
    def _entry_query() -> Any:
        return select(
            QueuedMessage.id,
            QueuedMessage.sender,
            QueuedMessage.recipients,
            QueuedMessage.state,
            QueuedMessage.attempts,
            QueuedMessage.next_attempt_at,
            QueuedMessage.lease_owner,
            QueuedMessage.lease_expires_at,
            QueuedMessage.created_at,
            QueuedMessage.message_path,
        )

    @staticmethod
    def _entry(row: Row[Any]) -> QueueEntry:
        state = _state_of(row.state, row.next_attempt_at)
        return QueueEntry(
            id=row.id,
            sender=row.sender,
            recipients=builtins.list(row.recipients),
            state=state,
            attempts=row.attempts,
            next_attempt_at=None if state is QueueState.HELD else row.next_attempt_at,
            lease_owner=row.lease_owner,
            lease_expires_at=row.lease_expires_at,
            created_at=row.created_at,
            message_path=row.message_path,
        )

    async def read(self, message_id: str) -> bytes:
        """The message's bytes, from its spool file or its row."""
        return await asyncio.to_thread(self._read, message_id)

    def _read(self, message_id: str) -> bytes:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(QueuedMessage.message_path, QueuedMessage.message_blob).where(QueuedMessage.id == message_id)
            ).first()
        if row is None:
            raise UnknownMessage(message_id)
        return self._content(row.message_path, row.message_blob)

    def _content(self, path: str | None, blob: bytes | None) -> bytes:
        if path is not None:
            return self.spool.read(path)
        if blob is None:  # the schema's CHECK forbids this; be explicit rather than return b""
            raise SpoolError("queue row has neither a spool file nor a blob")
        return bytes(blob)

    async def retry(self, message_id: str) -> None:
        """Make a queued, deferred or held message due now; a held one starts with a clean crash count."""
        await asyncio.to_thread(self._retry, message_id)

    def _retry(self, message_id: str) -> None:
        now = utcnow()
        statement = (
            update(_TABLE)
            .where(
                QueuedMessage.id == message_id,
                QueuedMessage.state.in_((MessageState.QUEUED, MessageState.DEFERRED)),
            )
            .values(
                state=MessageState.QUEUED,
                attempts=case((QueuedMessage.next_attempt_at >= HELD_UNTIL, 0), else_=QueuedMessage.attempts),
                next_attempt_at=now,
            )
            .returning(QueuedMessage.id)
        )
        with self.engine.begin() as connection:
            if connection.execute(statement).first() is not None:
                return
        entry = self._get(message_id)
        if entry is None:
            raise UnknownMessage(message_id)
        raise WrongState(f"message {message_id} is {entry.state}; only queued, deferred or held messages can be retried")

    async def flush(self) -> int:
        """Make every deferred message due now (held ones stay held); returns how many."""
        return await asyncio.to_thread(self._flush)

    def _flush(self) -> int:
        statement = (
            update(_TABLE)
            .where(_state_filter(QueueState.DEFERRED))
            .values(state=MessageState.QUEUED, next_attempt_at=utcnow())
            .returning(QueuedMessage.id)
        )
        with self.engine.begin() as connection:
            return len(connection.execute(statement).all())

    async def delete(self, message_id: str) -> None:
        """Remove a message in any state: the row first, then its spool file.

        In that order a crash in between leaves an orphan file (``recover`` removes it), never a
        row pointing at a missing file. A worker still holding the lease gets ``UnknownMessage``.
        """
        await asyncio.to_thread(self._delete, message_id)

    def _delete(self, message_id: str) -> None:
        with self.engine.begin() as connection:
            row = connection.execute(
                delete(_TABLE).where(QueuedMessage.id == message_id).returning(QueuedMessage.message_path)
            ).first()
        if row is None:
            raise UnknownMessage(message_id)
        if row.message_path is not None:
            self.spool.remove(row.message_path)
            self.spool.sync_directory()

    async def recover(self, grace_seconds: float = DEFAULT_ORPHAN_GRACE) -> int:
        """Remove spool files no row names (left by a crash before commit) and stale temporaries.

        Only files older than ``grace_seconds`` go, so an enqueue in flight in another process is
        never touched; at start-up before the listeners open, 0 is safe. Returns the count removed.
        """
        return await asyncio.to_thread(self._recover, grace_seconds)

    def _recover(self, grace_seconds: float) -> int:
        removed = 0
        for tmp in self.spool.stale_temporaries(grace_seconds):
            tmp.unlink(missing_ok=True)
            removed += 1
        with self.engine.connect() as connection:
            named = set(
                connection.execute(select(QueuedMessage.message_path).where(QueuedMessage.message_path.is_not(None))).scalars()
            )
        for name in builtins.list(self.spool.names()):
            if name in named:
                continue
            try:
                if self.spool.age(name) < grace_seconds:
                    continue
            except FileNotFoundError:
                continue
            self.spool.remove(name)
            removed += 1
        if removed:
            self.spool.sync_directory()
        return removed
