"""SPF against the loopback DNS server (tests/zones/spf.zone): record, tree, lookup counts, findings, check_host()."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldrelay.dns import Resolver, Section, SectionStatus, Severity
from coldrelay.dns.spf import (
    MacroContext,
    SpfResult,
    SpfVerdict,
    check_spf,
    evaluate_spf,
    expand_macros,
    parse_spf,
    spf_records,
)


def check(resolver: Resolver, domain: str, ips: tuple[str, ...] = ()) -> Section:
    section = asyncio.run(check_spf(resolver, domain, ips))
    json.dumps(section.to_dict())  # the whole section, tree included, must serialise
    return section


def evaluate(resolver: Resolver, domain: str, ip: str, sender: str | None = None, helo: str | None = None) -> SpfResult:
    return asyncio.run(evaluate_spf(resolver, domain, ip, sender, helo=helo))


def severity(section: Section, code: str) -> Severity:
    found = [f.severity for f in section.findings if f.code == code]
    assert len(found) == 1, (code, section.codes())
    return found[0]


def messages(section: Section, code: str) -> list[str]:
    return [f.message for f in section.findings if f.code == code]


def fixes(section: Section, code: str) -> list[str]:
    return [f.fix for f in section.findings if f.code == code]


def entry(node: dict[str, Any], term: str) -> dict[str, Any]:
    return next(e for e in node["mechanisms"] if e["term"] == term)


# --------------------------------------------------------------------------- parsing (no DNS)


def test_only_v_spf1_records_are_selected() -> None:
    txt = ["v=spf1 -all", "V=SPF1 a -all", "v=spf10 -all", "v=spf1", "spf2.0/pra -all", "google-site-verification=x"]
    assert spf_records(txt) == ["v=spf1 -all", "V=SPF1 a -all", "v=spf1"]


def test_terms_are_parsed_with_qualifiers_targets_and_prefixes() -> None:
    record = parse_spf(
        "v=spf1 a:%{d}/24//64 -mx/30 ~ip4:192.0.2.0/24 ?ip6:2001:db8::/32 include:_spf.example.com "
        "exists:%{ir}.x.example.com ptr -all redirect=other.example.com exp=why.example.com"
    )
    assert record.errors == []
    a, mx, ip4, ip6, inc, exists, ptr, final = record.mechanisms
    assert (a.name, a.qualifier, a.value, a.cidr4, a.cidr6) == ("a", "+", "%{d}", 24, 64)
    assert (mx.qualifier, mx.value, mx.cidr4, mx.cidr6) == ("-", "", 30, None)
    assert (ip4.qualifier, str(ip4.network)) == ("~", "192.0.2.0/24")
    assert (ip6.qualifier, str(ip6.network)) == ("?", "2001:db8::/32")
    assert (inc.value, exists.value, ptr.value, final.qualifier) == ("_spf.example.com", "%{ir}.x.example.com", "", "-")
    assert record.redirect is not None and record.redirect.value == "other.example.com"
    assert record.exp is not None and record.exp.value == "why.example.com"
    assert [t.costs_lookup for t in record.terms] == [True, True, False, False, True, True, True, False, True, False]


@pytest.mark.parametrize(
    "term",
    [
        "ip4:192.0.2.300",
        "ip4:2001:db8::1",
        "ip6:192.0.2.1",
        "ip4:192.0.2.0/33",
        "ip4:192.0.2.0/024",
        "ip4:192.0.2.0/",
        "ip4:192.0.2.0/²",
        "a/²",
        "ip6:2001:db8::/129",
        "a/33",
        "mx//129",
        "a:",
        "include",
        "include:",
        "include:localhost",
        "a:192.0.2.1",
        "exists",
        "exists:%{x}.example.com",
        "exists:%{c}.example.com",
        "exists:%{d0}.example.com",
        "exists:%{d.example.com",
        "exists:50%.example.com",
        "all:example.com",
        "ptr:",
        "inlcude:example.com",
        "+redirect=example.com",
        "redirect=",
        "1.2.3.4",
    ],
)
def test_each_bad_term_is_one_named_error(term: str) -> None:
    record = parse_spf(f"v=spf1 {term} -all")
    assert len(record.errors) == 1
    assert f"'{term}'" in record.errors[0]
    assert [t.text for t in record.terms] == ["-all"]


def test_redirect_and_exp_may_appear_once() -> None:
    record = parse_spf("v=spf1 redirect=a.example.com redirect=b.example.com exp=x.example.com exp=y.example.com")
    assert len(record.errors) == 2
    assert [t.value for t in record.terms] == ["a.example.com", "x.example.com"]


def test_not_an_spf_record() -> None:
    assert parse_spf("spf2.0/pra -all").errors == ["the record does not start with 'v=spf1'"]


def test_unknown_modifiers_are_kept_not_errors() -> None:
    record = parse_spf("v=spf1 -all foo=bar ra=postmaster")
    assert record.errors == []
    assert [t.name for t in record.unknown_modifiers] == ["foo", "ra"]


_TERM_PARTS = st.sampled_from(
    [
        "v=spf1",
        " ",
        "+",
        "-",
        "~",
        "?",
        "a",
        "mx",
        "ip4:",
        "ip6:",
        "include:",
        "exists:",
        "ptr",
        "all",
        "redirect=",
        "exp=",
        "/",
        "//",
        "24",
        "0",
        "129",
        ":",
        ".",
        "example.com",
        "%{",
        "}",
        "%",
        "d",
        "ir",
        "l-",
        "2001:db8::",
        "192.0.2.1",
        "=",
        "é",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TERM_PARTS, max_size=30).map("".join))
def test_parsing_and_expansion_never_raise(text: str) -> None:
    record = parse_spf(text)
    ctx = MacroContext("a@example.com", "example.com", ipaddress.ip_address("192.0.2.1"))
    for term in record.terms:
        if term.name not in ("ip4", "ip6"):
            expand_macros(term.value, ctx)


# RFC 7208 section 7.4: sender strong-bad@email.example.com, IP 192.0.2.3 (and 2001:db8::cb01).
RFC_CTX = MacroContext("strong-bad@email.example.com", "email.example.com", ipaddress.ip_address("192.0.2.3"))


@pytest.mark.parametrize(
    ("macro", "expanded"),
    [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        ("%{S}", "strong-bad%40email.example.com"),
        ("a%%b%_c%-d", "a%b c%20d"),
    ],
)
def test_macro_expansion_matches_rfc_examples(macro: str, expanded: str) -> None:
    assert expand_macros(macro, RFC_CTX) == expanded


def test_ipv6_macro_expansion_and_helo() -> None:
    ctx = MacroContext(
        "strong-bad@email.example.com", "email.example.com", ipaddress.ip_address("2001:db8::cb01"), "mx.example.org"
    )
    assert expand_macros("%{ir}.%{v}._spf.%{d2}", ctx) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )
    assert expand_macros("%{h}", ctx) == "mx.example.org"
    assert expand_macros("%{c} via %{p}", ctx, exp=True) == "2001:db8::cb01 via unknown"


def test_long_expansion_is_cut_from_the_left() -> None:
    long_domain = ("x" * 60 + ".") * 5 + "example.com"  # 316 characters
    expanded = expand_macros("%{o}", MacroContext("a@" + long_domain, "example.com"))
    assert expanded == ("x" * 60 + ".") * 3 + "example.com"


# --------------------------------------------------------------------------- check_spf: the record


def test_good_record(resolver: Resolver) -> None:
    section = check(resolver, "good.spf.test")
    assert section.codes() == ["spf.found", "spf.all-fail", "spf.lookup-count"]
    assert section.records == ["v=spf1 ip4:192.0.2.0/25 include:esp.spf.test -all"]
    assert section.effective_status is SectionStatus.PASS
    assert section.details["lookups"] == 1 and section.details["void_lookups"] == 0
    tree = section.details["tree"]
    include = entry(tree, "include:esp.spf.test")
    assert include["lookups"] == 1
    assert include["child"]["record"] == "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:e5::/48 ~all"
    assert [e["lookups"] for e in tree["mechanisms"]] == [0, 1, 0]


def test_no_record(resolver: Resolver) -> None:
    for domain in ("none.spf.test", "nothing.spf.test"):  # TXT but no v=spf1 (and a v=spf10 decoy); NXDOMAIN
        section = check(resolver, domain, ("203.0.113.9",))
        assert section.codes() == ["spf.missing", "spf.ip-none"]
        assert severity(section, "spf.missing") is Severity.ERROR
        assert section.records == []
        assert '"v=spf1 ip4:203.0.113.9 ~all"' in fixes(section, "spf.missing")[0]


def test_two_records(resolver: Resolver) -> None:
    section = check(resolver, "two.spf.test", ("192.0.2.1",))
    assert section.codes() == ["spf.multiple-records", "spf.ip-permerror"]
    assert sorted(section.records) == ["v=spf1 ip4:192.0.2.1 -all", "v=spf1 ip4:192.0.2.1 include:esp.spf.test ~all"]
    assert "v=spf1 ip4:192.0.2.1 include:esp.spf.test -all" in fixes(section, "spf.multiple-records")[0]


def test_servfail_on_the_domain(resolver: Resolver) -> None:
    section = check(resolver, "spf.servfail.test", ("192.0.2.1",))
    assert section.codes() == ["spf.lookup-failed", "spf.ip-temperror"]
    assert severity(section, "spf.lookup-failed") is Severity.ERROR
    assert section.details["tree"]["status"] == "lookup-failed"


def test_syntax_errors_are_named_and_the_tree_still_read(resolver: Resolver) -> None:
    section = check(resolver, "syntax.spf.test", ("198.51.100.7",))
    errors = messages(section, "spf.syntax-error")
    assert len(errors) == 5
    for term in ("ip4:192.0.2.300", "foo:bar", "ip6:2001:db8::/129", "a/33", "exists"):
        assert any(f"'{term}'" in m for m in errors), term
    assert section.details["tree"]["status"] == "syntax-error"
    assert entry(section.details["tree"], "include:esp.spf.test")["child"]["status"] == "ok"
    assert section.details["lookups"] == 1
    assert section.details["results"][0]["result"] == "permerror"


def test_syntax_error_in_an_include(resolver: Resolver) -> None:
    section = check(resolver, "incsyntax.spf.test")
    errors = messages(section, "spf.syntax-error")
    assert len(errors) == 5 and all("syntax.spf.test" in m for m in errors)
    assert section.details["lookups"] == 2


# --------------------------------------------------------------------------- the final all term


@pytest.mark.parametrize(
    ("domain", "code", "level", "fixed"),
    [
        ("plusall.spf.test", "spf.all-pass", Severity.ERROR, "v=spf1 ip4:192.0.2.1 ~all"),
        ("neutral.spf.test", "spf.all-neutral", Severity.WARNING, "v=spf1 ip4:192.0.2.1 ~all"),
        ("noall.spf.test", "spf.all-missing", Severity.WARNING, "v=spf1 ip4:192.0.2.1 ~all"),
        ("soft.spf.test", "spf.all-softfail", Severity.INFO, "v=spf1 ip4:192.0.2.1 -all"),
    ],
)
def test_all_term(resolver: Resolver, domain: str, code: str, level: Severity, fixed: str) -> None:
    section = check(resolver, domain)
    assert section.codes() == ["spf.found", code, "spf.lookup-count"]
    assert severity(section, code) is level
    assert f'"{fixed}"' in fixes(section, code)[0]


def test_plus_all_in_an_include(resolver: Resolver) -> None:
    section = check(resolver, "incplusall.spf.test", ("203.0.113.9",))
    assert section.codes() == ["spf.found", "spf.all-pass", "spf.all-fail", "spf.lookup-count", "spf.ip-pass"]
    assert "bareall.spf.test" in messages(section, "spf.all-pass")[0]


def test_redirect_takes_the_target_policy(resolver: Resolver) -> None:
    section = check(resolver, "redirect.spf.test")
    assert section.codes() == ["spf.found", "spf.all-fail", "spf.lookup-count"]
    assert "target.spf.test" in messages(section, "spf.all-fail")[0]
    redirect = entry(section.details["tree"], "redirect=target.spf.test")
    assert redirect["lookups"] == 1 and redirect["child"]["via"] == "redirect"


def test_redirect_to_nowhere(resolver: Resolver) -> None:
    section = check(resolver, "redirectnx.spf.test", ("203.0.113.9", "192.0.2.1"))
    assert section.codes() == ["spf.found", "spf.redirect-missing", "spf.lookup-count", "spf.ip-permerror", "spf.ip-pass"]


def test_redirect_next_to_all_is_ignored(resolver: Resolver) -> None:
    section = check(resolver, "redirectall.spf.test", ("203.0.113.5",))
    assert section.codes() == ["spf.found", "spf.redirect-ignored", "spf.all-fail", "spf.lookup-count", "spf.ip-fail"]
    assert severity(section, "spf.redirect-ignored") is Severity.WARNING
    assert section.details["lookups"] == 0
    assert entry(section.details["tree"], "redirect=target.spf.test")["ignored"] is True


# --------------------------------------------------------------------------- the tree: includes, limits


def test_eleven_lookups_through_nested_includes(resolver: Resolver) -> None:
    section = check(resolver, "toomany.spf.test", ("192.0.2.5", "198.51.100.70"))
    assert section.codes() == ["spf.found", "spf.all-fail", "spf.too-many-lookups", "spf.ip-pass", "spf.ip-permerror"]
    assert severity(section, "spf.too-many-lookups") is Severity.ERROR
    assert section.details["lookups"] == 11 and section.details["lookup_limit"] == 10
    tree = section.details["tree"]
    l1 = entry(tree, "include:l1.toomany.spf.test")
    l2 = entry(tree, "include:l2.toomany.spf.test")
    assert (l1["lookups"], l2["lookups"]) == (7, 4)
    assert [e["lookups"] for e in l1["child"]["mechanisms"]] == [1, 1, 4, 0]
    assert entry(l1["child"], "mx")["mx_names"] == 1
    assert "include:l1.toomany.spf.test (7)" in messages(section, "spf.too-many-lookups")[0]
    passed, failed = section.details["results"]
    assert (passed["result"], passed["lookups"]) == ("pass", 0)
    assert (failed["result"], failed["lookups"]) == ("permerror", 11)
    assert "exists:hosts.toomany.spf.test" in failed["reason"]


def test_exactly_ten_lookups_is_allowed(resolver: Resolver) -> None:
    section = check(resolver, "ten.spf.test", ("203.0.113.77",))
    assert section.codes() == ["spf.found", "spf.all-fail", "spf.lookups-near-limit", "spf.ip-pass"]
    assert severity(section, "spf.lookups-near-limit") is Severity.WARNING
    assert section.details["lookups"] == 10
    assert section.details["results"][0]["lookups"] == 10


def test_three_void_lookups(resolver: Resolver) -> None:
    section = check(resolver, "void.spf.test", ("192.0.2.1",))
    assert section.codes() == ["spf.found", "spf.all-fail", "spf.lookup-count", "spf.too-many-void-lookups", "spf.ip-permerror"]
    assert section.details["void_lookups"] == 3
    tree = section.details["tree"]
    assert [e["void"] for e in tree["mechanisms"]] == [True, True, True, False, False]
    assert [e.get("dns") for e in tree["mechanisms"][:3]] == ["nxdomain", "nodata", "nxdomain"]
    result = section.details["results"][0]
    assert (result["result"], result["void_lookups"]) == ("permerror", 3)


def test_one_void_lookup_is_a_warning(resolver: Resolver) -> None:
    section = check(resolver, "onevoid.spf.test", ("192.0.2.1",))
    assert section.codes() == ["spf.found", "spf.all-fail", "spf.lookup-count", "spf.void-lookup", "spf.ip-pass"]
    assert "a:gone1.spf.test" in messages(section, "spf.void-lookup")[0]


def test_include_loop(resolver: Resolver) -> None:
    section = check(resolver, "loop.spf.test", ("192.0.2.1",))
    assert section.codes() == ["spf.found", "spf.include-loop", "spf.all-fail", "spf.lookup-count", "spf.ip-permerror"]
    inner = entry(entry(section.details["tree"], "include:loop2.spf.test")["child"], "include:loop.spf.test")
    assert inner["child"]["status"] == "loop"


def test_include_of_missing_records(resolver: Resolver) -> None:
    section = check(resolver, "incmissing.spf.test", ("192.0.2.1",))
    assert section.codes() == [
        "spf.found",
        "spf.include-missing",
        "spf.include-missing",
        "spf.all-fail",
        "spf.lookup-count",
        "spf.ip-permerror",
    ]
    assert [e.get("child", {}).get("status") for e in section.details["tree"]["mechanisms"]] == ["no-record", "no-record", None]


def test_include_with_two_records(resolver: Resolver) -> None:
    section = check(resolver, "incmulti.spf.test")
    assert section.codes() == ["spf.found", "spf.multiple-records", "spf.all-fail", "spf.lookup-count"]
    assert "two.spf.test" in messages(section, "spf.multiple-records")[0]


def test_servfail_include(resolver: Resolver) -> None:
    section = check(resolver, "incservfail.spf.test", ("203.0.113.9", "192.0.2.1"))
    assert section.codes() == [
        "spf.found",
        "spf.include-lookup-failed",
        "spf.all-fail",
        "spf.lookup-count",
        "spf.ip-temperror",
        "spf.ip-pass",
    ]
    assert entry(section.details["tree"], "include:spf.servfail.test")["child"]["status"] == "lookup-failed"


def test_servfail_a_target(resolver: Resolver) -> None:
    section = check(resolver, "targetfail.spf.test", ("203.0.113.9",))
    assert section.codes() == ["spf.found", "spf.target-lookup-failed", "spf.all-fail", "spf.lookup-count", "spf.ip-temperror"]
    assert entry(section.details["tree"], "a:host.servfail.test")["dns"] == "servfail"


def test_mx_with_eleven_names(resolver: Resolver) -> None:
    section = check(resolver, "mxmany.spf.test", ("192.0.2.1",))
    assert section.codes() == ["spf.found", "spf.mx-too-many-names", "spf.all-fail", "spf.lookup-count", "spf.ip-permerror"]
    assert entry(section.details["tree"], "mx")["mx_names"] == 11


def test_ptr_is_flagged(resolver: Resolver) -> None:
    section = check(resolver, "ptr.spf.test", ("203.0.113.231", "203.0.113.232"))
    assert section.codes() == ["spf.found", "spf.ptr-used", "spf.all-fail", "spf.lookup-count", "spf.ip-pass", "spf.ip-fail"]
    assert severity(section, "spf.ptr-used") is Severity.WARNING


def test_macro_targets_are_counted_not_followed(resolver: Resolver) -> None:
    section = check(resolver, "macros.spf.test")
    assert section.codes() == ["spf.found", "spf.all-fail", "spf.lookup-count"]
    assert section.details["lookups"] == 2
    assert [e.get("dynamic") for e in section.details["tree"]["mechanisms"]] == [True, True, None]


def test_unknown_modifier(resolver: Resolver) -> None:
    section = check(resolver, "unkmod.spf.test")
    assert section.codes() == ["spf.found", "spf.unknown-modifier", "spf.all-fail", "spf.lookup-count"]
    assert "redirekt=esp.spf.test" in messages(section, "spf.unknown-modifier")[0]


def test_results_for_each_ip(resolver: Resolver) -> None:
    section = check(resolver, "good.spf.test", ("192.0.2.10", "198.51.100.7", "192.0.2.200", "2001:db8:e5::1", "nonsense"))
    assert section.codes() == [
        "spf.found",
        "spf.all-fail",
        "spf.lookup-count",
        "spf.ip-pass",
        "spf.ip-pass",
        "spf.ip-fail",
        "spf.ip-pass",
        "spf.ip-invalid",
    ]
    assert [r["result"] for r in section.details["results"]] == ["pass", "pass", "fail", "pass"]
    assert '"v=spf1 ip4:192.0.2.200 ip4:192.0.2.0/25 include:esp.spf.test -all"' in fixes(section, "spf.ip-fail")[0]
    assert severity(section, "spf.ip-invalid") is Severity.INFO


@pytest.mark.parametrize(
    ("domain", "code"),
    [("soft.spf.test", "spf.ip-softfail"), ("neutral.spf.test", "spf.ip-neutral"), ("noall.spf.test", "spf.ip-neutral")],
)
def test_not_authorised_results_are_errors(resolver: Resolver, domain: str, code: str) -> None:
    section = check(resolver, domain, ("203.0.113.9",))
    assert section.codes()[-1] == code
    assert severity(section, code) is Severity.ERROR
    assert '"v=spf1 ip4:203.0.113.9 ip4:192.0.2.1' in fixes(section, code)[0]


# --------------------------------------------------------------------------- evaluate_spf: check_host()


def test_evaluate_ip4_include_and_path(resolver: Resolver) -> None:
    result = evaluate(resolver, "good.spf.test", "198.51.100.7")
    assert result.result is SpfVerdict.PASS
    assert result.mechanism == "include:esp.spf.test"
    assert result.path == ("good.spf.test: include:esp.spf.test", "esp.spf.test: ip4:198.51.100.0/24")
    assert (result.lookups, result.sender) == (1, "postmaster@good.spf.test")
    assert evaluate(resolver, "good.spf.test", "192.0.2.127").result is SpfVerdict.PASS
    assert evaluate(resolver, "good.spf.test", "192.0.2.128").result is SpfVerdict.FAIL


@pytest.mark.parametrize(
    ("domain", "ip", "verdict"),
    [
        ("esp.spf.test", "203.0.113.9", SpfVerdict.SOFTFAIL),
        ("neutral.spf.test", "203.0.113.9", SpfVerdict.NEUTRAL),
        ("noall.spf.test", "203.0.113.9", SpfVerdict.NEUTRAL),
        ("plusall.spf.test", "203.0.113.9", SpfVerdict.PASS),
        ("none.spf.test", "203.0.113.9", SpfVerdict.NONE),
        ("nothing.spf.test", "203.0.113.9", SpfVerdict.NONE),
        ("localhost", "203.0.113.9", SpfVerdict.NONE),
        ("two.spf.test", "192.0.2.1", SpfVerdict.PERMERROR),
        ("syntax.spf.test", "198.51.100.7", SpfVerdict.PERMERROR),
        ("spf.servfail.test", "192.0.2.1", SpfVerdict.TEMPERROR),
        ("incservfail.spf.test", "192.0.2.1", SpfVerdict.PASS),
        ("incservfail.spf.test", "203.0.113.9", SpfVerdict.TEMPERROR),
        ("targetfail.spf.test", "203.0.113.9", SpfVerdict.TEMPERROR),
        ("incmissing.spf.test", "192.0.2.1", SpfVerdict.PERMERROR),
        ("incmulti.spf.test", "192.0.2.1", SpfVerdict.PERMERROR),
        ("loop.spf.test", "192.0.2.1", SpfVerdict.PERMERROR),
        ("void.spf.test", "192.0.2.1", SpfVerdict.PERMERROR),
        ("onevoid.spf.test", "203.0.113.9", SpfVerdict.FAIL),
        ("mxmany.spf.test", "192.0.2.1", SpfVerdict.PERMERROR),
        ("redirect.spf.test", "203.0.113.5", SpfVerdict.PASS),
        ("redirect.spf.test", "192.0.2.1", SpfVerdict.FAIL),
        ("redirectnx.spf.test", "192.0.2.1", SpfVerdict.PASS),
        ("redirectnx.spf.test", "203.0.113.9", SpfVerdict.PERMERROR),
        ("redirectall.spf.test", "203.0.113.5", SpfVerdict.FAIL),
        ("incplusall.spf.test", "203.0.113.9", SpfVerdict.PASS),
        ("toomany.spf.test", "192.0.2.5", SpfVerdict.PASS),
        ("toomany.spf.test", "192.0.2.50", SpfVerdict.PASS),
        ("toomany.spf.test", "198.51.100.70", SpfVerdict.PERMERROR),
        ("ten.spf.test", "203.0.113.77", SpfVerdict.PASS),
        ("ten.spf.test", "203.0.113.78", SpfVerdict.FAIL),
    ],
)
def test_evaluate_results(resolver: Resolver, domain: str, ip: str, verdict: SpfVerdict) -> None:
    assert evaluate(resolver, domain, ip).result is verdict


def test_evaluate_ip6_and_mapped_ip4(resolver: Resolver) -> None:
    assert evaluate(resolver, "ip6.spf.test", "2001:db8:5f::1").result is SpfVerdict.PASS
    assert evaluate(resolver, "ip6.spf.test", "2001:db8:5f:ffff::1").result is SpfVerdict.PASS
    assert evaluate(resolver, "ip6.spf.test", "2001:db8:60::1").result is SpfVerdict.FAIL
    mapped = evaluate(resolver, "ip6.spf.test", "::ffff:192.0.2.9")
    assert (mapped.result, mapped.ip, mapped.mechanism) == (SpfVerdict.PASS, "192.0.2.9", "ip4:192.0.2.0/24")
    assert evaluate(resolver, "esp.spf.test", "2001:db8:e5:1::25").result is SpfVerdict.PASS


@pytest.mark.parametrize(
    ("ip", "verdict", "mechanism"),
    [
        ("192.0.2.130", SpfVerdict.PASS, "a:hosts.cidr.spf.test/28//64"),
        ("192.0.2.143", SpfVerdict.PASS, "a:hosts.cidr.spf.test/28//64"),
        ("192.0.2.144", SpfVerdict.FAIL, "-all"),
        ("2001:db8:c1d::ffff", SpfVerdict.PASS, "a:hosts.cidr.spf.test/28//64"),
        ("2001:db8:c1d:1::1", SpfVerdict.FAIL, "-all"),
        ("198.51.100.99", SpfVerdict.PASS, "mx/24"),
        ("198.51.101.10", SpfVerdict.FAIL, "-all"),
        ("2001:db8:c1e::10", SpfVerdict.PASS, "mx/24"),
        ("2001:db8:c1e::11", SpfVerdict.FAIL, "-all"),
    ],
)
def test_evaluate_a_and_mx_with_dual_cidr(resolver: Resolver, ip: str, verdict: SpfVerdict, mechanism: str) -> None:
    result = evaluate(resolver, "cidr.spf.test", ip)
    assert (result.result, result.mechanism) == (verdict, mechanism)


def test_evaluate_ptr(resolver: Resolver) -> None:
    assert evaluate(resolver, "ptr.spf.test", "203.0.113.231").result is SpfVerdict.PASS
    assert evaluate(resolver, "ptr.spf.test", "203.0.113.232").result is SpfVerdict.FAIL  # name does not point back
    assert evaluate(resolver, "ptr.spf.test", "203.0.113.233").result is SpfVerdict.FAIL  # no PTR at all


def test_evaluate_macros_with_exists(resolver: Resolver) -> None:
    by_ip = evaluate(resolver, "macros.spf.test", "203.0.113.5", "nobody@macros.spf.test")
    assert (by_ip.result, by_ip.mechanism) == (SpfVerdict.PASS, "exists:%{ir}.%{v}._ip.%{d}")
    by_user = evaluate(resolver, "macros.spf.test", "203.0.113.9", "alice@macros.spf.test")
    assert (by_user.result, by_user.mechanism, by_user.void_lookups) == (SpfVerdict.PASS, "exists:%{l}._user.%{d}", 1)
    other = evaluate(resolver, "macros.spf.test", "203.0.113.9", "bob@macros.spf.test")
    assert (other.result, other.void_lookups, other.lookups) == (SpfVerdict.FAIL, 2, 2)
    assert evaluate(resolver, "helo.spf.test", "203.0.113.9", helo="out.sender.test").result is SpfVerdict.PASS
    assert evaluate(resolver, "helo.spf.test", "203.0.113.9").result is SpfVerdict.FAIL


def test_evaluate_sender_defaults() -> None:
    async def senders() -> list[str]:
        quiet = Resolver(["127.0.0.1:9"], timeout=0.2, retries=0)
        results = [
            await evaluate_spf(quiet, "localhost", "192.0.2.1", s) for s in (None, "example.org", "@example.org", "a@b.example")
        ]
        return [r.sender for r in results]

    assert asyncio.run(senders()) == ["postmaster@localhost", "postmaster@example.org", "postmaster@example.org", "a@b.example"]


def test_evaluate_explanation_on_fail(resolver: Resolver) -> None:
    failed = evaluate(resolver, "explain.spf.test", "203.0.113.9")
    assert failed.result is SpfVerdict.FAIL
    assert failed.explanation == "203.0.113.9 is not one of explain.spf.test's designated mail servers."
    assert evaluate(resolver, "explain.spf.test", "192.0.2.1").explanation == ""


def test_evaluate_rejects_a_non_ip(resolver: Resolver) -> None:
    with pytest.raises(ValueError):
        evaluate(resolver, "good.spf.test", "mail.example.com")


def test_lookups_run_concurrently_and_are_cached(resolver: Resolver) -> None:
    check(resolver, "toomany.spf.test")
    first = resolver.queries
    check(resolver, "toomany.spf.test")
    assert resolver.queries == first  # the second run is answered from the cache
