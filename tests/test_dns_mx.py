"""The MX check against the loopback DNS server (tests/zones/mx.zone): every finding, pass and fail."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from coldrelay.dns import Lookup, LookupStatus, Resolver, Section, SectionStatus, Severity
from coldrelay.dns.mx import MxResult, check_mx, lookup_mx, mx_section


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def severities(section: Section) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in section.findings]


def test_two_hosts_sorted_by_preference_with_addresses(resolver: Resolver) -> None:
    result: MxResult = run(lookup_mx(resolver, "Good.MX.test."))
    assert result.domain == "good.mx.test"
    assert result.status is LookupStatus.OK
    assert [(h.preference, h.host) for h in result.hosts] == [(10, "mx1.good.mx.test"), (20, "mx2.good.mx.test")]
    assert result.hosts[0].ipv4 == ("192.0.2.101",) and result.hosts[0].ipv6 == ("2001:db8::101",)
    assert result.hosts[1].ipv4 == ("192.0.2.102",) and result.hosts[1].ipv6 == ()
    assert result.addresses == ("192.0.2.101", "2001:db8::101", "192.0.2.102")
    assert result.accepts_mail and not result.implicit and not result.null_mx

    section = run(check_mx(resolver, "good.mx.test"))
    assert severities(section) == [("mx.found", Severity.OK)]
    assert section.effective_status is SectionStatus.PASS
    assert sorted(section.records) == [
        "good.mx.test. MX 10 mx1.good.mx.test.",
        "good.mx.test. MX 20 mx2.good.mx.test.",
        "mx1.good.mx.test. A 192.0.2.101",
        "mx1.good.mx.test. AAAA 2001:db8::101",
        "mx2.good.mx.test. A 192.0.2.102",
    ]
    assert section.details["hosts"][0] == {
        "preference": 10,
        "host": "mx1.good.mx.test",
        "ipv4": ["192.0.2.101"],
        "ipv6": ["2001:db8::101"],
        "cname": "",
        "ip_literal": False,
        "lookup_error": "",
    }
    json.dumps(section.to_dict())


def test_target_lookups_are_one_round(resolver: Resolver) -> None:
    run(lookup_mx(resolver, "good.mx.test"))
    assert resolver.queries == 1 + 2 * 3  # the MX, then A, AAAA and CNAME for each of the two targets


def test_equal_preferences_are_ordered_by_name(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "tie.mx.test"))
    assert [(h.preference, h.host) for h in result.hosts] == [
        (5, "c.tie.mx.test"),
        (10, "a.tie.mx.test"),
        (10, "b.tie.mx.test"),
    ]
    assert severities(run(check_mx(resolver, "tie.mx.test"))) == [("mx.found", Severity.OK)]


def test_implicit_mx_from_the_domain_address(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "implicit.mx.test"))
    assert result.status is LookupStatus.NODATA and result.implicit
    assert [(h.preference, h.host, h.ipv4, h.ipv6) for h in result.hosts] == [
        (0, "implicit.mx.test", ("192.0.2.103",), ("2001:db8::103",))
    ]
    section = run(check_mx(resolver, "implicit.mx.test"))
    assert severities(section) == [("mx.implicit", Severity.WARNING)]
    assert "implicit.mx.test. 3600 IN MX 10 mail.implicit.mx.test." in section.findings[0].fix
    assert section.records == ["implicit.mx.test. A 192.0.2.103", "implicit.mx.test. AAAA 2001:db8::103"]


def test_no_mx_and_no_address_cannot_receive_mail(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "nomail.mx.test"))
    assert result.hosts == () and not result.accepts_mail and not result.lookup_failed
    section = run(check_mx(resolver, "nomail.mx.test"))
    assert severities(section) == [("mx.missing", Severity.ERROR)]
    assert section.effective_status is SectionStatus.FAIL


class _AddressFailures(Resolver):
    """The real loopback server, except that A/AAAA for one name come back as SERVFAIL."""

    def __init__(self, address: str, failing: str) -> None:
        super().__init__([address], timeout=1.0, retries=0)
        self.failing = failing

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        if name.rstrip(".").lower() == self.failing and rdtype in ("A", "AAAA"):
            return Lookup(name, rdtype, LookupStatus.SERVFAIL, error="test")
        return await super().lookup(name, rdtype)


def test_failed_address_fallback_is_a_lookup_failure(dns_server: Any) -> None:
    stub = _AddressFailures(dns_server.address, "fallbackfail.mx.test")
    result = run(lookup_mx(stub, "fallbackfail.mx.test"))
    assert result.status is LookupStatus.NODATA and result.lookup_failed and not result.implicit
    assert result.error == "A servfail, AAAA servfail"
    assert severities(mx_section(result)) == [("mx.lookup-failed", Severity.ERROR)]


def test_null_mx(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "null.mx.test"))
    assert result.null_mx and result.hosts == () and not result.accepts_mail
    section = run(check_mx(resolver, "null.mx.test"))
    assert severities(section) == [("mx.null", Severity.INFO)]
    assert section.effective_status is SectionStatus.INFO
    assert section.records == ["null.mx.test. MX 0 ."]


def test_null_mx_mixed_with_real_mx(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "nullmixed.mx.test"))
    assert result.null_mx and [h.host for h in result.hosts] == ["mx.nullmixed.mx.test"]
    section = run(check_mx(resolver, "nullmixed.mx.test"))
    assert severities(section) == [
        ("mx.null-mixed", Severity.ERROR),
        ("mx.found", Severity.OK),
        ("mx.single-host", Severity.INFO),
    ]


def test_mx_pointing_at_a_cname(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "cname.mx.test"))
    host = result.hosts[0]
    assert (host.host, host.cname, host.ipv4) == ("alias.cname.mx.test", "real.cname.mx.test", ("192.0.2.105",))
    section = run(check_mx(resolver, "cname.mx.test"))
    assert severities(section) == [("mx.cname", Severity.WARNING), ("mx.single-host", Severity.INFO)]
    assert "cname.mx.test. 3600 IN MX 10 real.cname.mx.test." in section.findings[0].fix


def test_mx_pointing_at_an_ip_address(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "literal.mx.test"))
    assert [(h.host, h.ip_literal, h.addresses) for h in result.hosts] == [("192.0.2.106", True, ())]
    assert resolver.queries == 1  # no address lookups for an IP literal
    section = run(check_mx(resolver, "literal.mx.test"))
    assert severities(section) == [("mx.ip-literal", Severity.ERROR)]
    assert "mail.literal.mx.test. 3600 IN A 192.0.2.106" in section.findings[0].fix


def test_targets_that_do_not_resolve(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "dangling.mx.test"))
    statuses = [(h.host, h.a_status, h.resolves) for h in result.hosts]
    assert statuses == [
        ("gone.dangling.mx.test", LookupStatus.NXDOMAIN, False),
        ("noaddr.dangling.mx.test", LookupStatus.NODATA, False),
        ("ok.dangling.mx.test", LookupStatus.OK, True),
    ]
    section = run(check_mx(resolver, "dangling.mx.test"))
    assert severities(section) == [("mx.target-unresolvable", Severity.ERROR)] * 2
    assert "gone.dangling.mx.test" in section.findings[0].message
    assert "noaddr.dangling.mx.test" in section.findings[1].message


def test_target_lookup_failure_is_reported_not_raised(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "failing.mx.test"))
    assert result.hosts[0].lookup_error == "A servfail, AAAA servfail"
    section = run(check_mx(resolver, "failing.mx.test"))
    assert severities(section) == [("mx.target-lookup-failed", Severity.WARNING)]


def test_single_host(resolver: Resolver) -> None:
    section = run(check_mx(resolver, "single.mx.test"))
    assert severities(section) == [("mx.found", Severity.OK), ("mx.single-host", Severity.INFO)]
    assert section.effective_status is SectionStatus.PASS


def test_two_names_one_address_is_one_host(resolver: Resolver) -> None:
    section = run(check_mx(resolver, "sameip.mx.test"))
    assert severities(section) == [("mx.found", Severity.OK), ("mx.single-host", Severity.INFO)]
    assert "192.0.2.109" in section.findings[1].message


def test_domain_that_does_not_exist(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "missing.mx.test"))
    assert result.status is LookupStatus.NXDOMAIN and not result.lookup_failed
    assert severities(run(check_mx(resolver, "missing.mx.test"))) == [("mx.domain-not-found", Severity.ERROR)]


def test_servfail_on_the_mx_lookup(resolver: Resolver) -> None:
    result = run(lookup_mx(resolver, "x.servfail.test"))
    assert result.status is LookupStatus.SERVFAIL and result.lookup_failed and result.error == "MX servfail"
    assert severities(run(check_mx(resolver, "x.servfail.test"))) == [("mx.lookup-failed", Severity.ERROR)]


def test_timeout_on_the_mx_lookup(dns_server: Any) -> None:
    quick = Resolver([dns_server.address], timeout=0.3, retries=0)
    section = run(check_mx(quick, "x.timeout.test"))
    assert severities(section) == [("mx.lookup-failed", Severity.ERROR)]
    assert section.details["status"] == "timeout"
