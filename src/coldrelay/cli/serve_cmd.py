"""``coldrelay serve``: the web app and the MX listener in one process.

Submission (587/465) and the delivery workers join in later releases; until
then serve says so instead of pretending.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from coldrelay.cli.context import AppContext
    from coldrelay.mta.edge import MXServer

console = Console()


def _check_free(host: str, port: int, what: str) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        console.print(f"[red]Cannot listen on {host}:{port} for the {what}:[/red] {exc.strerror or exc}")
        raise typer.Exit(1) from None


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address the web app listens on (default: [web] listen).")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the web app (default: [web] listen).")] = None,
    mx: Annotated[bool, typer.Option("--mx/--no-mx", help="Run the MX listener for hosted mailboxes.")] = True,
) -> None:
    """Serve the SMTP error reference, the tools, the JSON API and the MX for hosted mailboxes."""
    import uvicorn

    from coldrelay.errors import default_knowledge_base
    from coldrelay.errors.entry import EntryError
    from coldrelay.web import create_app

    try:
        kb = default_knowledge_base()
    except EntryError as exc:
        console.print(f"[red]The knowledge base did not load:[/red] {exc}")
        raise typer.Exit(1) from None
    context: AppContext = ctx.obj
    settings = context.settings()
    web_host = host or settings.web.listen.host
    web_port = port if port is not None else settings.web.listen.port
    _check_free(web_host, web_port, "web app")
    mx_host, mx_port = settings.smtp.mx_listen.host, settings.smtp.mx_listen.port
    if mx:
        _check_free(mx_host, mx_port, "MX listener")

    async def run() -> None:
        server = uvicorn.Server(uvicorn.Config(create_app(), host=web_host, port=web_port, log_level="warning"))
        listener = await _start_mx(context, mx_host, mx_port) if mx else None
        console.print(f"coldrelay web app on [bold]http://{_shown(web_host, web_port)}[/bold] ({len(kb)} error articles).")
        if listener is not None:
            console.print(f"MX for hosted mailboxes on [bold]{_shown(mx_host, mx_port)}[/bold] (data in {context.data_dir}).")
        console.print("Submission and outbound delivery are not part of this release yet. Ctrl-C stops it.")
        try:
            await server.serve()
        finally:
            if listener is not None:
                await listener.stop()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how one stops it
        asyncio.run(run())


async def _start_mx(context: AppContext, host: str, port: int) -> MXServer:
    """Bring the database up to date and listen for inbound mail, stored in each mailbox's Maildir."""
    from coldrelay.config import ensure_data_dir
    from coldrelay.db import create_engine, session_factory, upgrade_database
    from coldrelay.mta.edge import DatabaseDirectory, MXLimits, start_mx
    from coldrelay.mta.store import MaildirStore

    settings = context.settings()
    ensure_data_dir(context.data_dir)
    engine = create_engine(settings.database_url)
    await asyncio.to_thread(upgrade_database, engine)
    directory = DatabaseDirectory(session_factory(engine))
    store = MaildirStore(context.data_dir)
    return await start_mx(host, port, directory, store, MXLimits.from_settings(settings.limits), hostname=settings.hostname)
