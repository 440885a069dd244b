"""``coldrelay domain``: host a domain and take it from nothing to a verified DNS setup.

add (domain, IPs, DKIM keys) -> dns (the record plan as a zone file, JSON or CSV) -> push (through a
DNS provider's API) or paste -> verify (live DNS against the plan). ``ips`` changes the sending IPs
later; every command after it sees the new plan.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from sqlalchemy.orm import Session

from coldrelay.cli.context import EXIT_CONFLICT, EXIT_INVALID, AppContext, app_context, fail
from coldrelay.db import AlreadyExists, DkimKey, Domain, InvalidName, create_domain, get_domain, list_domains, txt_strings
from coldrelay.dns import Resolver
from coldrelay.provision.push import PushAction, PushError, PushOutcome, push_plan
from coldrelay.provision.records import InvalidIp, RecordPlan, ed25519_selector, normalize_ips, plan_for
from coldrelay.provision.render import FORMATS, render
from coldrelay.provision.verify import CheckStatus, RecordCheck, all_required_present, verify_plan

console = Console()
domain_app = typer.Typer(help="Hosted domains: DKIM keys, sending IPs and the DNS records they need.", no_args_is_help=True)

DomainArgument = Annotated[str, typer.Argument(help="A hosted domain, e.g. example.com.")]
_MARKS = {
    CheckStatus.PRESENT: "[green]✔ present[/green]",
    CheckStatus.WRONG: "[red]✘ wrong[/red]",
    CheckStatus.MISSING: "[red]✘ missing[/red]",
    CheckStatus.FAILED: "[yellow]? failed[/yellow]",
}


def _print_dkim_record(key: DkimKey) -> None:
    """The record to publish, both as one value (for DNS panels) and as a zone-file line."""
    value = key.txt_value
    zone_strings = " ".join(f'"{part}"' for part in txt_strings(value))
    console.print(f"DKIM selector: [bold]{key.selector}[/bold] ({key.algorithm.value})")
    console.print(f"Publish this TXT record at [bold]{key.dns_name}[/bold]:")
    console.print(value, soft_wrap=True, highlight=False, markup=False)
    console.print("As a zone-file line:")
    console.print(f"{key.dns_name}. 3600 IN TXT ( {zone_strings} )", soft_wrap=True, highlight=False, markup=False)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_plan_summary(plan: RecordPlan) -> None:
    table = Table(title=f"DNS records for {plan.domain}", title_justify="left")
    for column in ("Name", "Type", "Value", "Required"):
        table.add_column(column)
    for record in plan.records:
        table.add_row(record.name, record.rtype, escape(_short(record.value)), "yes" if record.required else "recommended")
    for ptr in plan.ptr_records:
        table.add_row(ptr.ip, "PTR", ptr.value, f"yes ({ptr.where})")
    console.print(table)
    for note in plan.notes:
        console.print(f"[dim]Note:[/dim] {escape(note)}", soft_wrap=True)


def _load_domain(session: Session, name: str) -> Domain:
    """The hosted domain or a one-line error: 2 for a malformed name, 1 for one not hosted here."""
    try:
        domain = get_domain(session, name)
    except InvalidName as exc:
        fail(str(exc), EXIT_INVALID)
    if domain is None:
        fail(f"The domain {name} is not hosted here; add it first with: coldrelay domain add {name}", EXIT_CONFLICT)
    return domain


def _plan(app: AppContext, name: str) -> RecordPlan:
    settings = app.settings()
    with app.session() as session:
        return plan_for(_load_domain(session, name), settings)


def _valid_ips(ips: list[str] | None) -> list[str]:
    try:
        return normalize_ips(ips or [])
    except InvalidIp as exc:
        fail(str(exc), EXIT_INVALID)


@domain_app.command("add")
def add_command(
    ctx: typer.Context,
    domain: Annotated[str, typer.Argument(help="The domain to host, e.g. example.com.")],
    ip: Annotated[list[str] | None, typer.Option("--ip", help="A sending IP of box.<domain> (IPv4 or IPv6; repeatable).")] = None,
    selector: Annotated[str | None, typer.Option(help="DKIM selector (default: dkim.selector in coldrelay.toml).")] = None,
    ed25519: Annotated[
        bool, typer.Option("--ed25519", help="Also make an Ed25519 key, selector ed-<selector>, for dual signing.")
    ] = False,
) -> None:
    """Host a domain: store it and its IPs, make its DKIM key(s), then print the DNS records to publish."""
    app = app_context(ctx)
    settings = app.settings()
    chosen = (selector or settings.dkim.selector).strip().lower()
    ips = _valid_ips(ip)
    with app.session() as session:
        try:
            created = create_domain(
                session, domain, selector=chosen, ips=ips, ed25519_selector=ed25519_selector(chosen) if ed25519 else None
            )
        except InvalidName as exc:
            fail(str(exc), EXIT_INVALID)
        except AlreadyExists as exc:
            fail(str(exc), EXIT_CONFLICT)
        name = created.name
        for key in created.dkim_keys:
            _print_dkim_record(key)
        plan = plan_for(created, settings)
    _print_plan_summary(plan)
    console.print(f"Domain [bold]{name}[/bold] added.", soft_wrap=True)
    console.print(
        f"Next: publish the records (coldrelay domain dns {name} --format bind, or coldrelay domain push {name} "
        f"--provider NAME), then check them: coldrelay domain verify {name}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"Then add mailboxes: coldrelay mailbox add someone@{name} --password ...", soft_wrap=True, highlight=False)


@domain_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List hosted domains with their active DKIM selectors, sending IPs and mailbox count."""
    with app_context(ctx).session() as session:
        domains = list_domains(session)
        if not domains:
            console.print("No domains yet. Add one with: coldrelay domain add example.com")
            return
        table = Table(title=f"{len(domains)} hosted domain{'s' if len(domains) != 1 else ''}")
        for column in ("Domain", "DKIM selector", "Mailboxes", "Added", "IPs"):
            table.add_column(column)
        for item in domains:
            selectors = ", ".join(f"{k.selector} ({k.algorithm.value})" for k in item.dkim_keys if k.active) or "none"
            table.add_row(
                item.name,
                selectors,
                str(len(item.mailboxes)),
                item.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                ", ".join(item.ips or []) or "none",
            )
        console.print(table)


