"""The whole domain check and its CLI, against the loopback DNS server."""

from __future__ import annotations

import asyncio
import json
import time

from typer.testing import CliRunner

from coldrelay.cli.main import app
from coldrelay.dns import Resolver
from coldrelay.dns.dnsbl import BlocklistConfig
from coldrelay.dns.health import check_domain, normalise_domain

runner = CliRunner()


def test_full_check_is_concurrent_and_fast(dns_server) -> None:  # type: ignore[no-untyped-def]
    resolver = Resolver([dns_server.address], timeout=1.0)
    started = time.perf_counter()
    report = asyncio.run(
        check_domain(
            resolver,
            "example.test",
            selectors=["default", "s1", "s2"],
            ips=["192.0.2.25", "198.51.100.25"],
            blocklists=BlocklistConfig().under("blocklist.test"),
        )
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"a full check took {elapsed:.2f} s"
    assert list(report.to_dict()["sections"]) == [
        "mx", "spf", "dkim", "dmarc", "ptr", "mta_sts", "tls_rpt", "bimi", "dnssec", "blocklists",
    ]  # fmt: skip


def test_new_user_domain_names_its_three_problems(dns_server) -> None:  # type: ignore[no-untyped-def]
    """SPF past ten lookups, a 1024-bit DKIM key and no DMARC: each named, each with a fix."""
    result = runner.invoke(app, ["dns", "check", "example.test", "--nameserver", dns_server.address, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    findings = {f["code"]: f for section in data["sections"].values() for f in section["findings"]}
    for code in ("spf.too-many-lookups", "dkim.rsa-short", "dmarc.missing"):
        assert code in findings and findings[code]["fix"], code
    assert data["sections"]["spf"]["status"] == "fail"
    assert data["sections"]["dmarc"]["status"] == "fail"
    assert data["grade"] in {"D", "F"}


def test_check_human_report(dns_server) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["dns", "check", "example.test", "-n", dns_server.address], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "grade" in result.stdout and "FAIL spf" in result.stdout and "fix:" in result.stdout


def test_mx_command(dns_server) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["dns", "mx", "example.test", "-n", dns_server.address, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "pass"
    table = runner.invoke(app, ["dns", "mx", "example.test", "-n", dns_server.address], env={"COLUMNS": "160"})
    assert "box.example.test" in table.stdout and "192.0.2.25" in table.stdout


def test_blocklist_command_reports_a_listing(dns_server) -> None:  # type: ignore[no-untyped-def]
    from coldrelay.cli import dns_cmd

    section = asyncio.run(
        dns_cmd.lookup_blocklists(
            Resolver([dns_server.address], timeout=1.0), "192.0.2.25", BlocklistConfig().under("blocklist.test")
        )
    )
    assert "blocklists.clean" in section.codes()


def test_bad_nameserver_is_a_clear_error() -> None:
    result = runner.invoke(app, ["dns", "mx", "example.test", "--nameserver", "not-an-ip:xx"])
    assert result.exit_code == 2
    assert "Bad --nameserver" in result.stdout
    assert "Traceback" not in result.stdout


def test_normalise_domain() -> None:
    assert normalise_domain(" HTTPS://Example.COM/path ") == "example.com"
    assert normalise_domain("user@example.com.") == "example.com"
    assert normalise_domain("bücher.example") == "xn--bcher-kva.example"


def test_every_article_a_fix_points_to_exists(kb) -> None:  # type: ignore[no-untyped-def]
    """Fix texts send people to /smtp-errors/<slug>: each of those articles must exist."""
    import re
    from pathlib import Path

    source = Path(__file__).resolve().parent.parent / "src" / "coldrelay"
    slugs = set()
    for path in [*source.glob("dns/*.py"), *source.glob("smtpcheck/*.py")]:
        slugs.update(re.findall(r"/smtp-errors/([a-z0-9-]+[a-z0-9])", path.read_text(encoding="utf-8")))
    assert slugs, "the checks are expected to link articles"
    assert sorted(slug for slug in slugs if kb.get(slug) is None) == []
