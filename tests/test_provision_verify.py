"""verify_plan and ``coldrelay domain verify`` against the loopback DNS server serving zones made from the plan.

Each test writes its zone files into tmp_path (complete, partial or wrong on purpose) and starts a
LoopbackDNS on them; no question leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldrelay.cli.main import app
from coldrelay.config import load_settings
from coldrelay.db import DkimAlgorithm, DkimKey, Domain, generate_dkim_key
from coldrelay.dns import LookupStatus, Resolver
from coldrelay.provision.records import DnsRecord, RecordPlan, plan_for
from coldrelay.provision.render import to_bind
from coldrelay.provision.verify import CheckStatus, RecordCheck, all_required_present, verify_plan
from dns_server import FailingResolver, LoopbackDNS

DOMAIN = "alpha.provision.test"
BOX = f"box.{DOMAIN}"
IPS = ["192.0.2.10", "2001:db8::10"]


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> RecordPlan:
    domain = Domain(name=DOMAIN, ips=IPS)
    for selector, algorithm in (("s1", DkimAlgorithm.RSA), ("ed-s1", DkimAlgorithm.ED25519)):
        private, public = generate_dkim_key(algorithm)
        domain.dkim_keys.append(DkimKey(selector=selector, algorithm=algorithm, private_key_pem=private, public_key_b64=public))
        domain.dkim_keys[-1].active = True
    return plan_for(domain, load_settings(tmp_path_factory.mktemp("settings")))


def reverse_zone(names: dict[str, str]) -> str:
    """PTR lines for the reverse zones (what the IP's provider would publish)."""
    from coldrelay.dns.resolver import reverse_name

    return "".join(f"{reverse_name(ip)}. 3600 IN PTR {name}.\n" for ip, name in names.items())


Edit = Callable[[DnsRecord], DnsRecord | None]


def served(plan: RecordPlan, edit: Edit | None = None) -> str:
    """The plan's zone file, each record passed through ``edit`` (None drops it)."""
    records = tuple(r for r in (edit(r) if edit else r for r in plan.records) if r is not None)
    return to_bind(dataclasses.replace(plan, records=records))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Resolver]]:
    """Start a loopback DNS server on the given zone text (+ PTRs); returns a resolver asking it.

    The resolver's ``address`` attribute is the server's IP:PORT, for the CLI's --nameserver.
    """
    servers: list[LoopbackDNS] = []

    def start(zone: str, ptr: dict[str, str] | None = None, *extra: str) -> Resolver:
        zone_dir = tmp_path / f"zones{len(servers)}"
        zone_dir.mkdir()
        (zone_dir / "provision.zone").write_text(zone + "".join(extra), encoding="utf-8")
        (zone_dir / "provision-reverse.zone").write_text(reverse_zone(ptr or {}), encoding="utf-8")
        server = LoopbackDNS(zone_dir).start()
        servers.append(server)
        resolver = Resolver([server.address], timeout=1.0, retries=0)
        resolver.address = server.address  # type: ignore[attr-defined]
        return resolver

    yield start
    for server in servers:
        server.stop()


def by_key(checks: list[RecordCheck]) -> dict[tuple[str, str], RecordCheck]:
    return {(c.rtype, c.name if c.rtype != "PTR" else c.record.ip): c for c in checks}  # type: ignore[union-attr]


def test_complete_zone_is_all_present(plan: RecordPlan, serve: Callable[..., Resolver]) -> None:
    resolver = serve(served(plan), dict.fromkeys(IPS, BOX))
    checks = asyncio.run(verify_plan(plan, resolver))
    assert [c.status for c in checks] == [CheckStatus.PRESENT] * (len(plan.records) + 2), [c.to_dict() for c in checks]
    assert all_required_present(checks)
    assert len(checks) == len(plan.records) + len(plan.ptr_records)