@domain_app.command("ips")
def ips_command(
    ctx: typer.Context,
    domain: DomainArgument,
    ip: Annotated[list[str] | None, typer.Option("--ip", help="Replace the IPs with these (repeatable).")] = None,
    add_ip: Annotated[list[str] | None, typer.Option("--add-ip", help="Add an IP (repeatable).")] = None,
    remove_ip: Annotated[list[str] | None, typer.Option("--remove-ip", help="Remove an IP (repeatable).")] = None,
) -> None:
    """Show or change the sending IPs of box.<domain>; then push or paste the new plan."""
    if ip and (add_ip or remove_ip):
        fail("Use --ip to replace the list, or --add-ip/--remove-ip to edit it, not both.", EXIT_INVALID)
    replace, added, removed = _valid_ips(ip), _valid_ips(add_ip), _valid_ips(remove_ip)
    app = app_context(ctx)
    with app.session() as session:
        hosted = _load_domain(session, domain)
        current = list(hosted.ips or [])
        unknown = [address for address in removed if address not in current]
        if unknown:
            fail(f"{', '.join(unknown)} is not an IP of {hosted.name} (it has: {', '.join(current) or 'none'})", EXIT_CONFLICT)
        changed = ip is not None or bool(added or removed)
        if ip is not None:
            current = replace
        current = [address for address in current + [a for a in added if a not in current] if address not in removed]
        if changed:
            hosted.ips = current  # a new list object, so SQLAlchemy sees the JSON column change
        name = hosted.name
    console.print(f"{name}: {', '.join(current) or 'no IPs'}", highlight=False)
    if changed:
        console.print(
            f"Update DNS: coldrelay domain push {name} --provider NAME (or coldrelay domain dns {name}), "
            "and set the PTR of each new IP at its provider.",
            soft_wrap=True,
            highlight=False,
        )


@domain_app.command("dns")
def dns_command(
    ctx: typer.Context,
    domain: DomainArgument,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"Output format: {', '.join(FORMATS)}.")] = "bind",
) -> None:
    """Print the DNS records the domain needs: a zone-file fragment, JSON or CSV."""
    if fmt not in FORMATS:
        fail(f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)}.", EXIT_INVALID)
    plan = _plan(app_context(ctx), domain)
    typer.echo(render(plan, fmt), nl=False)


