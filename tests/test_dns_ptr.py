"""The reverse-DNS check against the loopback DNS server (tests/zones/ptr.zone): every finding, pass and fail."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from coldrelay.dns import LookupStatus, Resolver, Section, SectionStatus, Severity
from coldrelay.dns.ptr import Role, check_ptr, generic_reason, lookup_ptr


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def severities(section: Section) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in section.findings]


def test_forward_confirmed_ipv4(resolver: Resolver) -> None:
    result = run(lookup_ptr(resolver, "192.0.2.201"))
    assert result.reverse == "201.2.0.192.in-addr.arpa"
    assert result.names == ("mail.good.ptr.test",)
    assert result.forward == {"mail.good.ptr.test": ("192.0.2.201",)}
    assert result.fcrdns and result.confirmed_names == ("mail.good.ptr.test",)

    section = run(check_ptr(resolver, ["192.0.2.201"]))
    assert severities(section) == [("ptr.ok", Severity.OK)]
    assert section.effective_status is SectionStatus.PASS
    assert section.records == ["201.2.0.192.in-addr.arpa. PTR mail.good.ptr.test.", "mail.good.ptr.test. A 192.0.2.201"]
    assert section.details["ips"] == [
        {
            "ip": "192.0.2.201",
            "role": "sending",
            "reverse": "201.2.0.192.in-addr.arpa",
            "status": "ok",
            "ptr": ["mail.good.ptr.test"],
            "forward": {"mail.good.ptr.test": ["192.0.2.201"]},
            "fcrdns": True,
            "generic": {},
        }
    ]
    json.dumps(section.to_dict())


def test_forward_confirmed_ipv6(resolver: Resolver) -> None:
    result = run(lookup_ptr(resolver, "2001:db8:1::25"))
    assert result.reverse.endswith(".1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
    assert result.forward == {"mail6.good.ptr.test": ("2001:db8:1::25",)}
    section = run(check_ptr(resolver, ["2001:DB8:1:0::25"]))
    assert severities(section) == [("ptr.ok", Severity.OK)]
    assert "mail6.good.ptr.test. AAAA 2001:db8:1::25" in section.records


def test_missing_ptr_is_an_error_for_a_sending_ip(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, ["192.0.2.202"], domain="Example.test."))
    assert severities(section) == [("ptr.missing", Severity.ERROR)]
    assert section.details["ips"][0]["status"] == LookupStatus.NXDOMAIN.value
    fix = section.findings[0].fix
    assert "`202.2.0.192.in-addr.arpa. IN PTR mail.example.test.`" in fix
    assert "`mail.example.test. 3600 IN A 192.0.2.202`" in fix
    assert "/smtp-errors/google-550-5-7-25-ptr-record" in fix


def test_missing_ipv6_ptr_points_to_the_ipv6_article(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, ["2001:db8:1::26"]))
    assert severities(section) == [("ptr.missing", Severity.ERROR)]
    assert "IN AAAA 2001:db8:1::26" in section.findings[0].fix
    assert "/smtp-errors/google-550-5-7-1-ipv6-ptr-authentication" in section.findings[0].fix


def test_ptr_name_without_address(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, ["192.0.2.203"]))
    assert severities(section) == [("ptr.forward-missing", Severity.ERROR)]
    assert "`nofwd.ptr.test. 3600 IN A 192.0.2.203`" in section.findings[0].fix


def test_ptr_name_resolving_elsewhere(resolver: Resolver) -> None:
    result = run(lookup_ptr(resolver, "192.0.2.204"))
    assert result.forward == {"mismatch.ptr.test": ("192.0.2.99",)} and not result.fcrdns
    section = run(check_ptr(resolver, ["192.0.2.204"]))
    assert severities(section) == [("ptr.forward-mismatch", Severity.ERROR)]


def test_generic_ptr_names(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, ["192.0.2.205", "192.0.2.208"]))
    assert severities(section) == [("ptr.generic", Severity.WARNING)] * 2
    generic = {entry["ip"]: entry["generic"] for entry in section.details["ips"]}
    assert generic == {
        "192.0.2.205": {"dynamic-192-0-2-205.pool.isp.ptr.test": "it contains the IP address"},
        "192.0.2.208": {"cust-4711.dsl.isp.ptr.test": "it contains 'cust', 'dsl'"},
    }
    assert all(entry["fcrdns"] for entry in section.details["ips"])


@pytest.mark.parametrize(
    ("name", "ip", "reason"),
    [
        ("mail.example.com", "192.0.2.5", ""),
        ("mx1.mail5.example.com", "192.0.2.5", ""),
        ("5.2.0.192.static.example.net", "192.0.2.5", "it contains the IP address"),
        ("host192-0-2-5.example.net", "192.0.2.5", "it contains the IP address"),
        ("c0000205.example.net", "192.0.2.5", "it contains the IP address"),
        ("192000002005.example.net", "192.0.2.5", "it contains the IP address"),
        ("ppp-42.dialup.example.net", "192.0.2.5", "it contains 'dialup', 'ppp'"),
        ("ec2-34-1-1-1.compute-1.amazonaws.com", "192.0.2.5", "it is a default compute-1.amazonaws.com name"),
        ("ip-10-0-0-1.ec2.compute.internal", "192.0.2.5", "it is a default compute.internal name"),
        ("5.2.0.192.bc.googleusercontent.com", "198.51.100.1", "it is a default googleusercontent.com name"),
        ("2001-db8--5.ip6.example.net", "2001:db8::5", "it contains the IP address"),
        ("mail6.example.com", "2001:db8::5", ""),
    ],
)
def test_generic_name_patterns(name: str, ip: str, reason: str) -> None:
    assert generic_reason(name, ip) == reason


def test_several_ptr_records(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, ["192.0.2.206"]))
    assert severities(section) == [("ptr.multiple", Severity.WARNING)]
    assert section.details["ips"][0]["ptr"] == ["a.multi.ptr.test", "b.multi.ptr.test"]
    assert "`206.2.0.192.in-addr.arpa. IN PTR a.multi.ptr.test.`" in section.findings[0].fix


def test_forward_lookup_failure_is_reported_not_raised(resolver: Resolver) -> None:
    result = run(lookup_ptr(resolver, "192.0.2.207"))
    assert result.forward_failed == ("host.servfail.test",)
    section = run(check_ptr(resolver, ["192.0.2.207"]))
    assert severities(section) == [("ptr.lookup-failed", Severity.WARNING)]


def test_reverse_lookup_failure_is_reported_not_raised() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a loopback port nobody answers on
        probe.bind(("127.0.0.1", 0))
        silent = Resolver([f"127.0.0.1:{probe.getsockname()[1]}"], timeout=0.3, retries=0)
        section = run(check_ptr(silent, ["192.0.2.201"]))
    assert severities(section) == [("ptr.lookup-failed", Severity.WARNING)]
    assert section.details["ips"][0]["status"] in ("timeout", "error", "servfail")


def test_mx_addresses_are_checked_more_leniently(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, [], ["198.51.100.25", "198.51.100.26", "198.51.100.27"]))
    assert severities(section) == [
        ("ptr.ok", Severity.OK),
        ("ptr.missing", Severity.WARNING),
        ("ptr.generic", Severity.INFO),
    ]
    assert [entry["role"] for entry in section.details["ips"]] == [Role.MX.value] * 3
    assert section.effective_status is SectionStatus.WARN


def test_an_ip_given_as_sending_and_mx_is_checked_once_as_sending(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, ["192.0.2.202"], ["192.0.2.202", "198.51.100.25"]))
    assert [(e["ip"], e["role"]) for e in section.details["ips"]] == [("192.0.2.202", "sending"), ("198.51.100.25", "mx")]
    assert severities(section) == [("ptr.missing", Severity.ERROR), ("ptr.ok", Severity.OK)]


def test_lookups_run_concurrently_and_once(resolver: Resolver, dns_server: Any) -> None:
    run(check_ptr(resolver, ["192.0.2.201", "192.0.2.201", "::ffff:192.0.2.201"]))
    assert resolver.queries == 2  # one PTR and one A, however often the IP was given


def test_invalid_and_private_addresses(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, ["not-an-ip", "10.1.2.3", "fe80::1"]))
    assert severities(section) == [
        ("ptr.invalid-ip", Severity.ERROR),
        ("ptr.private-ip", Severity.INFO),
        ("ptr.private-ip", Severity.INFO),
    ]
    assert resolver.queries == 0


def test_nothing_to_check(resolver: Resolver) -> None:
    section = run(check_ptr(resolver, []))
    assert severities(section) == [("ptr.no-ips", Severity.INFO)]
    assert section.effective_status is SectionStatus.INFO
