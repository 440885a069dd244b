"""``coldrelay queue``: look at the outbound queue and steer it (list, show, retry, delete, flush).

Every change goes through ``MailQueue``, one short transaction each, so the queue's own rules
(which states may be retried, spool file after row on delete) hold here too, and the command never
keeps a write transaction open on SQLite: the delivery workers and the listeners keep writing while
a person reads a listing or thinks about a ``delete`` prompt.

Exit codes follow ``cli/context.py``: 2 for an unknown message id or a bad option, 1 when the
message is in a state the request does not apply to.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from coldrelay.cli.context import EXIT_CONFLICT, EXIT_INVALID, AppContext, app_context, fail
from coldrelay.db import DeliveryLog, MessageState, QueuedMessage
from coldrelay.mta.queue import HELD_UNTIL, MailQueue, QueueEntry, QueueState, SpoolError, UnknownMessage, WrongState

console = Console()
queue_app = typer.Typer(help="The outbound queue: list, show, retry, delete and flush messages.", no_args_is_help=True)

PENDING = (QueueState.QUEUED, QueueState.LEASED, QueueState.DEFERRED, QueueState.HELD)
SHOWN_HEADERS = ("From", "To", "Subject", "Message-ID")
_ID_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


class StateChoice(enum.StrEnum):
    """``--state`` values (the queue's states, ``held`` included)."""

    QUEUED = "queued"
    DEFERRED = "deferred"
    HELD = "held"
    LEASED = "leased"
    DELIVERED = "delivered"
    BOUNCED = "bounced"


IdArgument = Annotated[str, typer.Argument(help="The message's queue id, as 'coldrelay queue list' shows it.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def open_engine(ctx: typer.Context) -> Iterator[tuple[AppContext, Engine, Session]]:
    """The invocation's context, the engine and a read session, with the database brought up to date.

    Built on ``AppContext.session`` so that a bad ``database_url`` or an unreachable database ends
    in the same one-line errors as every other admin command. The session only reads; writes go
    through ``MailQueue`` (or the reputation guard) in transactions of their own.
    """
    app = app_context(ctx)
    with app.session() as session:
        bind = session.get_bind()
        if not isinstance(bind, Engine):  # pragma: no cover - AppContext always binds an engine
            fail("The database session is not bound to an engine.")
        yield app, bind, session


def _queue(app: AppContext, engine: Engine) -> MailQueue:
    return MailQueue(engine, app.settings().data_dir / "spool")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _short(text: str | None, width: int = 60) -> str:
    one_line = " ".join((text or "").split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def _counts(session: Session) -> dict[str, int]:
    """Messages per reported state, every state present (held counted apart from deferred)."""
    held = QueuedMessage.next_attempt_at >= HELD_UNTIL
    rows = session.execute(
        select(QueuedMessage.state, held.label("held"), func.count()).group_by(QueuedMessage.state, held)
    ).all()
    counts = {state.value: 0 for state in QueueState}
    for state, is_held, count in rows:
        key = QueueState.HELD if state is MessageState.DEFERRED and is_held else QueueState(state.value)
        counts[key.value] += count
    return counts


def _tries(session: Session, ids: Sequence[str]) -> dict[str, tuple[int, str | None]]:
    """``tries`` and ``last_error`` of the given messages (``QueueEntry`` does not carry them)."""
    found: dict[str, tuple[int, str | None]] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        query = select(QueuedMessage.id, QueuedMessage.tries, QueuedMessage.last_error).where(QueuedMessage.id.in_(chunk))
        for row in session.execute(query):
            found[row.id] = (row.tries, row.last_error)
    return found


def _entry_json(entry: QueueEntry, tries: int, last_error: str | None) -> dict[str, Any]:
    return {
        "id": entry.id,
        "sender": entry.sender,
        "recipients": entry.recipients,
        "state": entry.state.value,
        "tries": tries,
        "crashes": entry.attempts,
        "next_attempt_at": _iso(entry.next_attempt_at),
        "last_error": last_error,
        "lease_owner": entry.lease_owner,
        "lease_expires_at": _iso(entry.lease_expires_at),
        "created_at": _iso(entry.created_at),
    }


def _summary(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = [f"{count} {state}" for state, count in counts.items() if count]
    return f"{total} message{'s' if total != 1 else ''} in the queue" + (": " + ", ".join(parts) if parts else "")


@queue_app.command("list")
def list_command(
    ctx: typer.Context,
    state: Annotated[
        StateChoice | None,
        typer.Option("--state", help="Only messages in this state. Default: every message not yet delivered or bounced."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Show at most this many (oldest first); 0 shows all.")] = 200,
    as_json: JsonOption = False,
) -> None:
    """List queued messages with their state, tries, next attempt and last error."""
    with open_engine(ctx) as (app, engine, session):
        queue = _queue(app, engine)
        if state is not None:
            entries = asyncio.run(queue.list(QueueState(state.value)))
        else:
            entries = [e for e in asyncio.run(queue.list()) if e.state in PENDING]
        matching = len(entries)
        if limit:
            entries = entries[:limit]
        tries = _tries(session, [entry.id for entry in entries])
        counts = _counts(session)
    if as_json:
        messages = [_entry_json(entry, *tries.get(entry.id, (0, None))) for entry in entries]
        print(json.dumps({"counts": counts, "matching": matching, "messages": messages}, indent=2))
        return
    if not entries:
        what = f"in state {state.value}" if state is not None else "waiting for delivery"
        console.print(f"No messages {what}. {_summary(counts)}.", highlight=False)
        return
    table = Table(
        title=f"{matching} message{'s' if matching != 1 else ''}"
        + (f", first {len(entries)} shown" if len(entries) < matching else "")
    )
    for column in ("ID", "Sender", "Recipients", "State", "Tries", "Next attempt (UTC)", "Last error"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        count, last_error = tries.get(entry.id, (0, None))
        recipients = entry.recipients[0] + (f" +{len(entry.recipients) - 1}" if len(entry.recipients) > 1 else "")
        next_attempt = _when(entry.next_attempt_at) if entry.state in (QueueState.QUEUED, QueueState.DEFERRED) else ""
        table.add_row(
            entry.id,
            escape(entry.sender or "<>"),
            escape(recipients),
            entry.state.value,
            str(count),
            next_attempt,
            escape(_short(last_error)),
        )
    console.print(table)
    console.print(_summary(counts) + ".", highlight=False)


def _decoded(value: str | None) -> str:
    if value is None:
        return ""
    try:
        return " ".join(str(make_header(decode_header(value))).split())
    except (ValueError, LookupError, UnicodeError):
        return " ".join(value.split())


def _headers(data: bytes) -> dict[str, str]:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head)
    return {name: _decoded(parsed.get(name)) for name in SHOWN_HEADERS if parsed.get(name) is not None}


def _delivery_json(row: DeliveryLog) -> dict[str, Any]:
    return {
        "at": _iso(row.at),
        "attempt": row.attempt,
        "recipient": row.recipient,
        "source": row.source.value,
        "outcome": row.outcome.value if row.outcome is not None else None,
        "hard_bounce": row.hard_bounce,
        "remote_host": row.remote_host,
        "reply_code": row.reply_code,
        "enhanced_code": row.enhanced_code,
        "reply_text": row.reply_text,
        "reason": row.reason,
        "provider": row.provider,
        "article": row.article,
        "tls_version": row.tls_version,
    }


def _reply(row: DeliveryLog) -> str:
    codes = " ".join(part for part in (str(row.reply_code or ""), row.enhanced_code or "") if part)
    text = " ".join((row.reply_text or "").split())
    return text if text.startswith(codes) else f"{codes} {text}".strip()


@queue_app.command("show")
def show_command(ctx: typer.Context, message_id: IdArgument, as_json: JsonOption = False) -> None:
    """Show one message: its queue entry, its headers and every delivery-log row."""
    note = ""
    with open_engine(ctx) as (app, engine, session):
        queue = _queue(app, engine)
        entry = asyncio.run(queue.get(message_id))
        if entry is None:
            fail(f"No message with id {message_id} in the queue.", EXIT_INVALID)
        try:
            headers = _headers(asyncio.run(queue.read(message_id)))
        except (SpoolError, UnknownMessage) as exc:
            headers, note = {}, f"The message itself cannot be read: {exc}"
        tries, last_error = _tries(session, [message_id]).get(message_id, (0, None))
        rows = list(session.scalars(select(DeliveryLog).where(DeliveryLog.message_id == message_id).order_by(DeliveryLog.id)))
    if as_json:
        document = {
            "message": _entry_json(entry, tries, last_error),
            "headers": headers,
            "deliveries": [_delivery_json(r) for r in rows],
        }
        print(json.dumps(document, indent=2))
        return
    facts = [
        ("ID", entry.id),
        ("State", entry.state.value),
        ("Sender", entry.sender or "<> (a notification)"),
        ("Recipients", ", ".join(entry.recipients)),
        ("Queued at (UTC)", _when(entry.created_at)),
        ("Tries", str(tries)),
        ("Next attempt (UTC)", _when(entry.next_attempt_at) if entry.state in (QueueState.QUEUED, QueueState.DEFERRED) else ""),
        ("Last error", " ".join((last_error or "").split())),
    ]
    if entry.state is QueueState.LEASED:
        facts.append(("Leased by", f"{entry.lease_owner} until {_when(entry.lease_expires_at)}"))
    if entry.attempts:
        facts.append(("Crashed workers", str(entry.attempts)))
    facts += [(name, value) for name, value in headers.items()]
    for name, value in facts:
        if value:
            console.print(f"[bold]{name}:[/bold] {escape(value)}", highlight=False, soft_wrap=True)
    if note:
        console.print(f"[yellow]{escape(note)}[/yellow]", highlight=False)
    if not rows:
        console.print("No delivery attempts yet.")
        return
    table = Table(title=f"{len(rows)} delivery-log row{'s' if len(rows) != 1 else ''}")
    for column in ("At (UTC)", "Try", "Recipient", "Outcome", "Reply", "Reason", "Provider", "Article"):
        table.add_column(column, overflow="fold")
    for row in rows:
        outcome = row.outcome.value if row.outcome is not None else ""
        if row.source.value != "attempt":
            outcome = f"{outcome} (bounce email)"
        if row.hard_bounce:
            outcome += ", hard"
        table.add_row(
            _when(row.at),
            str(row.attempt),
            escape(row.recipient),
            outcome,
            escape(_reply(row)),
            row.reason or "",
            row.provider or "",
            escape(row.article or ""),
        )
    console.print(table)
    articles = sorted({row.article for row in rows if row.article})
    for slug in articles:
        console.print(f"How to fix: coldrelay errors show {escape(slug)}", highlight=False)


@queue_app.command("retry")
def retry_command(ctx: typer.Context, message_id: IdArgument) -> None:
    """Make a queued, deferred or held message due now (a held one starts with a clean crash count)."""
    with open_engine(ctx) as (app, engine, _session):
        try:
            asyncio.run(_queue(app, engine).retry(message_id))
        except UnknownMessage:
            fail(f"No message with id {message_id} in the queue.", EXIT_INVALID)
        except WrongState as exc:
            fail(str(exc), EXIT_CONFLICT)
    console.print(f"Message {message_id} is due now; a delivery worker picks it up shortly.", highlight=False)


@queue_app.command("delete")
def delete_command(
    ctx: typer.Context,
    message_id: IdArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
) -> None:
    """Remove a message from the queue for good, in any state (it is not delivered, nor bounced)."""
    with open_engine(ctx) as (app, engine, _session):
        queue = _queue(app, engine)
        entry = asyncio.run(queue.get(message_id))
        if entry is None:
            fail(f"No message with id {message_id} in the queue.", EXIT_INVALID)
        if not yes:
            # Asked with no transaction open: the workers keep writing while a person makes up their mind.
            busy = " It is being delivered right now." if entry.state is QueueState.LEASED else ""
            question = (
                f"Delete message {entry.id} from {entry.sender or '<>'} to {len(entry.recipients)} "
                f"recipient{'s' if len(entry.recipients) != 1 else ''} ({entry.state.value})?{busy}"
            )
            if not typer.confirm(question, default=False):
                console.print("Nothing deleted.")
                raise typer.Exit(EXIT_CONFLICT)
        try:
            asyncio.run(queue.delete(message_id))
        except UnknownMessage:
            fail(f"Message {message_id} is already gone from the queue.", EXIT_CONFLICT)
    console.print(f"Message {message_id} deleted.", highlight=False)


@queue_app.command("flush")
def flush_command(ctx: typer.Context) -> None:
    """Make every deferred message due now (held messages stay held: retry them one by one)."""
    with open_engine(ctx) as (app, engine, _session):
        count = asyncio.run(_queue(app, engine).flush())
    console.print(f"{count} deferred message{'s are' if count != 1 else ' is'} due now.", highlight=False)
