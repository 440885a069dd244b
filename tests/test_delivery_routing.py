"""Routing against the loopback DNS server (tests/zones/deliver.zone) and MTA-STS policies over real HTTPS."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
import trustme

from coldrelay.config import DeliverySettings
from coldrelay.config.values import ListenAddress
from coldrelay.dns import Lookup, LookupStatus, Resolver
from coldrelay.errors import explain
from coldrelay.mta.delivery.routing import HopVia, NextHop, Route, RouteError, Router, TlsRequirement
from coldrelay.mta.delivery.sts_policy import usable_policy
from dns_server import FailingResolver
from helpers.policy_https import PolicyReply, PolicyServer, policy_text

STS_POLICY = policy_text("enforce", "mx1.sts.deliver.test", "*.pool.sts.deliver.test", max_age=86400)


@pytest.fixture(scope="module")
def policies() -> Iterator[PolicyServer]:
    replies = {
        "sts.deliver.test": PolicyReply(STS_POLICY),
        "stsnone.deliver.test": PolicyReply(policy_text("enforce", "mx.elsewhere.test")),
        "ststesting.deliver.test": PolicyReply(policy_text("testing", "mx1.deliver.test")),
        "sts404.deliver.test": PolicyReply(b"not here", status=404),
    }
    with PolicyServer(trustme.CA(), replies) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_policies(policies: PolicyServer) -> Iterator[None]:
    yield
    policies.replies["sts.deliver.test"] = PolicyReply(STS_POLICY)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def route(resolver: Resolver, domain: str, *, settings: DeliverySettings | None = None, router: Router | None = None) -> Route:
    router = router or Router(resolver, settings or DeliverySettings())
    return asyncio.run(router.route(domain))


def route_error(resolver: Resolver, domain: str) -> RouteError:
    with pytest.raises(RouteError) as caught:
        route(resolver, domain)
    return caught.value


def hosts(result: Route) -> list[str]:
    return [hop.host for hop in result.hops]


# --- MX routes ---------------------------------------------------------------------------------------------------


def test_mx_hosts_in_preference_order_on_port_25(resolver: Resolver) -> None:
    result = route(resolver, "Normal.Deliver.Test.")
    assert result == Route(
        "normal.deliver.test",
        (NextHop("mx1.deliver.test", 25, 10, HopVia.MX), NextHop("mx2.deliver.test", 25, 20, HopVia.MX)),
        TlsRequirement.OPPORTUNISTIC,
    )


def test_equal_preferences_are_shuffled_and_the_backup_stays_last(resolver: Resolver) -> None:
    async def routes() -> list[Route]:
        return [
            await Router(resolver, DeliverySettings(), rng=random.Random(seed)).route("equal.deliver.test") for seed in range(12)
        ]

    orders = set()
    for result in asyncio.run(routes()):
        assert sorted(hosts(result)[:3]) == ["mx1.deliver.test", "mx2.deliver.test", "mx3.deliver.test"]
        assert result.hops[3] == NextHop("backup.equal.deliver.test", 25, 50, HopVia.MX)
        orders.add(tuple(hosts(result)))
    assert len(orders) > 2


def test_implicit_mx_is_the_domain_itself(resolver: Resolver) -> None:
    result = route(resolver, "aonly.deliver.test")
    assert result.hops == (NextHop("aonly.deliver.test", 25, 0, HopVia.IMPLICIT_MX),)


def test_mx_hosts_without_address_are_left_out(resolver: Resolver) -> None:
    assert hosts(route(resolver, "dangling.deliver.test")) == ["mx2.deliver.test"]


# --- route errors ------------------------------------------------------------------------------------------------


def test_null_mx_is_permanent_556(resolver: Resolver) -> None:
    error = route_error(resolver, "nullmx.deliver.test")
    assert (error.permanent, error.code, error.enhanced) == (True, 556, "5.1.10")
    assert error.reply_line().startswith("556 5.1.10 ")
    assert explain(error.reply_line()).permanent


def test_nxdomain_is_permanent_550_5_1_2(resolver: Resolver) -> None:
    error = route_error(resolver, "absent.deliver.test")
    assert (error.permanent, error.code, error.enhanced) == (True, 550, "5.1.2")
    assert "does not exist" in error.text
    assert explain(error.reply_line()).hard_bounce


def test_no_mx_and_no_address_is_permanent(resolver: Resolver) -> None:
    error = route_error(resolver, "noaddress.deliver.test")
    assert (error.permanent, error.code, error.enhanced) == (True, 550, "5.1.2")


def test_every_mx_host_missing_is_permanent_5_4_4(resolver: Resolver) -> None:
    error = route_error(resolver, "deadmx.deliver.test")
    assert (error.permanent, error.code, error.enhanced) == (True, 550, "5.4.4")
    assert "gone.deliver.test" in error.text


@pytest.mark.parametrize("domain", ["mail.servfail.test", "mail.timeout.test"])
def test_servfail_and_timeout_are_temporary_451_4_4_3(resolver: Resolver, domain: str) -> None:
    error = route_error(resolver, domain)
    assert (error.permanent, error.code, error.enhanced) == (False, 451, "4.4.3")
    assert not explain(error.reply_line()).permanent


def test_failed_address_fallback_is_temporary(dns_server: object) -> None:
    failing = FailingResolver(dns_server.address, {("noaddress.deliver.test", "A")})  # type: ignore[attr-defined]
    error = route_error(failing, "noaddress.deliver.test")
    assert (error.permanent, error.code) == (False, 451)


@pytest.mark.parametrize("domain", ["a..b.test", "", "user@x.test"])
def test_invalid_domain_is_refused(resolver: Resolver, domain: str) -> None:
    error = route_error(resolver, domain)
    assert (error.permanent, error.code, error.enhanced) == (True, 553, "5.1.3")


# --- transports and smarthost ------------------------------------------------------------------------------------


def test_transport_for_the_exact_domain_skips_dns(resolver: Resolver) -> None:
    settings = DeliverySettings(
        transports={"normal.deliver.test": ListenAddress("10.0.0.9", 2525)}, smarthost=ListenAddress("relay.test", 587)
    )
    result = route(resolver, "normal.deliver.test", settings=settings)
    assert result == Route("normal.deliver.test", (NextHop("10.0.0.9", 2525, 0, HopVia.TRANSPORT),), TlsRequirement.OPPORTUNISTIC)
    assert resolver.queries == 0
    # a subdomain is not the exact domain: the smarthost takes it
    other = route(resolver, "sub.normal.deliver.test", settings=settings)
    assert other.hops == (NextHop("relay.test", 587, 0, HopVia.SMARTHOST),)
    assert resolver.queries == 0


def test_smarthost_skips_mta_sts(resolver: Resolver, policies: PolicyServer) -> None:
    router = Router(resolver, DeliverySettings(smarthost=ListenAddress("relay.test", 25)), policies.fetcher())
    result = asyncio.run(router.route("sts.deliver.test"))
    assert result.tls is TlsRequirement.OPPORTUNISTIC
    assert result.hops == (NextHop("relay.test", 25, 0, HopVia.SMARTHOST),)


# --- MTA-STS -----------------------------------------------------------------------------------------------------


def test_enforce_requires_verified_tls_and_drops_hosts_the_policy_does_not_name(
    resolver: Resolver, policies: PolicyServer
) -> None:
    result = route(resolver, "sts.deliver.test", router=Router(resolver, DeliverySettings(), policies.fetcher()))
    assert result.tls is TlsRequirement.VERIFIED
    assert hosts(result) == ["mx1.sts.deliver.test", "a.pool.sts.deliver.test"]  # rogue.deliver.test (preference 5) dropped
    assert result.mx_patterns == ("mx1.sts.deliver.test", "*.pool.sts.deliver.test")


def test_enforce_naming_no_mx_host_is_temporary(resolver: Resolver, policies: PolicyServer) -> None:
    with pytest.raises(RouteError) as caught:
        route(resolver, "stsnone.deliver.test", router=Router(resolver, DeliverySettings(), policies.fetcher()))
    error = caught.value
    assert (error.permanent, error.code, error.enhanced) == (False, 451, "4.7.5")
    assert "mx1.deliver.test" in error.text


def test_testing_mode_is_opportunistic(resolver: Resolver, policies: PolicyServer) -> None:
    result = route(resolver, "ststesting.deliver.test", router=Router(resolver, DeliverySettings(), policies.fetcher()))
    assert result.tls is TlsRequirement.OPPORTUNISTIC
    assert hosts(result) == ["mx1.deliver.test"]
    assert result.mx_patterns == ("mx1.deliver.test",)


@pytest.mark.parametrize("domain", ["stsgone.deliver.test", "sts404.deliver.test"])
def test_policy_that_cannot_be_fetched_and_nothing_cached_means_opportunistic(
    resolver: Resolver, policies: PolicyServer, domain: str
) -> None:
    result = route(resolver, domain, router=Router(resolver, DeliverySettings(), policies.fetcher()))
    assert result.tls is TlsRequirement.OPPORTUNISTIC
    assert hosts(result) == ["mx1.deliver.test"]


def test_policy_is_cached_for_max_age(resolver: Resolver, policies: PolicyServer) -> None:
    clock = Clock()
    router = Router(resolver, DeliverySettings(), policies.fetcher(), clock=clock)
    before = policies.requests.count("mta-sts.sts.deliver.test")

    async def scenario() -> list[Route]:
        routes = [await router.route("sts.deliver.test")]
        policies.replies["sts.deliver.test"] = PolicyReply(b"gone", status=404)
        clock.now += 86399
        routes.append(await router.route("sts.deliver.test"))  # same id, unexpired: no fetch
        clock.now += 2
        routes.append(await router.route("sts.deliver.test"))  # expired: fetched again, now 404
        return routes

    first, cached, expired = asyncio.run(scenario())
    assert first.tls is cached.tls is TlsRequirement.VERIFIED
    assert expired.tls is TlsRequirement.OPPORTUNISTIC
    assert hosts(expired)[0] == "rogue.deliver.test"
    assert policies.requests.count("mta-sts.sts.deliver.test") - before == 2


class TxtOverride(Resolver):
    """The loopback resolver, except for the ``_mta-sts`` TXT of sts.deliver.test, which the test sets
    (the zone file is static; a stand-in for a domain that changes or removes its record)."""

    def __init__(self, address: str) -> None:
        super().__init__([address], timeout=1.0, retries=0)
        self.txt: Lookup | None = None

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        if self.txt is not None and (name, rdtype) == ("_mta-sts.sts.deliver.test", "TXT"):
            return self.txt
        return await super().lookup(name, rdtype)


def test_failed_refetch_and_vanished_record_keep_the_cached_policy(dns_server: object, policies: PolicyServer) -> None:
    resolver = TxtOverride(dns_server.address)  # type: ignore[attr-defined]
    router = Router(resolver, DeliverySettings(), policies.fetcher())
    before = policies.requests.count("mta-sts.sts.deliver.test")

    async def scenario() -> list[Route]:
        routes = [await router.route("sts.deliver.test")]
        policies.replies["sts.deliver.test"] = PolicyReply(b"<html>oops</html>", content_type="text/html")
        resolver.txt = Lookup("_mta-sts.sts.deliver.test", "TXT", LookupStatus.OK, ("v=STSv1; id=20260202",), 300)
        routes.append(await router.route("sts.deliver.test"))  # new id: fetched, unusable -> cached policy stays
        resolver.txt = Lookup("_mta-sts.sts.deliver.test", "TXT", LookupStatus.NXDOMAIN)
        routes.append(await router.route("sts.deliver.test"))  # record gone: the unexpired policy still applies
        return routes

    routes = asyncio.run(scenario())
    assert [r.tls for r in routes] == [TlsRequirement.VERIFIED] * 3
    assert all(hosts(r) == ["mx1.sts.deliver.test", "a.pool.sts.deliver.test"] for r in routes)
    assert policies.requests.count("mta-sts.sts.deliver.test") - before == 2


def test_concurrent_routes_fetch_a_policy_once(resolver: Resolver, policies: PolicyServer) -> None:
    router = Router(resolver, DeliverySettings(), policies.fetcher())
    before = policies.requests.count("mta-sts.sts.deliver.test")

    async def scenario() -> list[Route]:
        return list(await asyncio.gather(*(router.route("sts.deliver.test") for _ in range(5))))

    assert all(r.tls is TlsRequirement.VERIFIED for r in asyncio.run(scenario()))
    assert policies.requests.count("mta-sts.sts.deliver.test") - before == 1


@pytest.mark.parametrize(
    ("text", "usable"),
    [
        (policy_text("enforce", "mx.x.test").decode(), True),
        (policy_text("none").decode(), True),
        (policy_text("enforce").decode(), False),  # names no host: would stop all mail
        (policy_text("enforce", "mail.*.test").decode(), False),  # its only pattern is invalid
        ("version: STSv2\nmode: enforce\nmx: mx.x.test\nmax_age: 86400\n", False),
        ("version: STSv1\nmode: enforced\nmx: mx.x.test\nmax_age: 86400\n", False),
        ("version: STSv1\nmode: enforce\nmx: mx.x.test\nmax_age: 99999999999\n", False),
    ],
)
def test_usable_policy(text: str, usable: bool) -> None:
    assert (usable_policy(text) is not None) is usable