def test_partial_zone_names_what_is_missing(plan: RecordPlan, serve: Callable[..., Resolver]) -> None:
    dropped = {f"s1._domainkey.{DOMAIN}", f"_dmarc.{DOMAIN}", f"_smtp._tls.{DOMAIN}"}

    def edit(r: DnsRecord) -> DnsRecord | None:
        return None if r.name in dropped or r.rtype == "AAAA" else r

    resolver = serve(served(plan, edit), {IPS[0]: BOX})
    checks = by_key(asyncio.run(verify_plan(plan, resolver)))
    missing = {key for key, check in checks.items() if check.status is CheckStatus.MISSING}
    assert missing == {
        ("TXT", f"s1._domainkey.{DOMAIN}"),
        ("TXT", f"_dmarc.{DOMAIN}"),
        ("TXT", f"_smtp._tls.{DOMAIN}"),
        ("AAAA", BOX),
        ("PTR", IPS[1]),
    }
    assert checks[("PTR", IPS[1])].detail == f"{IPS[1]} has no reverse DNS (set at the IP's provider)"
    assert not all_required_present(list(checks.values()))
    # Recommended records alone do not fail the domain.
    resolver = serve(served(plan, lambda r: None if r.name.startswith(("_mta-sts.", "mta-sts.")) else r), dict.fromkeys(IPS, BOX))
    assert all_required_present(asyncio.run(verify_plan(plan, resolver)))


def test_wrong_records_say_how_they_differ(plan: RecordPlan, serve: Callable[..., Resolver]) -> None:
    other_key = generate_dkim_key(DkimAlgorithm.RSA)[1]

    def edit(r: DnsRecord) -> DnsRecord:
        if r.rtype == "TXT" and r.value.startswith("v=spf1"):
            return dataclasses.replace(r, value=r.value.replace("ip4:192.0.2.10", "ip4:192.0.2.9"))
        if r.name.startswith("s1._domainkey"):
            return dataclasses.replace(r, value=f"v=DKIM1; k=rsa; p={other_key}")
        if r.rtype == "MX":
            return dataclasses.replace(r, value="10 mx.elsewhere.test")
        if r.rtype == "A":
            return dataclasses.replace(r, value="192.0.2.77")
        if r.name.startswith("_mta-sts."):
            return dataclasses.replace(r, value="v=STSv1; id=20240101")
        if r.rtype == "CNAME":
            return dataclasses.replace(r, value="web.elsewhere.test")
        return r

    resolver = serve(served(plan, edit), {IPS[0]: "vps-1.hosting.test", IPS[1]: BOX})
    checks = by_key(asyncio.run(verify_plan(plan, resolver)))
    wrong = {key: c.detail for key, c in checks.items() if c.status is CheckStatus.WRONG}
    assert wrong[("TXT", DOMAIN)] == "SPF has ip4:192.0.2.9 where the plan has ip4:192.0.2.10"
    assert wrong[("TXT", f"s1._domainkey.{DOMAIN}")].startswith("DKIM key differs")
    assert wrong[("MX", DOMAIN)] == f"MX points to mx.elsewhere.test where the plan has {BOX}"
    assert wrong[("A", BOX)] == f"{BOX} has A 192.0.2.77 where the plan has 192.0.2.10"
    assert wrong[("TXT", f"_mta-sts.{DOMAIN}")].startswith("MTA-STS id is 20240101 where the plan has ")
    assert wrong[("CNAME", f"mta-sts.{DOMAIN}")] == f"mta-sts.{DOMAIN} is an alias of web.elsewhere.test where the plan has {BOX}"
    assert wrong[("PTR", IPS[0])] == f"PTR of {IPS[0]} is vps-1.hosting.test where the plan has {BOX} (set at the IP's provider)"
    assert len(wrong) == 7
    assert checks[("TXT", f"ed-s1._domainkey.{DOMAIN}")].status is CheckStatus.PRESENT


