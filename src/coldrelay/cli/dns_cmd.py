"""``coldrelay dns``: MX lookup, the full domain check, and blocklist lookups from a terminal."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from coldrelay.dns import Resolver, Section
from coldrelay.dns.dnsbl import lookup_blocklists
from coldrelay.dns.health import check_domain, normalise_domain
from coldrelay.dns.mx import lookup_mx, mx_section
from coldrelay.dns.report import Report

dns_app = typer.Typer(help="DNS and domain checks: MX, SPF, DKIM, DMARC, rDNS, MTA-STS, TLS-RPT, BIMI, DNSSEC, blocklists.")
console = Console()

NameserverOption = Annotated[
    list[str] | None,
    typer.Option("--nameserver", "-n", help="Ask this nameserver (IP or IP:PORT; repeatable) instead of the system's."),
]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for each DNS answer.")]

_STATUS_STYLE = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red", "info": "bold blue"}
_SEVERITY_STYLE = {"ok": "green", "info": "blue", "warning": "yellow", "error": "red"}


def _resolver(nameservers: list[str] | None, timeout: float) -> Resolver:
    try:
        return Resolver(nameservers or None, timeout=timeout)
    except ValueError as exc:
        console.print(f"[red]Bad --nameserver:[/red] {exc}")
        raise typer.Exit(2) from None


def print_section(name: str, data: dict[str, Any]) -> None:
    """One section as a Rich panel: status, findings with fixes."""
    status = data["status"]
    lines: list[str] = []
    for finding in data["findings"]:
        style = _SEVERITY_STYLE.get(finding["severity"], "")
        lines.append(f"[{style}]{finding['severity']:>7}[/{style}]  {finding['message']}")
        if finding["fix"]:
            lines.append(f"         [dim]fix:[/dim] {finding['fix']}")
    if data["records"]:
        lines.append("[dim]records:[/dim] " + " | ".join(data["records"][:4]) + (" ..." if len(data["records"]) > 4 else ""))
    title = f"[{_STATUS_STYLE.get(status, '')}]{status.upper()}[/] {name.replace('_', ' ')}"
    console.print(Panel("\n".join(lines) or "[dim]nothing to report[/dim]", title=title, title_align="left"))


def print_report(report: Report) -> None:
    data = report.to_dict()
    summary = Table.grid(padding=(0, 2))
    summary.add_row(f"[bold]{data['domain']}[/bold]", f"grade [bold]{data['grade']}[/bold]")
    summary.add_row(
        "sections",
        "  ".join(f"[{_STATUS_STYLE.get(s['status'], '')}]{n}[/]" for n, s in data["sections"].items()),
    )
    console.print(summary)
    for name, section in data["sections"].items():
        print_section(name, section)


@dns_app.command("mx")
def mx_command(
    domain: Annotated[str, typer.Argument(help="The domain whose mail servers to list.")],
    nameserver: NameserverOption = None,
    timeout: TimeoutOption = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the mx section as JSON.")] = False,
) -> None:
    """List a domain's MX hosts in delivery order, with their addresses and any problem."""
    resolver = _resolver(nameserver, timeout)
    result = asyncio.run(lookup_mx(resolver, normalise_domain(domain)))
    section: Section = mx_section(result)
    if as_json:
        print(json.dumps(section.to_dict(), indent=2))
        return
    table = Table(title=f"MX for {result.domain}")
    for column in ("preference", "host", "addresses"):
        table.add_column(column)
    for host in result.hosts:
        table.add_row(str(host.preference), host.host, ", ".join(host.addresses) or "-")
    console.print(table)
    print_section("mx", section.to_dict())


@dns_app.command("check")
def check_command(
    domain: Annotated[str, typer.Argument(help="The domain to check.")],
    selector: Annotated[list[str] | None, typer.Option("--selector", "-s", help="DKIM selector (repeatable).")] = None,
    ip: Annotated[list[str] | None, typer.Option("--ip", help="A sending IP (repeatable).")] = None,
    nameserver: NameserverOption = None,
    timeout: TimeoutOption = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (stable shape).")] = False,
) -> None:
    """Check everything a receiver checks about a sending domain, with the fix for each finding."""
    resolver = _resolver(nameserver, timeout)
    with console.status(f"checking {domain} ...", spinner="dots") if not as_json else _nothing():
        report = asyncio.run(check_domain(resolver, domain, selectors=selector or (), ips=ip or ()))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report)


@dns_app.command("blocklist")
def blocklist_command(
    target: Annotated[str, typer.Argument(help="An IP address or a domain.")],
    nameserver: NameserverOption = None,
    timeout: TimeoutOption = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the section as JSON.")] = False,
) -> None:
    """Look an IP up in the DNS blocklists, or a domain in the domain lists (and its mail hosts in the IP lists)."""
    resolver = _resolver(nameserver, timeout)
    section = asyncio.run(lookup_blocklists(resolver, target.strip()))
    if as_json:
        print(json.dumps(section.to_dict(), indent=2))
    else:
        print_section("blocklists", section.to_dict())


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
