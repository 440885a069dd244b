"""DNSSEC against the loopback DNS server: unsigned, DS present and matching, halfway-signed, stale DS, weak crypto.

The loopback server never sets the AD flag, so the 'validated' path uses a resolver wrapper that marks the
real answers as authenticated, as a validating resolver would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from coldrelay.dns import Lookup, Resolver, Section, SectionStatus, Severity
from coldrelay.dns.dnssec import check_dnssec, ds_matches
from dns_server import FailingResolver


def check(resolver: Resolver, domain: str) -> Section:
    return asyncio.run(check_dnssec(resolver, domain))


def severity(section: Section, code: str) -> Severity:
    return next(f.severity for f in section.findings if f.code == code)


def test_unsigned_is_info(resolver: Resolver) -> None:
    section = check(resolver, "unsigned.dnssec.test")
    assert section.codes() == ["dnssec.unsigned"]
    assert severity(section, "dnssec.unsigned") is Severity.INFO
    assert section.effective_status is SectionStatus.INFO
    assert section.records == []
    assert section.details["zone"] == "unsigned.dnssec.test"
    assert section.details["authenticated"] is False


def test_ds_present_and_matching(resolver: Resolver) -> None:
    section = check(resolver, "good.dnssec.test")
    assert section.codes() == ["dnssec.signed", "dnssec.not-validated"]
    assert severity(section, "dnssec.not-validated") is Severity.INFO
    assert section.effective_status is SectionStatus.PASS
    assert section.details["ds"] == [
        {"key_tag": 52672, "algorithm": 13, "digest_type": 2},
        {"key_tag": 52672, "algorithm": 13, "digest_type": 1},
    ]
    assert section.details["dnskey"] == [{"key_tag": 52672, "flags": 257, "algorithm": 13}]
    assert section.details["matching_ds"] == [52672, 52672]
    assert len(section.records) == 3
    assert section.records[0].startswith("good.dnssec.test. DS 52672 13 2 ")
    assert json.loads(json.dumps(section.to_dict()))["details"]["zone"] == "good.dnssec.test"


def test_subdomain_is_judged_by_its_zone(resolver: Resolver) -> None:
    section = check(resolver, "www.good.dnssec.test")
    assert section.codes() == ["dnssec.signed", "dnssec.not-validated"]
    assert section.details["zone"] == "good.dnssec.test"
    assert check(resolver, "mail.unsigned.dnssec.test").details["zone"] == "unsigned.dnssec.test"


class _ValidatingResolver(Resolver):
    """The real answers, flagged as a validating resolver would flag them (AD set)."""

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        return dataclasses.replace(await super().lookup(name, rdtype), authenticated=True)


def test_validated_answer(dns_server: Any) -> None:
    validating = _ValidatingResolver([dns_server.address], timeout=1.0, retries=0)
    section = check(validating, "good.dnssec.test")
    assert section.codes() == ["dnssec.validated", "dnssec.signed"]
    assert section.details["authenticated"] is True
    assert section.effective_status is SectionStatus.PASS


def test_keys_without_ds_is_a_warning(resolver: Resolver) -> None:
    section = check(resolver, "nods.dnssec.test")
    assert section.codes() == ["dnssec.no-ds"]
    assert severity(section, "dnssec.no-ds") is Severity.WARNING


def test_ds_without_keys(resolver: Resolver) -> None:
    section = check(resolver, "dsonly.dnssec.test")
    assert section.codes() == ["dnssec.ds-without-dnskey"]
    assert section.effective_status is SectionStatus.FAIL


def test_stale_ds(resolver: Resolver) -> None:
    section = check(resolver, "mismatch.dnssec.test")
    assert section.codes() == ["dnssec.ds-mismatch"]
    assert section.details["matching_ds"] == []


def test_weak_algorithm_and_digest(resolver: Resolver) -> None:
    section = check(resolver, "weak.dnssec.test")
    assert section.codes() == ["dnssec.signed", "dnssec.not-validated", "dnssec.weak-algorithm", "dnssec.weak-digest"]
    assert severity(section, "dnssec.weak-algorithm") is Severity.WARNING
    assert severity(section, "dnssec.weak-digest") is Severity.WARNING
    assert "RSASHA1" in section.findings[2].message


def test_sha1_digest_next_to_sha256_is_fine(resolver: Resolver) -> None:
    assert "dnssec.weak-digest" not in check(resolver, "good.dnssec.test").codes()


@pytest.mark.parametrize("domain", ["nosuch.dnssec.test", "nosuch.nozone.test"])
def test_domain_not_found(resolver: Resolver, domain: str) -> None:
    assert check(resolver, domain).codes() == ["dnssec.domain-not-found"]


def test_lookup_failure(resolver: Resolver) -> None:
    section = check(resolver, "dnssec.servfail.test")
    assert section.codes() == ["dnssec.lookup-failed"]
    assert severity(section, "dnssec.lookup-failed") is Severity.WARNING


def test_ds_lookup_failure(dns_server: Any) -> None:
    failing = FailingResolver(dns_server.address, {("good.dnssec.test", "DS")})
    section = check(failing, "good.dnssec.test")
    assert section.codes() == ["dnssec.lookup-failed"]
    assert "DS" in section.findings[0].message


def test_ds_matching_helper() -> None:
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    from dns.rdtypes.ANY.DNSKEY import DNSKEY
    from dns.rdtypes.ANY.DS import DS

    key = dns.rdata.from_text(
        dns.rdataclass.IN,
        dns.rdatatype.DNSKEY,
        "257 3 13 UwJXDzWqAJfzwKgSabJiSyKQFT/UWfYKYcg69RvDVRmGEGdeftj6AlNqzz1M2vOtuD5LUui+KPAWIbb+Cu669w==",
    )
    ds = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.DS, "52672 13 2 5cd993f7bffc8241968ff9d02f411e8c9d53206217cb668aa53bbe4571c971b0"
    )
    assert isinstance(key, DNSKEY) and isinstance(ds, DS)
    assert ds_matches("good.dnssec.test", ds, [key])
    assert not ds_matches("other.dnssec.test", ds, [key])
