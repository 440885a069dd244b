"""``coldrelay serve``: run the web app (the mail listeners join it in later releases)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def serve_command(
    host: Annotated[str, typer.Option(help="Address the web app listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the web app.")] = 8080,
) -> None:
    """Serve the SMTP error reference, the diagnoser and the JSON API."""
    import uvicorn

    from coldrelay.errors import default_knowledge_base
    from coldrelay.errors.entry import EntryError
    from coldrelay.web import create_app

    try:
        kb = default_knowledge_base()
    except EntryError as exc:
        console.print(f"[red]The knowledge base did not load:[/red] {exc}")
        raise typer.Exit(1) from None
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        console.print(f"[red]Cannot listen on {host}:{port}:[/red] {exc.strerror or exc}")
        raise typer.Exit(1) from None
    shown_host = f"[{host}]" if ":" in host else host
    console.print(f"coldrelay web app on [bold]http://{shown_host}:{port}[/bold] ({len(kb)} error articles). Ctrl-C stops it.")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
