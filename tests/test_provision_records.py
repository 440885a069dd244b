"""The record plan of a hosted domain, and its zone-file, JSON and CSV forms read back by real parsers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

from coldrelay.config import Settings, load_settings
from coldrelay.db import DkimAlgorithm, DkimKey, Domain, generate_dkim_key
from coldrelay.dns.mtasts import parse_policy, parse_sts_record
from coldrelay.dns.spf import parse_spf
from coldrelay.dns.tlsrpt import parse_tlsrpt_record
from coldrelay.provision.records import (
    InvalidIp,
    RecordPlan,
    ed25519_selector,
    mta_sts_policy,
    mta_sts_policy_id,
    normalize_ips,
    plan_for,
)
from coldrelay.provision.render import render, to_bind

DOMAIN = "alpha.provision.test"


def hosted(ips: list[str], *, ed25519: bool = False, retired: bool = False) -> Domain:
    """A Domain row as create_domain makes it, without a database (the plan reads attributes only)."""
    domain = Domain(name=DOMAIN, ips=ips)
    keys = [("s1", DkimAlgorithm.RSA, True)]
    if ed25519:
        keys.append((ed25519_selector("s1"), DkimAlgorithm.ED25519, True))
    if retired:
        keys.append(("old", DkimAlgorithm.RSA, False))
    for selector, algorithm, active in keys:
        private, public = generate_dkim_key(algorithm)
        domain.dkim_keys.append(
            DkimKey(selector=selector, algorithm=algorithm, private_key_pem=private, public_key_b64=public, active=active)
        )
    return domain


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path)


@pytest.fixture
def plan(settings: Settings) -> RecordPlan:
    return plan_for(hosted(["192.0.2.10", "2001:DB8:0::10", "192.0.2.11"], ed25519=True, retired=True), settings)


def test_plan_has_every_record_with_exact_values(plan: RecordPlan) -> None:
    box = f"box.{DOMAIN}"
    assert plan.mail_host == box
    assert [r.value for r in plan.find("MX", DOMAIN)] == [f"10 {box}"]
    assert [r.value for r in plan.find("A", box)] == ["192.0.2.10", "192.0.2.11"]
    assert [r.value for r in plan.find("AAAA", box)] == ["2001:db8::10"]  # canonical form
    [spf] = plan.find("TXT", DOMAIN)
    assert spf.value == "v=spf1 ip4:192.0.2.10 ip4:192.0.2.11 ip6:2001:db8::10 -all"
    assert not parse_spf(spf.value).errors
    [rsa] = plan.find("TXT", f"s1._domainkey.{DOMAIN}")
    assert rsa.value.startswith("v=DKIM1; k=rsa; p=MIIB") and len(rsa.value) > 255
    [ed] = plan.find("TXT", f"ed-s1._domainkey.{DOMAIN}")
    assert ed.value.startswith("v=DKIM1; k=ed25519; p=")
    assert not plan.find("TXT", f"old._domainkey.{DOMAIN}")  # inactive keys are not published
    [dmarc] = plan.find("TXT", f"_dmarc.{DOMAIN}")
    assert dmarc.value == f"v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}; adkim=r; aspf=r"
    assert any("p=quarantine" in note and "clean week" in note for note in plan.notes)
    [sts] = plan.find("TXT", f"_mta-sts.{DOMAIN}")
    assert parse_sts_record(sts.value).policy_id == mta_sts_policy_id(plan.mta_sts_policy)
    assert [r.value for r in plan.find("CNAME", f"mta-sts.{DOMAIN}")] == [box]
    [tlsrpt] = plan.find("TXT", f"_smtp._tls.{DOMAIN}")
    assert parse_tlsrpt_record(tlsrpt.value).rua == (f"mailto:tlsrpt@{DOMAIN}",)
    assert (plan.ptr_records[0].ip, plan.ptr_records[0].value, plan.ptr_records[0].name) == (
        "192.0.2.10",
        box,
        "10.2.0.192.in-addr.arpa",
    )
    assert len(plan.ptr_records) == 3
    required = {(r.rtype, r.name) for r in plan.records if r.required}
    assert (("TXT", f"_mta-sts.{DOMAIN}")) not in required and ("TXT", f"_dmarc.{DOMAIN}") in required


def test_policy_is_valid_and_its_id_follows_the_content() -> None:
    policy = parse_policy(mta_sts_policy(DOMAIN))
    assert (policy.version, policy.mode, policy.mx, policy.max_age, policy.bad_lines) == (
        "STSv1",
        "testing",
        (f"box.{DOMAIN}",),
        86400,
        (),
    )
    assert mta_sts_policy_id(mta_sts_policy(DOMAIN)) == mta_sts_policy_id(mta_sts_policy(DOMAIN))
    assert mta_sts_policy_id(mta_sts_policy(DOMAIN)) != mta_sts_policy_id(mta_sts_policy("beta.provision.test"))
    assert parse_sts_record(f"v=STSv1; id={mta_sts_policy_id(mta_sts_policy(DOMAIN))}").problems == ()


def test_without_ips_spf_falls_back_to_mx_and_the_plan_says_why(settings: Settings) -> None:
    plan = plan_for(hosted([]), settings)
    assert [r.value for r in plan.find("TXT", DOMAIN)] == ["v=spf1 mx -all"]
    assert not plan.find("A", f"box.{DOMAIN}") and not plan.ptr_records
    assert f"coldrelay domain ips {DOMAIN} --ip" in plan.notes[0]


@pytest.mark.parametrize("bad", ["192.0.2.300", "box.example.com", "", "2001:db8::g"])
def test_bad_ips_are_refused_by_name(bad: str) -> None:
    with pytest.raises(InvalidIp, match="is not an IPv4 or IPv6 address"):
        normalize_ips(["192.0.2.1", bad])


def test_ips_are_canonical_and_deduplicated() -> None:
    assert normalize_ips([" 192.0.2.1", "2001:DB8::1", "192.0.2.1", "2001:db8:0:0::1"]) == ["192.0.2.1", "2001:db8::1"]


def _zone_records(zone: dns.zone.Zone) -> set[tuple[str, str, str]]:
    """(absolute name, type, value) with TXT strings joined, as resolvers read them."""
    found = set()
    assert zone.origin is not None
    for name, ttl, rdata in zone.iterate_rdatas():
        assert ttl == 3600
        owner = name.derelativize(zone.origin).to_text(omit_final_dot=True)
        rtype = dns.rdatatype.to_text(rdata.rdtype)
        if rtype == "TXT":
            strings: tuple[bytes, ...] = rdata.strings  # type: ignore[attr-defined]
            value = b"".join(strings).decode()
            assert all(len(s) <= 255 for s in strings)
        elif rtype in ("MX", "CNAME"):
            value = rdata.to_text(origin=zone.origin, relativize=False).rstrip(".")
        else:
            value = rdata.to_text()
        found.add((owner, rtype, value))
    return found


def test_bind_output_parses_back_to_every_planned_record(plan: RecordPlan) -> None:
    text = to_bind(plan)
    zone = dns.zone.from_text(text, origin=DOMAIN, check_origin=False)
    assert _zone_records(zone) == {(r.name, r.rtype, r.value) for r in plan.records}
    # The DKIM key needed two strings; PTRs are advice in comments, never records of this zone.
    assert '" "' in text.split("s1._domainkey", 1)[1].split("\n", 1)[0]
    assert f";   10.2.0.192.in-addr.arpa. IN PTR box.{DOMAIN}." in text


def test_bind_output_escapes_quotes(settings: Settings) -> None:
    plan = plan_for(hosted(["192.0.2.10"]), settings)
    tricky = plan.records[0].__class__(f"x.{DOMAIN}", "TXT", 'say "hi" \\ bye', 3600, "test", False)
    odd = RecordPlan(plan.domain, plan.mail_host, (tricky,), (), plan.mta_sts_policy)
    zone = dns.zone.from_text(to_bind(odd), origin=DOMAIN, check_origin=False)
    assert _zone_records(zone) == {(f"x.{DOMAIN}", "TXT", 'say "hi" \\ bye')}


def test_json_and_csv_carry_the_same_records(plan: RecordPlan) -> None:
    data = json.loads(render(plan, "json"))
    assert [(r["name"], r["type"], r["value"], r["required"]) for r in data["records"]] == [
        (r.name, r.rtype, r.value, r.required) for r in plan.records
    ]
    assert data["mta_sts_policy"] == plan.mta_sts_policy
    assert [p["ip"] for p in data["ptr"]] == ["192.0.2.10", "2001:db8::10", "192.0.2.11"]  # stored order
    rows = list(csv.DictReader(io.StringIO(render(plan, "csv"))))
    assert [(r["fqdn"], r["type"], r["value"]) for r in rows[: len(plan.records)]] == [
        (r.name, r.rtype, r.value) for r in plan.records
    ]
    assert rows[0]["name"] == "@" and rows[1]["name"] == "box"
    assert [r["type"] for r in rows[len(plan.records) :]] == ["PTR"] * 3
    with pytest.raises(ValueError, match="unknown format"):
        render(plan, "yaml")
