"""push_plan through dns-lexicon's real ``localzone`` provider writing a zone file in tmp_path, then verify
against that zone file served by the loopback DNS server.

localzone is lexicon's optional extra ``dns-lexicon[localzone]``; it is a dev dependency of the project.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import dns.rdatatype
import dns.zone
import localzone  # noqa: F401  (lexicon's localzone provider needs it: a dev dependency, so a missing one fails loudly)
import pytest
from typer.testing import CliRunner

from coldrelay.cli.main import app
from coldrelay.config import load_settings
from coldrelay.db import DkimAlgorithm, DkimKey, Domain, generate_dkim_key
from coldrelay.dns import Resolver
from coldrelay.dns.resolver import reverse_name
from coldrelay.provision.push import PushError, PushOutcome, push_plan
from coldrelay.provision.records import RecordPlan, plan_for
from coldrelay.provision.verify import CheckStatus, verify_plan
from dns_server import LoopbackDNS

DOMAIN = "alpha.provision.test"
BOX = f"box.{DOMAIN}"
IPS = ["192.0.2.10", "2001:db8::10"]
# What the zone held before coldrelay: an old SPF, a stale address for box, an unrelated TXT that must survive.
START = f"""$ORIGIN {DOMAIN}.
$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 86400 3600
@ IN NS ns1
ns1 IN A 192.0.2.53
@ IN TXT "v=spf1 ip4:192.0.2.9 -all"
@ IN TXT "site-verification=abc123"
box IN A 192.0.2.99
"""


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> RecordPlan:
    domain = Domain(name=DOMAIN, ips=IPS)
    for selector, algorithm in (("s1", DkimAlgorithm.RSA), ("ed-s1", DkimAlgorithm.ED25519)):
        private, public = generate_dkim_key(algorithm)
        domain.dkim_keys.append(DkimKey(selector=selector, algorithm=algorithm, private_key_pem=private, public_key_b64=public))
        domain.dkim_keys[-1].active = True
    return plan_for(domain, load_settings(tmp_path_factory.mktemp("settings")))


@pytest.fixture
def zone_file(tmp_path: Path) -> Path:
    path = tmp_path / "alpha.zone"
    path.write_text(START, encoding="utf-8")
    return path


def records(path: Path) -> set[tuple[str, str, str]]:
    """The zone's records other than the SOA (localzone bumps the serial on every save)."""
    zone = dns.zone.from_file(str(path), origin=DOMAIN, relativize=False)
    return {
        (name.to_text(), dns.rdatatype.to_text(rdata.rdtype), rdata.to_text())
        for name, _ttl, rdata in zone.iterate_rdatas()
        if rdata.rdtype != dns.rdatatype.SOA
    }


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[LoopbackDNS]]:
    servers: list[LoopbackDNS] = []
    yield servers
    for server in servers:
        server.stop()


def serve_zone(path: Path, servers: list[LoopbackDNS], tmp_path: Path) -> Resolver:
    """The pushed zone (written absolute, as the test server reads it) plus the PTRs the IP provider set."""
    zone_dir = tmp_path / f"served{len(servers)}"
    zone_dir.mkdir()
    dns.zone.from_file(str(path), origin=DOMAIN, relativize=False).to_file(str(zone_dir / "provision.zone"), relativize=False)
    (zone_dir / "provision-reverse.zone").write_text("".join(f"{reverse_name(ip)}. 3600 IN PTR {BOX}.\n" for ip in IPS))
    server = LoopbackDNS(zone_dir).start()
    servers.append(server)
    return Resolver([server.address], timeout=1.0, retries=0)


def test_push_then_verify_is_all_present_and_a_second_push_changes_nothing(
    plan: RecordPlan, zone_file: Path, served: list[LoopbackDNS], tmp_path: Path
) -> None:
    first = push_plan(plan, "localzone", dry_run=False, provider_options={"filename": str(zone_file)})
    outcomes = {(a.record.rtype, a.record.name, a.outcome) for a in first.actions}
    assert ("TXT", DOMAIN, PushOutcome.UPDATED) in outcomes  # the old SPF was replaced...
    assert ("A", BOX, PushOutcome.DELETED) in outcomes  # ...and box's stale address removed
    after = records(zone_file)
    apex_txt = sorted(value for name, rtype, value in after if name == f"{DOMAIN}." and rtype == "TXT")
    assert apex_txt == ['"site-verification=abc123"', '"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all"']
    assert (f"{BOX}.", "A", "192.0.2.99") not in after

    checks = asyncio.run(verify_plan(plan, serve_zone(zone_file, served, tmp_path)))
    assert [c.status for c in checks] == [CheckStatus.PRESENT] * len(checks), [c.to_dict() for c in checks if c.detail]

    second = push_plan(plan, "localzone", dry_run=False, provider_options={"filename": str(zone_file)})
    assert second.changes == []
    assert [a.outcome for a in second.actions] == [PushOutcome.UNCHANGED] * len(plan.records)
    assert records(zone_file) == after


def test_dry_run_reports_but_writes_nothing(plan: RecordPlan, zone_file: Path) -> None:
    before = records(zone_file)
    seen: list[str] = []
    report = push_plan(
        plan, "localzone", dry_run=True, provider_options={"filename": str(zone_file)}, on_action=lambda a: seen.append(a.outcome)
    )
    assert report.dry_run and len(report.changes) == len(plan.records) + 1  # every record, plus the stale A
    assert seen == [a.outcome for a in report.actions]
    assert records(zone_file) == before


def test_options_come_from_the_environment_as_lexicon_reads_them(
    plan: RecordPlan, zone_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEXICON_LOCALZONE_FILENAME", str(zone_file))
    report = push_plan(plan, "localzone", dry_run=False, provider_options={})
    assert len(report.changes) == len(plan.records) + 1
    assert (f"mta-sts.{DOMAIN}.", "CNAME", f"{BOX}.") in records(zone_file)


def test_provider_problems_are_one_clear_error(plan: RecordPlan, tmp_path: Path) -> None:
    with pytest.raises(PushError, match="no DNS provider named 'nosuchdns'"):
        push_plan(plan, "nosuchdns", dry_run=True, provider_options={})
    with pytest.raises(PushError, match="localzone: FileNotFoundError"):
        push_plan(plan, "localzone", dry_run=True, provider_options={"filename": str(tmp_path / "absent.zone")})
    with pytest.raises(PushError, match=r"is not inside the zone other\.test"):
        push_plan(plan, "localzone", dry_run=True, provider_options={}, zone="other.test")


def test_cli_push(tmp_path: Path, zone_file: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    assert runner.invoke(app, [*data, "domain", "add", DOMAIN, "--ip", IPS[0]]).exit_code == 0
    push = [*data, "domain", "push", DOMAIN, "--provider", "localzone", "--option", f"filename={zone_file}"]
    result = runner.invoke(app, [*push, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "changes would be made" in result.output and f"PTR {BOX}" in result.output
    assert runner.invoke(app, push).exit_code == 0
    again = runner.invoke(app, push)
    assert again.exit_code == 0 and "0 changes were made." in again.output
    bad = runner.invoke(app, [*data, "domain", "push", DOMAIN, "--provider", "localzone", "--option", "filename"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
    missing = runner.invoke(app, [*data, "domain", "push", DOMAIN, "--provider", "nosuchdns"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