def test_owner_changes_that_keep_mail_working_are_present_with_a_note(plan: RecordPlan, serve: Callable[..., Resolver]) -> None:
    def edit(r: DnsRecord) -> DnsRecord | None:
        if r.value.startswith("v=DMARC1"):
            return dataclasses.replace(r, value="v=DMARC1; p=quarantine; rua=mailto:reports@dmarc.elsewhere.test")
        if r.value.startswith("v=spf1"):
            return dataclasses.replace(r, value="v=spf1 include:_spf.elsewhere.test ip6:2001:db8:0::10 ip4:192.0.2.10 -all")
        if r.rtype == "CNAME":
            return None
        return r

    addresses = f"mta-sts.{DOMAIN}. 3600 IN A 192.0.2.10\nmta-sts.{DOMAIN}. 3600 IN AAAA 2001:db8::10\n"
    resolver = serve(served(plan, edit), dict.fromkeys(IPS, BOX), addresses)
    checks = by_key(asyncio.run(verify_plan(plan, resolver)))
    assert all(c.status is CheckStatus.PRESENT for c in checks.values()), [c.to_dict() for c in checks.values()]
    assert checks[("TXT", f"_dmarc.{DOMAIN}")].detail.startswith("p=quarantine where the plan has p=none")
    assert checks[("TXT", DOMAIN)].detail == "SPF also has include:_spf.elsewhere.test"
    assert checks[("CNAME", f"mta-sts.{DOMAIN}")].detail == f"addresses instead of a CNAME to {BOX}"


def test_two_spf_records_and_softfail_are_wrong(plan: RecordPlan, serve: Callable[..., Resolver]) -> None:
    softfail = served(plan, lambda r: dataclasses.replace(r, value=r.value.replace("-all", "~all")))
    checks = by_key(asyncio.run(verify_plan(plan, serve(softfail, dict.fromkeys(IPS, BOX)))))
    assert checks[("TXT", DOMAIN)].detail == "SPF ends with ~all where the plan has -all"
    second = f'{DOMAIN}. 3600 IN TXT "v=spf1 include:other.test -all"\n'
    checks = by_key(asyncio.run(verify_plan(plan, serve(served(plan), dict.fromkeys(IPS, BOX), second))))
    assert checks[("TXT", DOMAIN)].status is CheckStatus.WRONG
    assert "permerror" in checks[("TXT", DOMAIN)].detail


def test_a_lookup_without_answer_is_failed_not_missing(plan: RecordPlan, serve: Callable[..., Resolver]) -> None:
    address = serve(served(plan), dict.fromkeys(IPS, BOX)).address  # type: ignore[attr-defined]
    resolver = FailingResolver(address, {(f"_dmarc.{DOMAIN}", "TXT")}, LookupStatus.TIMEOUT)
    checks = by_key(asyncio.run(verify_plan(plan, resolver)))
    assert checks[("TXT", f"_dmarc.{DOMAIN}")].status is CheckStatus.FAILED
    assert "timeout" in checks[("TXT", f"_dmarc.{DOMAIN}")].detail
    assert not all_required_present(list(checks.values()))


runner = CliRunner()


def cli(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_cli_verify_exit_code_follows_the_required_records(tmp_path: Path, serve: Callable[..., Resolver]) -> None:
    data = tmp_path / "data"
    assert cli(data, "domain", "add", DOMAIN, "--ip", IPS[0], "--ip", IPS[1])[0] == 0
    code, zone = cli(data, "domain", "dns", DOMAIN)
    assert code == 0
    good = serve(zone, dict.fromkeys(IPS, BOX)).address  # type: ignore[attr-defined]
    code, output = cli(data, "domain", "verify", DOMAIN, "--nameserver", good)
    assert code == 0, output
    assert "All required records of alpha.provision.test are in place." in output
    assert output.count("✔ present") == 11  # 9 records (one DKIM key) and 2 PTRs
    without_dkim = "\n".join(line for line in zone.splitlines() if not line.startswith("s1._domainkey"))
    bad = serve(without_dkim, {IPS[0]: BOX}).address  # type: ignore[attr-defined]
    code, output = cli(data, "domain", "verify", DOMAIN, "-n", bad, "--json")
    assert code == 1
    report = json.loads(output)
    assert report["ok"] is False
    not_present = {(c["type"], c["name"]) for c in report["checks"] if c["status"] != "present"}
    assert not_present == {
        ("TXT", f"s1._domainkey.{DOMAIN}"),
        ("PTR", "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"),
    }
    assert cli(data, "domain", "verify", "beta.provision.test", "-n", good)[0] == 1
    assert cli(data, "domain", "verify", DOMAIN, "-n", "127.0.0.1:notaport")[0] == 2
