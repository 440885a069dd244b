"""The DKIM check against the loopback DNS server (tests/zones/dkim.zone): every finding, pass and fail."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import pytest

from coldrelay.dns import Resolver, Section, SectionStatus, Severity
from coldrelay.dns.dkim import COMMON_SELECTORS, check_dkim, parse_tag_list


def dkim(resolver: Resolver, domain: str, selectors: Sequence[str] = ()) -> Section:
    return asyncio.run(check_dkim(resolver, domain, selectors))


def severities(section: Section, code: str) -> list[Severity]:
    return [f.severity for f in section.findings if f.code == code]


def key(section: Section, selector: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [k for k in section.details["keys"] if k["selector"] == selector]
    (found,) = matches
    return found


def test_good_domain_finds_every_key_by_probing(resolver: Resolver) -> None:
    section = dkim(resolver, "good.dkim.test")
    assert section.details["probed"] is True
    assert section.details["selectors_tried"] == list(COMMON_SELECTORS)
    assert section.codes() == ["dkim.revoked", "dkim.cname-delegated", "dkim.key-found", "dkim.key-found", "dkim.key-found"]
    assert severities(section, "dkim.revoked") == [Severity.INFO]  # a retired selector next to working keys
    assert section.effective_status is SectionStatus.PASS
    assert (key(section, "google")["key_type"], key(section, "google")["bits"]) == ("rsa", 2048)
    assert (key(section, "s1")["key_type"], key(section, "s1")["bits"], key(section, "s1")["usable"]) == ("ed25519", None, True)
    delegated = key(section, "selector1")
    assert delegated["cname"] == "selector1-good._domainkey.provider.dkim.test"
    assert (delegated["bits"], delegated["usable"]) == (2048, True)
    assert key(section, "default")["revoked"] is True
    assert len(section.records) == 4 and all(r.startswith("v=DKIM1") for r in section.records)
    assert json.loads(json.dumps(section.to_dict()))["status"] == "pass"


def test_probing_asks_every_selector_at_once(resolver: Resolver) -> None:
    started = time.monotonic()
    dkim(resolver, "good.dkim.test")
    assert resolver.queries == 2 * len(COMMON_SELECTORS)  # one TXT and one CNAME question per selector
    assert time.monotonic() - started < 1.0


def test_rsa_1024_is_a_warning(resolver: Resolver) -> None:
    section = dkim(resolver, "weak.dkim.test")
    assert section.codes() == ["dkim.key-found", "dkim.rsa-short"]
    assert severities(section, "dkim.rsa-short") == [Severity.WARNING]
    assert key(section, "default")["bits"] == 1024
    assert section.effective_status is SectionStatus.WARN


def test_rsa_below_1024_is_an_error(resolver: Resolver) -> None:
    section = dkim(resolver, "tiny.dkim.test")
    assert section.codes() == ["dkim.rsa-too-short"]
    assert severities(section, "dkim.rsa-too-short") == [Severity.ERROR]
    assert (key(section, "default")["bits"], key(section, "default")["usable"]) == (512, False)


def test_testing_flag_is_a_warning(resolver: Resolver) -> None:
    section = dkim(resolver, "testing.dkim.test")
    assert section.codes() == ["dkim.key-found", "dkim.testing"]
    assert severities(section, "dkim.testing") == [Severity.WARNING]
    assert key(section, "k1")["flags"] == ["y", "s"]


def test_the_only_key_revoked_is_an_error(resolver: Resolver) -> None:
    section = dkim(resolver, "revoked.dkim.test")
    assert section.codes() == ["dkim.revoked"]
    assert severities(section, "dkim.revoked") == [Severity.ERROR]
    assert key(section, "mail")["revoked"] is True


def test_a_revoked_selector_the_user_names_is_an_error(resolver: Resolver) -> None:
    section = dkim(resolver, "good.dkim.test", ["default", "google"])
    assert section.codes() == ["dkim.revoked", "dkim.key-found"]
    assert severities(section, "dkim.revoked") == [Severity.ERROR]


def test_ed25519_only_is_a_warning(resolver: Resolver) -> None:
    section = dkim(resolver, "ed.dkim.test")
    assert section.codes() == ["dkim.key-found", "dkim.ed25519-only"]
    assert severities(section, "dkim.ed25519-only") == [Severity.WARNING]


def test_no_key_at_any_common_selector_names_the_selectors_tried(resolver: Resolver) -> None:
    section = dkim(resolver, "none.dkim.test")
    assert section.codes() == ["dkim.no-key-found"]
    (finding,) = section.findings
    assert finding.severity is Severity.ERROR
    assert all(sel in finding.message for sel in COMMON_SELECTORS)
    assert "default._domainkey.none.dkim.test" in finding.fix
    assert section.details["keys"] == []


def test_a_non_dkim_txt_at_a_probed_selector_is_ignored(resolver: Resolver) -> None:
    section = dkim(resolver, "spf.dkim.test")
    assert section.codes() == ["dkim.no-key-found"]
    assert section.details["ignored_selectors"] == ["default"]
    assert section.records == []


def test_a_non_dkim_txt_at_a_named_selector_is_a_syntax_error(resolver: Resolver) -> None:
    section = dkim(resolver, "spf.dkim.test", ["default"])
    assert section.codes() == ["dkim.syntax-error"]
    assert section.records == ["v=spf1 -all"]


@pytest.mark.parametrize(
    ("selector", "codes", "problem"),
    [
        ("noequals", ["dkim.syntax-error"], "'garbage' is not a tag=value pair"),
        ("dup", ["dkim.syntax-error"], "tag 'p' appears more than once"),
        ("vlate", ["dkim.syntax-error"], "v= must be the first tag"),
        ("vbad", ["dkim.syntax-error"], "v=DKIM2 is not DKIM1"),
        ("nop", ["dkim.syntax-error"], "no p= tag"),
        ("badb64", ["dkim.invalid-key"], "the p= value is not valid base64"),
        ("notkey", ["dkim.invalid-key"], "the p= value does not decode to an RSA public key"),
        ("edwrong", ["dkim.invalid-key"], "an Ed25519 key must be the raw 32-byte public key, this one is 162 bytes"),
        ("rsawrong", ["dkim.invalid-key"], "the p= value does not decode to an RSA public key"),
        ("ktype", ["dkim.unknown-key-type"], "unknown key type k=dsa"),
        ("two", ["dkim.multiple-records"], "several TXT records"),
    ],
)
def test_broken_records(resolver: Resolver, selector: str, codes: list[str], problem: str) -> None:
    section = dkim(resolver, "syntax.dkim.test", [selector])
    assert section.codes() == codes
    assert all(f.severity is Severity.ERROR and f.fix for f in section.findings)
    found = key(section, selector)
    assert found["problems"] == [problem]
    assert found["usable"] is False


def test_sha1_only_hash_is_an_error_but_sha1_with_sha256_is_fine(resolver: Resolver) -> None:
    section = dkim(resolver, "syntax.dkim.test", ["sha1", "hboth"])
    assert section.codes() == ["dkim.no-sha256", "dkim.key-found"]
    assert key(section, "sha1")["hash_algorithms"] == ["sha1"] and key(section, "sha1")["usable"] is False
    assert key(section, "hboth")["hash_algorithms"] == ["sha1", "sha256"]
    assert key(section, "hboth")["services"] == ["email", "tlsrpt"]


def test_a_key_not_for_email_is_an_error(resolver: Resolver) -> None:
    section = dkim(resolver, "syntax.dkim.test", ["service"])
    assert section.codes() == ["dkim.not-for-email"]
    assert key(section, "service")["services"] == ["tlsrpt"]


def test_whitespace_inside_the_key_and_no_version_tag_are_accepted(resolver: Resolver) -> None:
    section = dkim(resolver, "syntax.dkim.test", ["spaced"])
    assert section.codes() == ["dkim.key-found"]
    assert (key(section, "spaced")["key_type"], key(section, "spaced")["bits"]) == ("rsa", 2048)


def test_a_cname_to_nowhere_is_an_error(resolver: Resolver) -> None:
    section = dkim(resolver, "syntax.dkim.test", ["dangling"])
    assert section.codes() == ["dkim.cname-dangling"]
    assert section.details["dangling"] == [
        {"selector": "dangling", "name": "dangling._domainkey.syntax.dkim.test", "target": "gone._domainkey.provider.dkim.test"}
    ]


def test_a_named_selector_without_a_key_is_an_error(resolver: Resolver) -> None:
    section = dkim(resolver, "syntax.dkim.test", ["missing"])
    assert section.codes() == ["dkim.selector-missing"]
    assert section.details["missing_selectors"] == ["missing"]
    assert section.details["probed"] is False
    assert "missing._domainkey.syntax.dkim.test" in section.findings[0].fix


def test_user_selectors_are_normalised_and_invalid_ones_reported(resolver: Resolver) -> None:
    section = dkim(resolver, "good.dkim.test", ["Google._domainkey.", "google", "bad selector!"])
    assert section.codes() == ["dkim.invalid-selector", "dkim.key-found"]
    assert section.details["selectors_tried"] == ["google"]
    assert resolver.queries == 2


def test_lookup_failure_is_a_finding_not_an_exception(resolver: Resolver) -> None:
    section = dkim(resolver, "x.servfail.test")
    assert section.codes() == ["dkim.lookup-failed"]
    assert severities(section, "dkim.lookup-failed") == [Severity.ERROR]
    assert section.details["failed_selectors"] == list(COMMON_SELECTORS)


def test_lookup_failure_for_named_selectors(resolver: Resolver) -> None:
    section = dkim(resolver, "x.servfail.test", ["s1", "s2"])
    assert section.codes() == ["dkim.lookup-failed"]
    assert section.details["failed_selectors"] == ["s1", "s2"]


def test_tag_list_parser() -> None:
    parsed = parse_tag_list(" v = DKIM1 ;k=rsa; p=ab cd ;")
    assert parsed.ok and parsed.tags == {"v": "DKIM1", "k": "rsa", "p": "ab cd"} and parsed.names == ("v", "k", "p")
    assert parse_tag_list("v=DKIM1; 1x=2").errors == ("'1x' is not a valid tag name",)
    assert parse_tag_list("P=a; p=b", fold_case=True).errors == ("tag 'p' appears more than once",)
    assert parse_tag_list("P=a; p=b").ok  # DKIM tag names are case-sensitive
