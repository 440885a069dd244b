"""The shared resolver against a real DNS server on loopback: answers, NXDOMAIN, NODATA, SERVFAIL, timeouts, cache."""

from __future__ import annotations

import asyncio
import time

from coldrelay.dns import LookupStatus, Nameserver, Resolver


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_answer_and_txt_strings_joined(resolver: Resolver) -> None:
    a = run(resolver.lookup("basics.test", "A"))
    assert a.status is LookupStatus.OK and a.records == ("192.0.2.10",)
    txt = run(resolver.lookup("basics.test", "TXT"))
    assert txt.records == ("hello world",)


def test_nxdomain_and_nodata_are_different(resolver: Resolver) -> None:
    assert run(resolver.lookup("missing.basics.test", "A")).status is LookupStatus.NXDOMAIN
    assert run(resolver.lookup("onlya.basics.test", "MX")).status is LookupStatus.NODATA


def test_cname_is_followed(resolver: Resolver) -> None:
    assert run(resolver.lookup("alias.basics.test", "A")).records == ("192.0.2.10",)


def test_large_answer_falls_back_to_tcp(resolver: Resolver, dns_server) -> None:  # type: ignore[no-untyped-def]
    before = dns_server.resolver.tcp_hits
    big = run(resolver.lookup("big.basics.test", "TXT"))
    assert big.ok and len(big.records) == 3 and sum(len(r) for r in big.records) > 1232
    assert dns_server.resolver.tcp_hits == before + 1


def test_servfail_is_retried_then_reported(resolver: Resolver) -> None:
    result = run(resolver.lookup("x.servfail.test", "A"))
    assert result.status is LookupStatus.SERVFAIL and result.failed
    assert resolver.queries == 2  # one try and one retry


def test_timeout_is_reported_not_raised(dns_server) -> None:  # type: ignore[no-untyped-def]
    quick = Resolver([dns_server.address], timeout=0.3, retries=0)
    started = time.monotonic()
    result = run(quick.lookup("x.timeout.test", "A"))
    assert result.status is LookupStatus.TIMEOUT
    assert time.monotonic() - started < 2


def test_cache_answers_repeats(resolver: Resolver) -> None:
    run(resolver.lookup("basics.test", "A"))
    run(resolver.lookup("BASICS.test.", "a"))
    assert resolver.queries == 1


def test_many_lookups_run_concurrently(resolver: Resolver) -> None:
    results = run(resolver.lookup_many([("basics.test", "A"), ("basics.test", "TXT"), ("missing.basics.test", "A")]))
    assert [r.status for r in results] == [LookupStatus.OK, LookupStatus.OK, LookupStatus.NXDOMAIN]


def test_nameserver_parsing() -> None:
    assert Nameserver.parse("127.0.0.1:5353") == Nameserver("127.0.0.1", 5353)
    assert Nameserver.parse("[::1]:53") == Nameserver("::1", 53)
    assert Nameserver.parse("2001:db8::1") == Nameserver("2001:db8::1", 53)
    assert Nameserver.parse("192.0.2.1") == Nameserver("192.0.2.1", 53)
