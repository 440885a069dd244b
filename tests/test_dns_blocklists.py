"""The blocklist check against the loopback DNS server (tests/zones/blocklist.zone).

The default lists are moved under blocklist.test. (``BlocklistConfig().under(...)``), so the real zone names,
return codes and bitmasks are exercised without a packet leaving loopback.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from coldrelay.dns import Resolver, Section, SectionStatus, Severity
from coldrelay.dns.dnsbl import (
    DBL,
    SURBL,
    URIBL,
    ZEN,
    BlocklistConfig,
    Outcome,
    TargetKind,
    check_blocklists,
    lookup_blocklists,
    normalise_domain,
    query_blocklists,
)

LISTS = BlocklistConfig().under("blocklist.test")
IP_LIST_NAMES = ["Spamhaus ZEN", "SpamCop", "Barracuda BRBL", "PSBL", "UCEPROTECT Level 1"]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def severities(section: Section) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in section.findings]


def results_for(section: Section, target: str) -> dict[str, dict[str, object]]:
    return {r["list"]: r for r in section.details["results"] if r["target"] == target}


def test_default_lists() -> None:
    config = BlocklistConfig()
    assert [bl.zone for bl in config.ip_lists] == [
        "zen.spamhaus.org",
        "bl.spamcop.net",
        "b.barracudacentral.org",
        "psbl.surriel.com",
        "dnsbl-1.uceprotect.net",
    ]
    assert [bl.zone for bl in config.domain_lists] == ["dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com"]
    assert all(bl.kind is TargetKind.IP for bl in config.ip_lists)
    assert all(bl.kind is TargetKind.DOMAIN for bl in config.domain_lists)
    assert [bl.zone for bl in LISTS.domain_lists] == [
        "dbl.spamhaus.org.blocklist.test",
        "multi.surbl.org.blocklist.test",
        "multi.uribl.com.blocklist.test",
    ]
    assert [bl.name for bl in config.only("SpamCop", "dbl.spamhaus.org").ip_lists] == ["SpamCop"]
    assert [bl.name for bl in config.only("SpamCop", "dbl.spamhaus.org").domain_lists] == ["Spamhaus DBL"]


def test_query_names() -> None:
    assert ZEN.query_name("192.0.2.1") == "1.2.0.192.zen.spamhaus.org"
    assert ZEN.query_name("2001:db8::1") == "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org"
    assert DBL.query_name("example.com") == "example.com.dbl.spamhaus.org"


def test_clean_ip(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.1"], lists=LISTS))
    assert severities(section) == [("blocklists.clean", Severity.OK)]
    assert section.effective_status is SectionStatus.PASS
    assert section.records == []
    assert {name: r["outcome"] for name, r in results_for(section, "203.0.113.1").items()} == dict.fromkeys(
        IP_LIST_NAMES, "clean"
    )
    json.dumps(section.to_dict())


def test_sbl_listing_with_txt_reason_and_spamcop(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.2"], lists=LISTS))
    assert severities(section) == [("blocklists.ip-listed", Severity.ERROR)] * 2
    zen, spamcop = results_for(section, "203.0.113.2")["Spamhaus ZEN"], results_for(section, "203.0.113.2")["SpamCop"]
    assert zen["query"] == "2.113.0.203.zen.spamhaus.org.blocklist.test"
    assert zen["answers"] == ["127.0.0.2"]
    assert zen["listings"] == [{"label": "SBL", "meaning": "a verified spam source or spam operation", "severity": "error"}]
    assert zen["reason"] == "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL000001"
    assert spamcop["lookup_url"] == "https://www.spamcop.net/bl.shtml?203.0.113.2"
    zen_fix, spamcop_fix = section.findings[0].fix, section.findings[1].fix
    assert "https://check.spamhaus.org/" in zen_fix and "/smtp-errors/spamhaus-sbl-listed" in zen_fix
    assert "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL000001" in zen_fix
    assert "https://www.spamcop.net/bl.shtml?203.0.113.2" in spamcop_fix and "/smtp-errors/spamcop-bl-listed" in spamcop_fix
    assert (
        '2.113.0.203.zen.spamhaus.org.blocklist.test. TXT "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL000001"'
        in (section.records)
    )
    assert section.effective_status is SectionStatus.FAIL


@pytest.mark.parametrize(
    ("ip", "labels", "article"),
    [
        ("203.0.113.3", ["CSS"], "spamhaus-css-listed"),
        ("203.0.113.4", ["XBL"], "spamhaus-xbl-listed"),
        ("203.0.113.9", ["SBL", "DROP"], "spamhaus-sbl-listed"),
        ("203.0.113.10", ["PBL"], "spamhaus-pbl-listed"),
        ("203.0.113.11", ["PBL"], "spamhaus-pbl-listed"),
        ("203.0.113.42", ["ZEN"], "spamhaus-sbl-zen-listed"),
    ],
)
def test_zen_return_codes(resolver: Resolver, ip: str, labels: list[str], article: str) -> None:
    section = run(check_blocklists(resolver, [ip], lists=LISTS))
    assert severities(section) == [("blocklists.ip-listed", Severity.ERROR)]
    zen = results_for(section, ip)["Spamhaus ZEN"]
    assert [lst["label"] for lst in zen["listings"]] == labels  # type: ignore[attr-defined]
    assert f"/smtp-errors/{article}" in section.findings[0].fix


def test_pbl_fix_points_to_self_service_removal(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.10"], lists=LISTS))
    assert "https://www.spamhaus.org/pbl/removal/" in section.findings[0].fix


def test_unknown_zen_code_is_a_listing_with_its_code(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.42"], lists=LISTS))
    assert results_for(section, "203.0.113.42")["Spamhaus ZEN"]["listings"] == [
        {"label": "ZEN", "meaning": "return code 127.0.0.42", "severity": "error"}
    ]


@pytest.mark.parametrize(
    ("ip", "answer"),
    [("203.0.113.252", "127.255.255.252"), ("203.0.113.254", "127.255.255.254"), ("203.0.113.255", "127.255.255.255")],
)
def test_spamhaus_error_codes_are_not_listings(resolver: Resolver, ip: str, answer: str) -> None:
    section = run(check_blocklists(resolver, [ip], lists=LISTS))
    assert severities(section) == [("blocklists.query-refused", Severity.INFO), ("blocklists.clean", Severity.OK)]
    zen = results_for(section, ip)["Spamhaus ZEN"]
    assert (zen["outcome"], zen["answers"], zen["listings"]) == ("refused", [answer], [])
    assert str(zen["error"]).startswith(answer)
    assert "/smtp-errors/spamhaus-query-refused" in section.findings[0].fix
    assert "4 IP blocklists" in section.findings[1].message  # the other lists still answered
    assert section.effective_status is SectionStatus.PASS


def test_refused_answer_keeps_its_txt(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.254"], lists=LISTS))
    assert results_for(section, "203.0.113.254")["Spamhaus ZEN"]["reason"] == (
        "Error: open resolver; https://check.spamhaus.org/returnc/pub/"
    )


def test_barracuda_psbl_uceprotect(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.20"], lists=LISTS))
    assert severities(section) == [
        ("blocklists.ip-listed", Severity.ERROR),
        ("blocklists.ip-listed", Severity.WARNING),
        ("blocklists.ip-listed", Severity.WARNING),
    ]
    fixes = [f.fix for f in section.findings]
    assert "https://www.barracudacentral.org/rbl/removal-request" in fixes[0]
    assert "/smtp-errors/barracuda-brbl-listed" in fixes[0]
    assert "https://psbl.org/listing?ip=203.0.113.20" in fixes[1] and "https://psbl.org/remove" in fixes[1]
    assert "/smtp-errors/uceprotect-level1-listed" in fixes[2]


def test_answer_outside_loopback_is_unknown_not_listed(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.30"], lists=LISTS))
    assert severities(section) == [("blocklists.unexpected-answer", Severity.INFO), ("blocklists.clean", Severity.OK)]
    assert results_for(section, "203.0.113.30")["SpamCop"]["outcome"] == "unexpected"


def test_127_0_0_1_is_never_a_listing(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.31"], lists=LISTS))
    assert severities(section) == [("blocklists.query-refused", Severity.INFO), ("blocklists.clean", Severity.OK)]


def test_ipv6_uses_reversed_nibbles_and_only_ipv6_lists(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["2001:DB8:2::1"], lists=LISTS))
    assert severities(section) == [("blocklists.ip-listed", Severity.ERROR)]
    assert list(results_for(section, "2001:db8:2::1")) == ["Spamhaus ZEN"]
    assert [s["list"] for s in section.details["skipped"]] == IP_LIST_NAMES[1:]
    assert resolver.queries == 2  # the A question and the TXT reason, to ZEN only


def test_ipv6_without_an_ipv6_list(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["2001:db8:2::1"], lists=LISTS.only("SpamCop")))
    assert severities(section) == [("blocklists.not-covered", Severity.INFO)]
    assert resolver.queries == 0


def test_dns_failure_is_could_not_check(resolver: Resolver) -> None:
    failing = BlocklistConfig((replace(ZEN, name="Broken list", zone="bl.servfail.test"),), ())
    section = run(check_blocklists(resolver, ["203.0.113.2"], lists=failing))
    assert severities(section) == [("blocklists.lookup-failed", Severity.INFO)]
    assert section.effective_status is SectionStatus.INFO
    assert results_for(section, "203.0.113.2")["Broken list"]["outcome"] == Outcome.FAILED.value


@pytest.mark.parametrize(
    ("domain", "list_name", "labels", "severity"),
    [
        ("dbl-spam.test", "Spamhaus DBL", ["spam"], Severity.ERROR),
        ("dbl-abused.test", "Spamhaus DBL", ["abused-legit spam"], Severity.ERROR),
        ("surbl-mw.test", "SURBL", ["MW", "ABUSE"], Severity.ERROR),
        ("surbl-oddbit.test", "SURBL", ["SURBL"], Severity.ERROR),
        ("uribl-black.test", "URIBL", ["black"], Severity.ERROR),
        ("uribl-grey.test", "URIBL", ["grey"], Severity.WARNING),
        ("uribl-all.test", "URIBL", ["black", "grey", "red"], Severity.ERROR),
    ],
)
def test_domain_lists(resolver: Resolver, domain: str, list_name: str, labels: list[str], severity: Severity) -> None:
    section = run(check_blocklists(resolver, [], [domain], LISTS))
    assert severities(section) == [("blocklists.domain-listed", severity)]
    result = results_for(section, domain)[list_name]
    assert [lst["label"] for lst in result["listings"]] == labels  # type: ignore[attr-defined]
    assert str(result["lookup_url"]) in section.findings[0].fix


def test_domain_listing_reason(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, [], ["DBL-Spam.test."], LISTS))
    assert (
        results_for(section, "dbl-spam.test")["Spamhaus DBL"]["reason"] == "https://www.spamhaus.org/query/domain/dbl-spam.test"
    )
    assert "/smtp-errors/spamhaus-dbl-listed" in section.findings[0].fix


@pytest.mark.parametrize(
    ("domain", "list_name"),
    [
        ("dbl-ipquery.test", "Spamhaus DBL"),
        ("dbl-public.test", "Spamhaus DBL"),
        ("surbl-blocked.test", "SURBL"),
        ("uribl-refused.test", "URIBL"),
    ],
)
def test_domain_list_refusals_are_not_listings(resolver: Resolver, domain: str, list_name: str) -> None:
    section = run(check_blocklists(resolver, [], [domain], LISTS))
    assert severities(section) == [("blocklists.query-refused", Severity.INFO), ("blocklists.clean", Severity.OK)]
    assert results_for(section, domain)[list_name]["outcome"] == "refused"


def test_clean_domain(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, [], ["clean-domain.test"], LISTS))
    assert severities(section) == [("blocklists.clean", Severity.OK)]
    assert "3 domain blocklists" in section.findings[0].message


def test_ips_and_domains_in_one_round(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["203.0.113.1", "203.0.113.1", "::ffff:203.0.113.1"], ["clean-domain.test"], LISTS))
    assert severities(section) == [("blocklists.clean", Severity.OK)] * 2
    assert resolver.queries == 5 + 3  # repeats are asked once; nothing listed, so no TXT round


def test_invalid_targets_and_nothing_to_check(resolver: Resolver) -> None:
    section = run(check_blocklists(resolver, ["999.1.1.1"], ["not a domain", "192.0.2.1", "localhost"], LISTS))
    assert severities(section) == [("blocklists.invalid-target", Severity.ERROR)] * 4
    assert resolver.queries == 0
    empty = run(check_blocklists(resolver, [], [], LISTS))
    assert severities(empty) == [("blocklists.nothing-to-check", Severity.INFO)]


def test_normalise_domain() -> None:
    assert normalise_domain(" Example.COM. ") == "example.com"
    assert normalise_domain("bücher.example") == "xn--bcher-kva.example"
    assert normalise_domain("-bad.example") is None
    assert normalise_domain("192.0.2.1") is None


def test_lookup_an_ip(resolver: Resolver) -> None:
    section = run(lookup_blocklists(resolver, "203.0.113.9", LISTS))
    assert section.details["target"] == "203.0.113.9"
    assert severities(section) == [("blocklists.ip-listed", Severity.ERROR)]


def test_lookup_a_domain_checks_its_mail_hosts_too(resolver: Resolver) -> None:
    section = run(lookup_blocklists(resolver, "listedmx.blocklist.test", LISTS))
    assert section.details["mail_host_ips"] == ["203.0.113.2"]
    assert severities(section) == [
        ("blocklists.ip-listed", Severity.ERROR),
        ("blocklists.ip-listed", Severity.ERROR),
        ("blocklists.clean", Severity.OK),
    ]
    only_domain = run(lookup_blocklists(resolver, "listedmx.blocklist.test", LISTS, mail_hosts=False))
    assert severities(only_domain) == [("blocklists.clean", Severity.OK)]


def test_query_blocklists_directly(resolver: Resolver) -> None:
    zen, surbl, uribl = (replace(bl, zone=f"{bl.zone}.blocklist.test") for bl in (ZEN, SURBL, URIBL))
    results = run(query_blocklists(resolver, [("203.0.113.1", zen), ("surbl-mw.test", surbl), ("uribl-refused.test", uribl)]))
    assert [r.outcome for r in results] == [Outcome.CLEAN, Outcome.LISTED, Outcome.REFUSED]
    assert results[1].severity is Severity.ERROR and results[0].severity is Severity.OK
