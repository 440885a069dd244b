"""Politeness: destinations, connection slots and message pacing, alone and through the pool against a real sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from coldrelay.config import DeliverySettings, DestinationLimits
from coldrelay.dns import Resolver
from coldrelay.mta.delivery.client import TransactionResult
from coldrelay.mta.delivery.politeness import Politeness, burst_size
from coldrelay.mta.delivery.pool import DeliveryPool
from coldrelay.mta.delivery.routing import HopVia, NextHop, Route, TlsRequirement
from helpers.sinks import SinkServer

MESSAGE = b"From: anna@hosted.test\r\nSubject: hi\r\n\r\nhello\r\n"


class FakeTime:
    """A clock and a sleep that advances it: pacing decisions without waiting in real time."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 0.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        if self.advance:
            self.now += seconds
        await asyncio.sleep(0)


def limits(**destinations: tuple[int, int]) -> DeliverySettings:
    """``name=(max_connections, messages_per_minute)``; ``loop`` claims every host under deliver.test."""
    built = [
        DestinationLimits(name, ("deliver.test",) if name == "loop" else (), max_connections=conns, messages_per_minute=rate)
        for name, (conns, rate) in destinations.items()
    ]
    if "default" not in destinations:
        built.append(DestinationLimits("default"))
    return DeliverySettings(destinations=tuple(built))


def test_destination_is_the_named_provider_or_the_host_itself() -> None:
    politeness = Politeness(DeliverySettings())
    assert politeness.destination("gmail-smtp-in.l.google.com") == "google"
    assert politeness.destination("ALT1.ASPMX.L.GOOGLE.COM.") == "google"
    assert politeness.destination("contoso-com.mail.protection.outlook.com") == "microsoft"
    assert politeness.destination("mta5.am0.yahoodns.net") == "yahoo"
    assert politeness.destination("Mx1.Example.Test.") == "mx1.example.test"
    assert politeness.destination("notgoogle.com") == "notgoogle.com"  # a suffix match needs the dot
    assert politeness.limits("aspmx.l.google.com").max_connections == 5
    assert politeness.limits("mx1.example.test").messages_per_minute == 600


@pytest.mark.parametrize(("rate", "burst"), [(60, 1), (120, 2), (600, 10), (6000, 10), (10, 1)])
def test_burst_is_small(rate: int, burst: int) -> None:
    assert burst_size(rate) == burst


def test_connection_slots_cap_concurrency_per_destination() -> None:
    politeness = Politeness(limits(loop=(2, 600)))
    active = {"loop": 0, "other": 0}
    peak = {"loop": 0, "other": 0}

    async def hold(host: str) -> None:
        key = "loop" if host.endswith("deliver.test") else "other"
        async with politeness.connection_slot(host):
            active[key] += 1
            peak[key] = max(peak[key], active[key])
            await asyncio.sleep(0.01)
            active[key] -= 1

    async def scenario() -> None:
        hosts = ["mx1.deliver.test", "mx2.deliver.test", "a.other.test"] * 4
        await asyncio.gather(*(hold(host) for host in hosts))

    asyncio.run(scenario())
    assert peak["loop"] == 2  # mx1 and mx2 share the "loop" budget
    assert peak["other"] == 4  # a.other.test has the default limit (10) of its own, untouched by "loop"
    assert politeness.open_connections("mx1.deliver.test") == 0


def test_messages_per_minute_paces_after_a_small_burst() -> None:
    fake = FakeTime()
    politeness = Politeness(limits(loop=(5, 120)), fake.clock, sleep=fake.sleep)

    async def scenario() -> None:
        for _ in range(6):
            await politeness.before_message("mx1.deliver.test")

    asyncio.run(scenario())
    assert fake.sleeps == [0.5, 0.5, 0.5, 0.5]  # two at once (burst 2), then one every 0.5 s
    assert fake.now == pytest.approx(2.0)


