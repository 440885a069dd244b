"""``coldrelay domain add|ips|dns`` as a user types them, with --data-dir in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldrelay.cli.main import app
from coldrelay.db import DkimAlgorithm, create_engine, get_domain, session_factory

DOMAIN = "alpha.provision.test"
runner = CliRunner()


def run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def stored(data_dir: Path) -> tuple[list[str], list[tuple[str, DkimAlgorithm]]]:
    engine = create_engine(f"sqlite:///{data_dir}/coldrelay.db")
    try:
        with session_factory(engine)() as session:
            domain = get_domain(session, DOMAIN)
            assert domain is not None
            return list(domain.ips), [(k.selector, k.algorithm) for k in domain.dkim_keys if k.active]
    finally:
        engine.dispose()


def test_add_with_ips_selector_and_ed25519(data_dir: Path) -> None:
    code, output = run(
        data_dir, "domain", "add", DOMAIN, "--ip", "192.0.2.10", "--ip", "2001:DB8::10", "--selector", "mail", "--ed25519"
    )
    assert code == 0, output
    assert stored(data_dir) == (["192.0.2.10", "2001:db8::10"], [("mail", DkimAlgorithm.RSA), ("ed-mail", DkimAlgorithm.ED25519)])
    assert "DKIM selector: ed-mail (ed25519)" in output
    assert f"Domain {DOMAIN} added." in output
    assert f"coldrelay domain verify {DOMAIN}" in output  # the next command to run
    assert "p=quarantine" in output  # the plan's notes are shown


@pytest.mark.parametrize("bad", ["192.0.2.256", "box.example.com"])
def test_add_refuses_a_bad_ip_before_storing_anything(data_dir: Path, bad: str) -> None:
    code, output = run(data_dir, "domain", "add", DOMAIN, "--ip", bad)
    assert code == 2
    assert "is not an IPv4 or IPv6 address" in output
    assert run(data_dir, "domain", "dns", DOMAIN)[0] == 1  # nothing was added


def test_ips_show_replace_add_remove(data_dir: Path) -> None:
    assert run(data_dir, "domain", "add", DOMAIN)[0] == 0
    assert run(data_dir, "domain", "ips", DOMAIN)[1].strip() == f"{DOMAIN}: no IPs"
    code, output = run(data_dir, "domain", "ips", DOMAIN, "--ip", "192.0.2.10", "--ip", "192.0.2.11")
    assert code == 0 and "set the PTR" in output
    assert stored(data_dir)[0] == ["192.0.2.10", "192.0.2.11"]
    assert run(data_dir, "domain", "ips", DOMAIN, "--add-ip", "2001:db8::1", "--remove-ip", "192.0.2.10")[0] == 0
    assert stored(data_dir)[0] == ["192.0.2.11", "2001:db8::1"]
    code, output = run(data_dir, "domain", "ips", DOMAIN, "--remove-ip", "192.0.2.99")
    assert code == 1 and "192.0.2.99 is not an IP of" in output
    assert run(data_dir, "domain", "ips", DOMAIN, "--ip", "192.0.2.1", "--add-ip", "192.0.2.2")[0] == 2
    assert run(data_dir, "domain", "ips", DOMAIN, "--add-ip", "nope")[0] == 2
    assert stored(data_dir)[0] == ["192.0.2.11", "2001:db8::1"]
    # The plan follows the stored IPs.
    plan = json.loads(run(data_dir, "domain", "dns", DOMAIN, "--format", "json")[1])
    spf = [r["value"] for r in plan["records"] if r["type"] == "TXT" and r["name"] == DOMAIN]
    assert spf == ["v=spf1 ip4:192.0.2.11 ip6:2001:db8::1 -all"]


def test_dns_formats_and_errors(data_dir: Path) -> None:
    assert run(data_dir, "domain", "add", DOMAIN, "--ip", "192.0.2.10")[0] == 0
    code, bind = run(data_dir, "domain", "dns", DOMAIN)
    assert code == 0 and bind.startswith(f"; DNS records for {DOMAIN}") and f"$ORIGIN {DOMAIN}." in bind
    code, text = run(data_dir, "domain", "dns", DOMAIN.upper(), "-f", "csv")
    assert code == 0 and text.splitlines()[0] == "name,fqdn,type,value,ttl,required,purpose"
    assert run(data_dir, "domain", "dns", DOMAIN, "--format", "yaml")[0] == 2
    assert run(data_dir, "domain", "dns", "beta.provision.test")[0] == 1
    assert run(data_dir, "domain", "dns", "not a domain")[0] == 2
    code, listing = run(data_dir, "domain", "list")
    assert code == 0 and "192.0.2.10" in listing
