"""``coldrelay price``: the pricing calculator in the terminal (the same ``quote`` as the /pricing page)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from coldrelay.cli.context import EXIT_INVALID, app_context, fail
from coldrelay.pricing import SEAT_PRICES_CHECKED, SENDING_DAYS_PER_MONTH, PricingError, Quote, cents, quote

console = Console()


def price_command(
    ctx: typer.Context,
    emails_per_day: Annotated[int | None, typer.Option("--emails-per-day", help="Cold emails you send per day.")] = None,
    mailboxes: Annotated[int | None, typer.Option("--mailboxes", help="Or: the number of mailboxes.")] = None,
    per_mailbox: Annotated[
        int | None, typer.Option("--per-mailbox", help="Emails per mailbox per day (default: pricing.emails_per_mailbox).")
    ] = None,
    per_domain: Annotated[
        int | None, typer.Option("--per-domain", help="Mailboxes per domain (default: pricing.mailboxes_per_domain).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the quote as JSON.")] = False,
) -> None:
    """Price a sending volume or a number of mailboxes, compared with Google Workspace and Microsoft 365 seats."""
    settings = app_context(ctx).settings().pricing
    try:
        result = quote(
            emails_per_day=emails_per_day,
            mailboxes=mailboxes,
            emails_per_mailbox=per_mailbox,
            mailboxes_per_domain=per_domain,
            settings=settings,
        )
    except PricingError as exc:
        fail(str(exc), EXIT_INVALID)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    _print_quote(result)


def _print_quote(result: Quote) -> None:
    money = result.currency + " "
    table = Table(title="coldrelay quote", show_header=False)
    table.add_column("Item", style="bold")
    table.add_column("Value")
    table.add_row("Emails per day", f"{result.emails_per_day:,}")
    table.add_row("Mailboxes", f"{result.mailboxes:,} (at {result.emails_per_mailbox} emails each per day)")
    table.add_row("Domains", f"{result.domains:,} (at {result.mailboxes_per_domain} mailboxes each)")
    tier_note = " (the floor)" if result.floor_applied else f" (the {result.tier.min_mailboxes:,}+ tier)"
    table.add_row("Price per mailbox", f"{money}{cents(result.price_per_mailbox)}/month{tier_note}")
    minimum_note = f" (the monthly minimum; mailboxes alone: {money}{cents(result.subtotal)})" if result.minimum_applied else ""
    table.add_row("Monthly", f"{money}{cents(result.monthly)}{minimum_note}")
    table.add_row("Cost per 1,000 emails", f"{money}{cents(result.cost_per_1000)}")
    console.print(table)

    seats = Table(title=f"The same {result.mailboxes:,} mailboxes as seats (prices checked {SEAT_PRICES_CHECKED})")
    for column in ("Product", "Seat", "Monthly", "Per 1,000 emails", "Difference"):
        seats.add_column(column)
    for item in result.comparisons:
        if item.saving_monthly >= 0:
            difference = f"coldrelay saves {money}{cents(item.saving_monthly)} ({item.saving_percent:.0f}%)"
        else:
            difference = f"seats cost {money}{cents(-item.saving_monthly)} less"
        seats.add_row(
            item.product,
            f"{money}{cents(item.seat_price)}",
            f"{money}{cents(item.monthly)}",
            f"{money}{cents(item.cost_per_1000)}",
            difference,
        )
    console.print(seats)
    notes = [
        "The tier for the total number of mailboxes prices every mailbox.",
        f"Per 1,000 emails assumes {float(SENDING_DAYS_PER_MONTH):.1f} sending days a month (weekdays).",
    ]
    if result.next_tier is not None:
        size, cost = result.next_tier
        notes.append(f"{size:,} mailboxes would cost no more: {money}{cents(cost)}/month.")
    for note in notes:
        console.print(note, highlight=False)