def test_pacing_is_per_destination_and_refills_over_time() -> None:
    fake = FakeTime()
    politeness = Politeness(limits(loop=(5, 60)), fake.clock, sleep=fake.sleep)

    async def scenario() -> None:
        await politeness.before_message("mx1.deliver.test")
        await politeness.before_message("mx.other.test")  # default destination: its own bucket
        await politeness.before_message("mx2.deliver.test")  # same destination as mx1: waits
        fake.now += 10  # a quiet spell refills the bucket, but never beyond the burst
        await politeness.before_message("mx1.deliver.test")
        await politeness.before_message("mx1.deliver.test")

    asyncio.run(scenario())
    assert fake.sleeps == [1.0, 1.0]


def test_concurrent_callers_queue_behind_each_other() -> None:
    fake = FakeTime(advance=False)  # all four arrive at the same instant
    politeness = Politeness(limits(loop=(5, 60)), fake.clock, sleep=fake.sleep)

    async def scenario() -> None:
        await asyncio.gather(*(politeness.before_message("mx1.deliver.test") for _ in range(4)))

    asyncio.run(scenario())
    assert sorted(fake.sleeps) == [1.0, 2.0, 3.0]  # reservations made before sleeping: 0, 1, 2, 3 s


# --- through the pool, against a real sink ---------------------------------------------------------------------------


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    with SinkServer() as server:
        yield server


def hop(host: str) -> Route:
    return Route("normal.deliver.test", (NextHop(host, 25, 10, HopVia.MX),), TlsRequirement.OPPORTUNISTIC)


def send_concurrently(
    resolver: Resolver, settings: DeliverySettings, routes: list[Route], port: int
) -> tuple[DeliveryPool, list[TransactionResult]]:
    async def go() -> tuple[DeliveryPool, list[TransactionResult]]:
        pool = DeliveryPool(settings, helo_hostname="box.hosted.test", resolver=resolver, port_override=port)
        try:
            sends = [
                pool.send(route, "anna@hosted.test", [f"user{n}@normal.deliver.test"], MESSAGE) for n, route in enumerate(routes)
            ]
            return pool, list(await asyncio.gather(*sends))
        finally:
            await pool.close()

    return asyncio.run(go())


def test_ten_concurrent_sends_never_open_more_than_max_connections(resolver: Resolver, sink: SinkServer) -> None:
    pool, results = send_concurrently(resolver, limits(loop=(2, 6000)), [hop("mx1.deliver.test")] * 10, sink.port)
    assert all(r.results[0].accepted for r in results)
    assert len(sink.messages) == 10
    assert sink.max_concurrent == 2
    assert pool.stats.connections_opened == 2
    assert pool.stats.connections_reused == 8  # the waiting sends took over the finished connections


def test_hosts_of_one_destination_share_its_connection_budget(resolver: Resolver, sink: SinkServer) -> None:
    # mx1, mx2 and mx3 are different hosts (different pool keys) of the one "loop" destination, all served by the sink
    routes = [hop(f"mx{n % 3 + 1}.deliver.test") for n in range(12)]
    pool, results = send_concurrently(resolver, limits(loop=(2, 6000)), routes, sink.port)
    assert all(r.results[0].accepted for r in results)
    assert sorted({r.remote_host for r in results if r.remote_host}) == [
        "mx1.deliver.test",
        "mx2.deliver.test",
        "mx3.deliver.test",
    ]
    assert len(sink.messages) == 12
    assert sink.max_concurrent <= 2
    assert pool.stats.connections_opened + pool.stats.connections_reused == 12


def test_pool_paces_messages_per_minute(resolver: Resolver, sink: SinkServer) -> None:
    # 600 a minute: a burst of 10, then one every 0.1 s; the 14th message leaves 0.4 s after the first
    started = time.monotonic()
    _pool, results = send_concurrently(resolver, limits(loop=(10, 600)), [hop("mx1.deliver.test")] * 14, sink.port)
    elapsed = time.monotonic() - started
    assert all(r.results[0].accepted for r in results)
    assert elapsed >= 0.38
