"""Politeness towards receivers: how many connections at once and how many messages a minute.

Large receivers throttle senders that open many connections or send in bursts (Google's
``421 4.7.28``, Microsoft's ``451 4.7.500``); a throttled IP stays suspect for days. Limits are
per *destination*: every MX host of one provider shares one budget (``[destinations]`` in the
settings recognise them by host suffix), any other host has the default limits on its own.

The message rate is a token bucket in its GCRA form (one "theoretical arrival time" per
destination): a small burst goes out at once, then messages are spaced evenly. Reservations are
made before waiting, so concurrent senders queue behind each other instead of all waking at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from coldrelay.config import DeliverySettings
from coldrelay.config.delivery import DestinationLimits

MAX_BURST = 10
"""At most this many messages leave back to back before the spacing starts."""


def burst_size(messages_per_minute: int) -> int:
    """One second's worth of messages, at least 1 and at most ``MAX_BURST``: "small" for every provider."""
    return max(1, min(MAX_BURST, messages_per_minute // 60))


class Politeness:
    """Connection slots and message pacing per destination; one instance shared by the whole pool.

    ``clock`` and ``sleep`` are there for tests (pacing without waiting in real time).
    """

    def __init__(
        self,
        settings: DeliverySettings,
        clock: Callable[[], float] = time.monotonic,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._open: dict[str, int] = {}
        self._arrival: dict[str, float] = {}

    def limits(self, mx_host: str) -> DestinationLimits:
        return self._settings.destination_for(mx_host)

    def destination(self, mx_host: str) -> str:
        """The destination key: a named destination (``google``), else the host itself."""
        limits = self.limits(mx_host)
        if limits.name == "default":
            return mx_host.lower().rstrip(".")
        return limits.name

    def open_connections(self, mx_host: str) -> int:
        """Slots of this host's destination in use right now."""
        return self._open.get(self.destination(mx_host), 0)

    def at_limit(self, mx_host: str) -> bool:
        return self.open_connections(mx_host) >= self.limits(mx_host).max_connections

    @asynccontextmanager
    async def connection_slot(self, mx_host: str) -> AsyncIterator[None]:
        """Held for the life of one connection (idle time included): at most ``max_connections`` per destination."""
        key = self.destination(mx_host)
        semaphore = self._slots.get(key)
        if semaphore is None:
            semaphore = self._slots[key] = asyncio.Semaphore(self.limits(mx_host).max_connections)
        async with semaphore:
            self._open[key] = self._open.get(key, 0) + 1
            try:
                yield
            finally:
                self._open[key] -= 1

    async def before_message(self, mx_host: str) -> None:
        """Wait until one more message keeps the destination within ``messages_per_minute``."""
        key = self.destination(mx_host)
        limits = self.limits(mx_host)
        interval = 60.0 / limits.messages_per_minute
        tolerance = (burst_size(limits.messages_per_minute) - 1) * interval
        now = self._clock()
        arrival = max(self._arrival.get(key, now), now)
        self._arrival[key] = arrival + interval  # reserved now, so the next caller queues behind us
        wait = arrival - tolerance - now
        if wait > 0:
            await self._sleep(wait)


__all__ = ["Politeness", "burst_size"]
