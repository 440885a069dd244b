"""TLS-RPT against the loopback DNS server: present, missing, several records, wrong version, syntax, bad URIs."""

from __future__ import annotations

import asyncio
import json

import pytest

from coldrelay.dns import Resolver, Section, SectionStatus, Severity
from coldrelay.dns.tlsrpt import check_tls_rpt, parse_tlsrpt_record, valid_report_uri


def check(resolver: Resolver, domain: str) -> Section:
    return asyncio.run(check_tls_rpt(resolver, domain))


def severity(section: Section, code: str) -> Severity:
    return next(f.severity for f in section.findings if f.code == code)


def test_valid_record(resolver: Resolver) -> None:
    section = check(resolver, "Good.TLSRPT.test.")
    assert section.codes() == ["tls_rpt.valid"]
    assert section.records == ["v=TLSRPTv1; rua=mailto:tls-reports@good.tlsrpt.test"]
    assert section.details["rua"] == ["mailto:tls-reports@good.tlsrpt.test"]
    assert section.effective_status is SectionStatus.PASS
    assert json.loads(json.dumps(section.to_dict()))["findings"][0]["code"] == "tls_rpt.valid"


def test_two_destinations_and_trailing_semicolon(resolver: Resolver) -> None:
    section = check(resolver, "two.tlsrpt.test")
    assert section.codes() == ["tls_rpt.valid"]
    assert section.details["rua"] == ["mailto:a@two.tlsrpt.test", "https://reports.two.tlsrpt.test/v1/tlsrpt"]


def test_record_split_over_strings_is_joined(resolver: Resolver) -> None:
    section = check(resolver, "split.tlsrpt.test")
    assert section.codes() == ["tls_rpt.valid"]
    assert section.records == ["v=TLSRPTv1; rua=mailto:tls@split.tlsrpt.test"]


@pytest.mark.parametrize("domain", ["missing.tlsrpt.test", "unrelated.tlsrpt.test", "nosuch.tlsrpt.test"])
def test_missing_is_info(resolver: Resolver, domain: str) -> None:
    section = check(resolver, domain)
    assert section.codes() == ["tls_rpt.missing"]
    assert severity(section, "tls_rpt.missing") is Severity.INFO
    assert section.effective_status is SectionStatus.INFO
    assert section.records == []


def test_missing_with_mta_sts_is_a_warning(resolver: Resolver) -> None:
    section = check(resolver, "stsonly.tlsrpt.test")
    assert section.codes() == ["tls_rpt.missing"]
    assert severity(section, "tls_rpt.missing") is Severity.WARNING
    assert section.details["mta_sts_published"] is True


def test_lookup_failure(resolver: Resolver) -> None:
    section = check(resolver, "tlsrpt.servfail.test")
    assert section.codes() == ["tls_rpt.lookup-failed"]
    assert severity(section, "tls_rpt.lookup-failed") is Severity.WARNING


def test_multiple_records(resolver: Resolver) -> None:
    section = check(resolver, "multi.tlsrpt.test")
    assert section.codes() == ["tls_rpt.multiple-records"]
    assert severity(section, "tls_rpt.multiple-records") is Severity.ERROR
    assert len(section.records) == 2


@pytest.mark.parametrize("domain", ["v2.tlsrpt.test", "lower.tlsrpt.test", "vlast.tlsrpt.test", "nosemi.tlsrpt.test"])
def test_bad_version(resolver: Resolver, domain: str) -> None:
    section = check(resolver, domain)
    assert section.codes() == ["tls_rpt.bad-version"]
    assert section.effective_status is SectionStatus.FAIL


def test_no_rua(resolver: Resolver) -> None:
    section = check(resolver, "norua.tlsrpt.test")
    assert section.codes() == ["tls_rpt.no-rua"]
    assert section.details["rua"] == []


def test_bad_uris(resolver: Resolver) -> None:
    section = check(resolver, "baduri.tlsrpt.test")
    assert section.codes() == ["tls_rpt.bad-uri"]
    assert section.details["rua"] == [
        "http://reports.baduri.tlsrpt.test/",
        "mailto:not-an-address",
        "mailto:ok@baduri.tlsrpt.test",
    ]
    assert "http://reports.baduri.tlsrpt.test/, mailto:not-an-address" in section.findings[0].message


@pytest.mark.parametrize("domain", ["duprua.tlsrpt.test", "junk.tlsrpt.test", "emptyuri.tlsrpt.test"])
def test_syntax(resolver: Resolver, domain: str) -> None:
    assert check(resolver, domain).codes() == ["tls_rpt.syntax"]


def test_parsing_helpers() -> None:
    record = parse_tlsrpt_record("v=TLSRPTv1 ; rua = mailto:a@b.example ; ext=1")
    assert record.rua == ("mailto:a@b.example",) and record.extensions == {"ext": "1"} and record.problems == ()
    assert valid_report_uri("mailto:tls%2Breports@example.com?subject=x")
    assert valid_report_uri("HTTPS://reports.example.com/tls")
    assert not valid_report_uri("https://localhost/tls")
    assert not valid_report_uri("https:reports.example.com")
    assert not valid_report_uri("ftp://example.com/")
    assert not valid_report_uri("mailto:")
