"""``coldrelay mailbox``: add and list the mailboxes a sending platform logs in as."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from coldrelay.cli.context import EXIT_CONFLICT, EXIT_INVALID, app_context, fail
from coldrelay.db import AccountError, AlreadyExists, InvalidName, UnknownDomain, create_mailbox, list_mailboxes

console = Console()
mailbox_app = typer.Typer(help="Mailboxes of the hosted domains.", no_args_is_help=True)


@mailbox_app.command("add")
def add_command(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The mailbox address, e.g. anna@example.com; its domain must be added first.")],
    password: Annotated[
        str,
        typer.Option(
            "--password",
            help="The SMTP login password (at least 8 characters). Asked for, hidden, when not given.",
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
        ),
    ],
    name: Annotated[str | None, typer.Option("--name", help='Display name, e.g. "Anna Berg".')] = None,
    daily_limit: Annotated[
        int | None,
        typer.Option("--daily-limit", min=0, help="Messages per day for this mailbox (default: limits.daily_cap)."),
    ] = None,
) -> None:
    """Add a mailbox at a hosted domain."""
    app = app_context(ctx)
    default_cap = app.settings().limits.daily_cap
    with app.session() as session:
        try:
            mailbox = create_mailbox(session, address, password, display_name=name, daily_cap=daily_limit)
        except (InvalidName, UnknownDomain, AlreadyExists) as exc:
            fail(str(exc), EXIT_INVALID if isinstance(exc, InvalidName) else EXIT_CONFLICT)
        except AccountError as exc:  # a too-short password, a negative cap
            fail(str(exc), EXIT_INVALID)
        created = mailbox.address
        cap = mailbox.daily_cap
    shown_cap = f"{cap} messages/day" if cap is not None else f"{default_cap} messages/day (the default)"
    console.print(f"Mailbox [bold]{created}[/bold] added, daily cap {shown_cap}.", highlight=False)


@mailbox_app.command("list")
def list_command(
    ctx: typer.Context,
    domain: Annotated[str | None, typer.Option("--domain", help="Only this domain's mailboxes.")] = None,
) -> None:
    """List mailboxes with their display name, daily cap and state."""
    app = app_context(ctx)
    default_cap = app.settings().limits.daily_cap
    with app.session() as session:
        try:
            mailboxes = list_mailboxes(session, domain)
        except InvalidName as exc:
            fail(str(exc), EXIT_INVALID)
        if not mailboxes:
            console.print("No mailboxes yet. Add one with: coldrelay mailbox add anna@example.com --password ...")
            return
        table = Table(title=f"{len(mailboxes)} mailbox{'es' if len(mailboxes) != 1 else ''}")
        for column in ("Address", "Name", "Daily cap", "Enabled"):
            table.add_column(column)
        for item in mailboxes:
            cap = str(item.daily_cap) if item.daily_cap is not None else f"{default_cap} (default)"
            table.add_row(item.address, item.display_name or "", cap, "yes" if item.enabled else "no")
        console.print(table)
