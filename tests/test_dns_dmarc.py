"""The DMARC check against the loopback DNS server (tests/zones/dmarc.zone): every finding, pass and fail.

The shipped Public Suffix List does not know ``.test`` beyond its default rule, which would
make every ``*.dmarc.test`` share the organisational domain ``dmarc.test``. These tests pass a
list that also lists ``dmarc.test`` as a suffix, so each scenario is its own organisation;
one test uses the shipped list with a real two-label suffix (``co.uk``) served on loopback.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import publicsuffixlist
import pytest
from publicsuffixlist import PublicSuffixList

from coldrelay.dns import Lookup, LookupStatus, Resolver, Section, SectionStatus, Severity
from coldrelay.dns.dmarc import check_dmarc, organizational_domain, parse_report_uris

TEST_PSL = PublicSuffixList([*Path(publicsuffixlist.PSLFILE).read_text(encoding="utf-8").splitlines(), "dmarc.test"])


def dmarc(resolver: Resolver, domain: str, psl: PublicSuffixList | None = TEST_PSL) -> Section:
    return asyncio.run(check_dmarc(resolver, domain, psl=psl))


def severity(section: Section, code: str) -> Severity:
    (found,) = {f.severity for f in section.findings if f.code == code}
    return found


def test_reject_with_reports_passes(resolver: Resolver) -> None:
    section = dmarc(resolver, "reject.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced"]
    assert section.effective_status is SectionStatus.PASS
    assert section.records == ["v=DMARC1; p=reject; rua=mailto:dmarc@reject.dmarc.test; adkim=s; aspf=s"]
    d = section.details
    assert (d["p"], d["sp"], d["pct"], d["adkim"], d["aspf"], d["effective_policy"]) == ("reject", None, 100, "s", "s", "reject")
    assert (d["rua"], d["ruf"], d["inherited"], d["policy_domain"]) == (
        ["mailto:dmarc@reject.dmarc.test"],
        [],
        False,
        "reject.dmarc.test",
    )
    assert d["external_destinations"] == []
    assert json.loads(json.dumps(section.to_dict()))["details"]["effective_policy"] == "reject"


def test_p_none_is_a_warning_with_the_stricter_record_as_fix(resolver: Resolver) -> None:
    section = dmarc(resolver, "none.dmarc.test")
    assert section.codes() == ["dmarc.policy-none"]
    assert severity(section, "dmarc.policy-none") is Severity.WARNING
    assert '_dmarc.none.dmarc.test TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@none.dmarc.test"' in section.findings[0].fix


def test_pct_below_100_is_info(resolver: Resolver) -> None:
    section = dmarc(resolver, "pct.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced", "dmarc.pct-partial"]
    assert severity(section, "dmarc.pct-partial") is Severity.INFO
    assert (section.details["pct"], section.details["effective_policy"]) == (25, "quarantine")


def test_missing_rua_is_a_warning(resolver: Resolver) -> None:
    section = dmarc(resolver, "norua.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced", "dmarc.no-rua"]
    assert severity(section, "dmarc.no-rua") is Severity.WARNING
    assert 'TXT "v=DMARC1; p=reject; rua=mailto:dmarc-reports@norua.dmarc.test"' in section.findings[1].fix


def test_sp_none_under_an_enforced_p_is_a_warning(resolver: Resolver) -> None:
    section = dmarc(resolver, "subnone.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced", "dmarc.subdomain-policy-none"]
    assert severity(section, "dmarc.subdomain-policy-none") is Severity.WARNING
    assert section.details["sp"] == "none"


def test_dmarcbis_tags_are_accepted(resolver: Resolver) -> None:
    section = dmarc(resolver, "bis.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced"]
    assert (section.details["sp"], section.details["np"], section.details["t"]) == ("quarantine", "reject", "n")
    assert section.details["tags"]["psd"] == "n"


def test_dmarcbis_testing_flag_is_info(resolver: Resolver) -> None:
    section = dmarc(resolver, "bistest.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced", "dmarc.testing"]
    assert severity(section, "dmarc.testing") is Severity.INFO
    assert section.details["t"] == "y"


def test_no_record_is_an_error(resolver: Resolver) -> None:
    section = dmarc(resolver, "missing.dmarc.test")
    assert section.codes() == ["dmarc.missing"]
    assert severity(section, "dmarc.missing") is Severity.ERROR
    assert section.records == []
    fix = section.findings[0].fix
    assert '_dmarc.missing.dmarc.test TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@missing.dmarc.test"' in fix
    assert "/smtp-errors/google-550-5-7-40-dmarc-record-missing" in fix
    assert resolver.queries == 1  # the domain is its own organisational domain: one question


def test_no_record_at_the_subdomain_nor_its_organisational_domain(resolver: Resolver) -> None:
    section = dmarc(resolver, "child.missing.dmarc.test")
    assert section.codes() == ["dmarc.missing"]
    assert section.details["org_domain"] == "missing.dmarc.test"
    assert "missing.dmarc.test" in section.findings[0].message
    assert resolver.queries == 2  # both names asked in one batch


def test_inherited_policy_from_the_organisational_domain(resolver: Resolver) -> None:
    section = dmarc(resolver, "shop.parent.dmarc.test")
    assert section.codes() == ["dmarc.inherited", "dmarc.policy-enforced"]
    assert severity(section, "dmarc.inherited") is Severity.INFO
    d = section.details
    assert (d["inherited"], d["policy_domain"], d["record_name"], d["org_domain"]) == (
        True,
        "parent.dmarc.test",
        "_dmarc.parent.dmarc.test",
        "parent.dmarc.test",
    )
    assert (d["p"], d["sp"], d["effective_policy"]) == ("reject", "quarantine", "quarantine")  # sp= applies to subdomains
    assert section.records == ["v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@parent.dmarc.test"]


def test_inherited_sp_none_is_the_policy_none_warning(resolver: Resolver) -> None:
    section = dmarc(resolver, "app.weakparent.dmarc.test")
    assert section.codes() == ["dmarc.inherited", "dmarc.policy-none"]
    assert section.details["effective_policy"] == "none"
    assert 'TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@weakparent.dmarc.test"' in section.findings[1].fix
    own = dmarc(resolver, "weakparent.dmarc.test")
    assert own.codes() == ["dmarc.policy-enforced", "dmarc.subdomain-policy-none"]


def test_organisational_domain_with_the_shipped_public_suffix_list(resolver: Resolver) -> None:
    section = dmarc(resolver, "mail.coldrelay-test-org.co.uk", psl=None)
    assert section.codes() == ["dmarc.inherited", "dmarc.policy-enforced"]
    assert section.details["org_domain"] == "coldrelay-test-org.co.uk"
    assert section.details["effective_policy"] == "quarantine"


def test_organizational_domain() -> None:
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organizational_domain("Mail.Example.COM.") == "example.com"
    assert organizational_domain("co.uk") == "co.uk"
    assert organizational_domain("x.y.dmarc.test") == "dmarc.test"  # unknown TLD: the default rule
    assert organizational_domain("mail.orgdomain.dmarc.test", TEST_PSL) == "orgdomain.dmarc.test"


def test_several_records_are_an_error(resolver: Resolver) -> None:
    section = dmarc(resolver, "multi.dmarc.test")
    assert section.codes() == ["dmarc.multiple-records"]
    assert len(section.records) == 2


def test_version_must_come_first(resolver: Resolver) -> None:
    section = dmarc(resolver, "order.dmarc.test")
    assert section.codes() == ["dmarc.version-not-first"]
    assert 'TXT "v=DMARC1; p=reject; rua=mailto:dmarc@order.dmarc.test"' in section.findings[0].fix


def test_version_is_case_sensitive(resolver: Resolver) -> None:
    section = dmarc(resolver, "version.dmarc.test")
    assert section.codes() == ["dmarc.invalid-version"]
    assert severity(section, "dmarc.invalid-version") is Severity.ERROR
    assert 'TXT "v=DMARC1; p=reject; rua=mailto:dmarc@version.dmarc.test"' in section.findings[0].fix


def test_a_broken_record_beside_a_valid_one(resolver: Resolver) -> None:
    section = dmarc(resolver, "mixed.dmarc.test")
    assert section.codes() == ["dmarc.invalid-version", "dmarc.policy-enforced"]
    assert "google-site-verification=abc123" not in section.records  # unrelated TXT left out
    assert section.findings[0].fix.startswith('Delete the TXT record "v=DMARC2; p=none"')
    assert section.details["effective_policy"] == "reject"


def test_invalid_values_are_errors_with_one_corrected_record(resolver: Resolver) -> None:
    section = dmarc(resolver, "badvalues.dmarc.test")
    assert section.codes() == ["dmarc.invalid-value"] * 8 + ["dmarc.policy-enforced"]
    bad = [f.message.split(" ", 1)[0] for f in section.findings if f.code == "dmarc.invalid-value"]
    assert bad == ["pct=150", "adkim=x", "aspf=relaxed", "fo=2", "rf=xml", "ri=soon", "psd=maybe", "t=later"]
    corrected = (
        'TXT "v=DMARC1; p=reject; pct=100; adkim=r; aspf=r; fo=1; rf=afrf; ri=86400; psd=n; t=n; '
        'rua=mailto:dmarc@badvalues.dmarc.test"'
    )
    assert all(corrected in f.fix for f in section.findings if f.code == "dmarc.invalid-value")
    assert (section.details["pct"], section.details["adkim"]) == (100, "r")  # defaults apply


def test_an_invalid_policy_is_an_error(resolver: Resolver) -> None:
    section = dmarc(resolver, "badpolicy.dmarc.test")
    assert section.codes() == ["dmarc.invalid-policy"]
    assert section.details["effective_policy"] is None


def test_invalid_sp_and_np(resolver: Resolver) -> None:
    section = dmarc(resolver, "badsp.dmarc.test")
    assert section.codes() == ["dmarc.invalid-policy", "dmarc.invalid-policy"]
    assert 'TXT "v=DMARC1; p=reject; sp=reject; np=none; rua=mailto:dmarc@badsp.dmarc.test"' in section.findings[0].fix
    assert section.details["effective_policy"] is None  # an invalid sp= voids the policy (RFC 7489 6.6.3)


def test_missing_p_is_an_error(resolver: Resolver) -> None:
    section = dmarc(resolver, "nop.dmarc.test")
    assert section.codes() == ["dmarc.policy-missing"]
    assert 'TXT "v=DMARC1; p=none; rua=mailto:dmarc@nop.dmarc.test"' in section.findings[0].fix


@pytest.mark.parametrize("domain", ["syntax.dmarc.test", "dup.dmarc.test"])
def test_malformed_tag_lists_are_syntax_errors(resolver: Resolver, domain: str) -> None:
    section = dmarc(resolver, domain)
    assert section.codes() == ["dmarc.syntax-error"]
    assert "p" not in section.details  # nothing was read from it


def test_an_unknown_tag_is_a_warning(resolver: Resolver) -> None:
    section = dmarc(resolver, "unknown.dmarc.test")
    assert section.codes() == ["dmarc.unknown-tag", "dmarc.policy-enforced"]
    assert severity(section, "dmarc.unknown-tag") is Severity.WARNING
    assert "adkm=s" in section.findings[0].message


def test_report_uris(resolver: Resolver) -> None:
    section = dmarc(resolver, "uris.dmarc.test")
    assert section.codes() == ["dmarc.non-mailto-uri", "dmarc.invalid-uri", "dmarc.invalid-uri", "dmarc.policy-enforced"]
    assert severity(section, "dmarc.non-mailto-uri") is Severity.WARNING
    assert severity(section, "dmarc.invalid-uri") is Severity.ERROR
    assert section.details["rua"] == ["mailto:agg@uris.dmarc.test!10m", "https://reports.uris.dmarc.test/dmarc", "notauri"]
    assert section.details["external_destinations"] == []


def test_report_uri_parsing() -> None:
    first, second, third = parse_report_uris(
        "rua", " mailto:dmarc%2Breports@Reports.Example.COM!10M ,mailto:x@y.example?subject=hi,https://h.example:8443/r"
    )
    assert (first.scheme, first.address, first.host, first.size_limit, first.problem) == (
        "mailto",
        "dmarc+reports@Reports.Example.COM",
        "reports.example.com",
        "10m",
        "",
    )
    assert (second.address, second.host) == ("x@y.example", "y.example")
    assert (third.scheme, third.host, third.problem) == ("https", "h.example", "")
    assert parse_report_uris("ruf", "mailto:@example.com")[0].problem
    assert parse_report_uris("ruf", "") == []


def test_reports_inside_the_organisation_need_no_authorisation(resolver: Resolver) -> None:
    section = dmarc(resolver, "sameorg.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced"]
    assert section.details["external_destinations"] == []
    assert resolver.queries == 1


def test_authorised_external_destination(resolver: Resolver) -> None:
    section = dmarc(resolver, "external.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced", "dmarc.external-authorized"]  # rua and ruf share one host
    assert section.details["external_destinations"] == [
        {
            "host": "reports.vendor.dmarc.test",
            "record_name": "external.dmarc.test._report._dmarc.reports.vendor.dmarc.test",
            "authorized": True,
        }
    ]


def test_unauthorised_external_destination_is_a_warning(resolver: Resolver) -> None:
    section = dmarc(resolver, "unauth.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced", "dmarc.external-unauthorized"]
    assert severity(section, "dmarc.external-unauthorized") is Severity.WARNING
    assert section.details["external_destinations"][0]["authorized"] is False
    assert 'unauth.dmarc.test._report._dmarc.reports.vendor.dmarc.test TXT "v=DMARC1"' in section.findings[1].fix


def test_external_destination_lookup_failure_is_a_warning(resolver: Resolver) -> None:
    section = dmarc(resolver, "extfail.dmarc.test")
    assert section.codes() == ["dmarc.policy-enforced", "dmarc.external-lookup-failed"]
    assert severity(section, "dmarc.external-lookup-failed") is Severity.WARNING
    assert section.details["external_destinations"][0]["authorized"] is None


def test_lookup_failure_is_a_finding_not_an_exception(resolver: Resolver) -> None:
    section = dmarc(resolver, "x.servfail.test")
    assert section.codes() == ["dmarc.lookup-failed"]
    assert severity(section, "dmarc.lookup-failed") is Severity.ERROR
    assert "/smtp-errors/google-451-4-7-26-dmarc-dns-failure" in section.findings[0].fix


class _ParentFails(Resolver):
    """The real loopback server, except that one name answers SERVFAIL (no zone can express that)."""

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        if name == "_dmarc.missing.dmarc.test":
            return Lookup(name, rdtype, LookupStatus.SERVFAIL, error="test")
        return await super().lookup(name, rdtype)


def test_organisational_domain_lookup_failure(dns_server) -> None:  # type: ignore[no-untyped-def]
    resolver = _ParentFails([dns_server.address], timeout=1.0, retries=1)
    section = dmarc(resolver, "child.missing.dmarc.test")
    assert section.codes() == ["dmarc.lookup-failed"]
    assert "_dmarc.missing.dmarc.test" in section.findings[0].message
