"""The durable mail queue: a message is on disk (fsync) and its row committed before 250 is sent.

``MailQueue`` is the whole API: ``enqueue`` (group commit), ``lease`` / ``mark_delivered`` /
``defer`` / ``bounce`` for delivery workers, ``release_expired`` for dead workers' leases, and
``get`` / ``list`` / ``read`` / ``retry`` / ``flush`` / ``delete`` / ``recover`` for people and start-up.
"""

from coldrelay.mta.queue.queue import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_CRASHES,
    HELD_UNTIL,
    Completion,
    ContentStore,
    Leased,
    LeaseLost,
    MailQueue,
    QueueClosed,
    QueueEntry,
    QueueError,
    QueueState,
    QueueStats,
    Released,
    UnknownMessage,
    WrongState,
)
from coldrelay.mta.queue.spool import Spool, SpoolError

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_CRASHES",
    "HELD_UNTIL",
    "Completion",
    "ContentStore",
    "LeaseLost",
    "Leased",
    "MailQueue",
    "QueueClosed",
    "QueueEntry",
    "QueueError",
    "QueueState",
    "QueueStats",
    "Released",
    "Spool",
    "SpoolError",
    "UnknownMessage",
    "WrongState",
]
