"""``coldrelay domain``: add and list the domains this mail host serves."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from coldrelay.cli.context import EXIT_CONFLICT, EXIT_INVALID, app_context, fail
from coldrelay.db import AlreadyExists, DkimKey, InvalidName, create_domain, list_domains, txt_strings

console = Console()
domain_app = typer.Typer(help="Hosted domains and their DKIM keys.", no_args_is_help=True)


def _print_dkim_record(key: DkimKey) -> None:
    """The record to publish, both as one value (for DNS panels) and as a zone-file line."""
    value = key.txt_value
    zone_strings = " ".join(f'"{part}"' for part in txt_strings(value))
    console.print(f"DKIM selector: [bold]{key.selector}[/bold] ({key.algorithm.value})")
    console.print(f"Publish this TXT record at [bold]{key.dns_name}[/bold]:")
    console.print(value, soft_wrap=True, highlight=False, markup=False)
    console.print("As a zone-file line:")
    console.print(f"{key.dns_name}. 3600 IN TXT ( {zone_strings} )", soft_wrap=True, highlight=False, markup=False)


@domain_app.command("add")
def add_command(
    ctx: typer.Context,
    domain: Annotated[str, typer.Argument(help="The domain to host, e.g. example.com.")],
) -> None:
    """Host a domain: store it and make its DKIM key, then print the DNS record to publish."""
    app = app_context(ctx)
    selector = app.settings().dkim.selector
    with app.session() as session:
        try:
            created = create_domain(session, domain, selector=selector)
        except InvalidName as exc:
            fail(str(exc), EXIT_INVALID)
        except AlreadyExists as exc:
            fail(str(exc), EXIT_CONFLICT)
        key = created.dkim_keys[0]
        name = created.name
        _print_dkim_record(key)
    console.print(f"Domain [bold]{name}[/bold] added. Next: coldrelay mailbox add someone@{name} --password ...", soft_wrap=True)


@domain_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List hosted domains with their active DKIM selector and mailbox count."""
    with app_context(ctx).session() as session:
        domains = list_domains(session)
        if not domains:
            console.print("No domains yet. Add one with: coldrelay domain add example.com")
            return
        table = Table(title=f"{len(domains)} hosted domain{'s' if len(domains) != 1 else ''}")
        for column in ("Domain", "DKIM selector", "Mailboxes", "Added"):
            table.add_column(column)
        for item in domains:
            selectors = ", ".join(f"{k.selector} ({k.algorithm.value})" for k in item.dkim_keys if k.active) or "none"
            table.add_row(item.name, selectors, str(len(item.mailboxes)), item.created_at.strftime("%Y-%m-%d %H:%M UTC"))
        console.print(table)
