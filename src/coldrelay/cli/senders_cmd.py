"""``coldrelay senders``: the mailboxes and domains the reputation guard paused, and pausing by hand.

A paused sender's messages wait in the queue (deferred) until someone resumes it here or on the
dashboard; ``show`` gives the figures the guard judges by, so the person deciding sees what it saw.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from coldrelay.cli.context import EXIT_CONFLICT, EXIT_INVALID, fail
from coldrelay.cli.queue_cmd import open_engine
from coldrelay.db import SenderPause
from coldrelay.mta.delivery.reputation import AlreadyPaused, InvalidSenderName, ReputationGuard, SenderStanding

console = Console()
senders_app = typer.Typer(help="Senders the reputation guard paused: list, resume, pause, show.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="A mailbox address (anna@example.com) or a domain (example.com).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ByOption = Annotated[str, typer.Option("--by", help="Who is doing this, for the pause history.")]
DEFAULT_BY = "command line"


def _pause_json(pause: SenderPause) -> dict[str, Any]:
    return {
        "id": pause.id,
        "scope": pause.scope.value,
        "name": pause.name,
        "trigger": pause.trigger,
        "detail": pause.detail,
        "paused_at": pause.paused_at.isoformat(),
        "resumed_at": pause.resumed_at.isoformat() if pause.resumed_at else None,
        "resumed_by": pause.resumed_by,
    }


def _since(pause: SenderPause) -> str:
    return pause.paused_at.strftime("%Y-%m-%d %H:%M")


def _pauses_table(pauses: Sequence[SenderPause], *, history: bool) -> Table:
    title = f"{len(pauses)} pause{'s' if len(pauses) != 1 else ''}" + ("" if history else " in force")
    table = Table(title=title)
    columns = ["Scope", "Name", "Trigger", "Since (UTC)", "Detail"] + (["Resumed (UTC)", "By"] if history else [])
    for column in columns:
        table.add_column(column, overflow="fold")
    for pause in pauses:
        cells = [pause.scope.value, escape(pause.name), pause.trigger, _since(pause), escape(pause.detail)]
        if history:
            resumed = pause.resumed_at.strftime("%Y-%m-%d %H:%M") if pause.resumed_at else "paused"
            cells += [resumed, escape(pause.resumed_by or "")]
        table.add_row(*cells)
    return table


@senders_app.command("list")
def list_command(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Include pauses that were resumed (the history).")] = False,
    as_json: JsonOption = False,
) -> None:
    """List paused mailboxes and domains: what triggered each pause and since when."""
    with open_engine(ctx) as (app, engine, _session):
        guard = ReputationGuard(engine, app.settings().reputation)
        pauses = asyncio.run(guard.pauses(active_only=not show_all))
    if as_json:
        print(json.dumps([_pause_json(pause) for pause in pauses], indent=2))
        return
    if not pauses:
        console.print("No sender is paused." if not show_all else "No sender has ever been paused.")
        return
    console.print(_pauses_table(pauses, history=show_all))


@senders_app.command("resume")
def resume_command(ctx: typer.Context, name: NameArgument, by: ByOption = DEFAULT_BY) -> None:
    """Let a paused mailbox or domain send again; only sends after now count towards the next verdict."""
    with open_engine(ctx) as (app, engine, _session):
        guard = ReputationGuard(engine, app.settings().reputation)
        try:
            count = asyncio.run(guard.resume(name, by=by))
        except InvalidSenderName as exc:
            fail(str(exc), EXIT_INVALID)
    if count == 0:
        fail(f"{name.strip()} is not paused.", EXIT_CONFLICT)
    console.print(f"{escape(name.strip())} resumed; its queued messages go out on their next attempt.", highlight=False)


@senders_app.command("pause")
def pause_command(
    ctx: typer.Context,
    name: NameArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why, for whoever resumes it later.")],
    by: ByOption = DEFAULT_BY,
) -> None:
    """Stop a mailbox or a whole domain from sending until it is resumed."""
    with open_engine(ctx) as (app, engine, _session):
        guard = ReputationGuard(engine, app.settings().reputation)
        try:
            pause = asyncio.run(guard.pause(name, detail=reason, by=by))
        except InvalidSenderName as exc:
            fail(str(exc), EXIT_INVALID)
        except AlreadyPaused as exc:
            fail(str(exc), EXIT_CONFLICT)
        except ValueError as exc:  # an empty reason
            fail(str(exc), EXIT_INVALID)
    console.print(f"{pause.scope.value.capitalize()} {escape(pause.name)} paused: {escape(pause.detail)}", highlight=False)


def _standing_json(item: SenderStanding) -> dict[str, Any]:
    return {
        "scope": item.scope.value,
        "name": item.name,
        "sends": item.sends,
        "hard_bounces": item.hard_bounces,
        "rate": round(item.rate, 4),
        "paused": _pause_json(item.paused) if item.paused is not None else None,
    }


@senders_app.command("show")
def show_command(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="A mailbox address (its domain is shown too) or a domain.")],
    as_json: JsonOption = False,
) -> None:
    """Show the figures the reputation guard judges a mailbox and its domain by."""
    with open_engine(ctx) as (app, engine, _session):
        settings = app.settings().reputation
        guard = ReputationGuard(engine, settings)
        try:
            standing = asyncio.run(guard.standing(address))
        except InvalidSenderName as exc:
            fail(str(exc), EXIT_INVALID)
    if as_json:
        print(json.dumps([_standing_json(item) for item in standing], indent=2))
        return
    table = Table(title=f"Hard bounces over the last {settings.window} sends")
    for column in ("Scope", "Name", "Sends", "Hard bounces", "Rate", "Paused"):
        table.add_column(column, overflow="fold")
    for item in standing:
        paused = "no"
        if item.paused is not None:
            paused = f"since {_since(item.paused)} ({item.paused.trigger}): {item.paused.detail}"
        table.add_row(
            item.scope.value,
            escape(item.name),
            str(item.sends),
            str(item.hard_bounces),
            f"{item.rate * 100:.1f}%",
            escape(paused),
        )
    console.print(table)
    console.print(
        f"A sender pauses above {settings.hard_bounce_threshold * 100:.1f}% hard bounces with at least "
        f"{settings.min_sends} sends; only sends after its latest resume count.",
        highlight=False,
    )