def _print_checks(domain: str, checks: list[RecordCheck]) -> None:
    table = Table(title=f"DNS of {domain} against the plan", title_justify="left")
    for column in ("Status", "Type", "Name", "Expected", "Detail"):
        table.add_column(column, overflow="fold")
    for check in checks:
        # A recommended record that is not in place is a warning, never a red mark: it does not fail the command.
        optional = not check.required and check.status is not CheckStatus.PRESENT
        mark = f"[yellow]– {check.status.value}[/yellow]" if optional else _MARKS[check.status]
        table.add_row(mark, check.rtype, check.name, escape(_short(check.expected, 50)), escape(check.detail))
    console.print(table)


@domain_app.command("verify")
def verify_command(
    ctx: typer.Context,
    domain: DomainArgument,
    nameserver: Annotated[
        list[str] | None,
        typer.Option("--nameserver", "-n", help="Ask this nameserver (IP or IP:PORT; repeatable); default: dns.nameservers."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Look up every planned record in live DNS; exit 0 only when all required records are present."""
    app = app_context(ctx)
    settings = app.settings()
    plan = _plan(app, domain)
    servers = nameserver or list(settings.dns.nameservers or [])
    try:
        resolver = Resolver(servers or None, timeout=settings.dns.timeout)
    except ValueError as exc:
        fail(f"Bad --nameserver: {exc}", EXIT_INVALID)
    checks = asyncio.run(verify_plan(plan, resolver))
    ok = all_required_present(checks)
    if as_json:
        typer.echo(json.dumps({"domain": plan.domain, "ok": ok, "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        _print_checks(plan.domain, checks)
        missing = sum(1 for c in checks if c.required and c.status is not CheckStatus.PRESENT)
        if ok:
            console.print(f"[green]All required records of {plan.domain} are in place.[/green]")
        else:
            console.print(f"[red]{missing} required record{'s' if missing != 1 else ''} not in place.[/red]")
    if not ok:
        raise typer.Exit(1)


def _parse_options(options: list[str] | None) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in options or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            fail(f"--option {item!r}: use KEY=VALUE, e.g. --option auth_token=...", EXIT_INVALID)
        parsed[key.strip()] = value
    return parsed


@domain_app.command("push")
def push_command(
    ctx: typer.Context,
    domain: DomainArgument,
    provider: Annotated[str, typer.Option("--provider", help="A dns-lexicon provider name: cloudflare, route53, ...")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only read the zone and say what would change.")] = False,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Provider option KEY=VALUE (repeatable); or LEXICON_<PROVIDER>_<KEY> variables."),
    ] = None,
    zone: Annotated[str | None, typer.Option(help="The provider's zone, when the domain is a subdomain of it.")] = None,
) -> None:
    """Create or update the domain's DNS records at a DNS provider (PTRs excepted: the IP's provider sets them)."""
    options = _parse_options(option)
    plan = _plan(app_context(ctx), domain)
    total = len(plan.records)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task(f"{'Checking' if dry_run else 'Pushing'} {plan.domain} at {provider}", total=total)

        def advance(action: PushAction) -> None:
            if action.outcome is not PushOutcome.DELETED:
                progress.advance(task)

        try:
            report = push_plan(plan, provider, dry_run=dry_run, provider_options=options, zone=zone, on_action=advance)
        except PushError as exc:
            progress.stop()
            fail(str(exc), EXIT_CONFLICT)
    verb = {True: "would be", False: "were"}[dry_run]
    table = Table(title=f"{plan.domain} at {provider} (zone {report.zone})", title_justify="left")
    for column in ("Outcome", "Type", "Name", "Detail"):
        table.add_column(column, overflow="fold")
    for action in report.actions:
        style = "dim" if action.outcome is PushOutcome.UNCHANGED else "bold"
        table.add_row(
            f"[{style}]{action.outcome.value}[/]", action.record.rtype, action.record.name, escape(_short(action.detail, 60))
        )
    console.print(table)
    console.print(f"{len(report.changes)} change{'s' if len(report.changes) != 1 else ''} {verb} made.", highlight=False)
    for ptr in plan.ptr_records:
        console.print(
            f"Reverse DNS is not pushed: ask the provider of {ptr.ip} for PTR {ptr.value}.", highlight=False, soft_wrap=True
        )
    if not dry_run:
        console.print(f"Check it: coldrelay domain verify {plan.domain}", highlight=False, soft_wrap=True)
