"""``coldrelay serve``: the web app, the MX and the submission listeners in one process.

Outbound delivery (the relay workers) joins in a later release; until then serve says so
instead of pretending, and submitted mail waits in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from coldrelay.cli.context import AppContext
    from coldrelay.dns import Resolver
    from coldrelay.mta.edge import MXServer, SubmissionServer
    from coldrelay.mta.queue import MailQueue

console = Console()


def _check_free(host: str, port: int, what: str) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        console.print(f"[red]Cannot listen on {host}:{port} for the {what}:[/red] {exc.strerror or exc}")
        raise typer.Exit(1) from None


def serve_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address the web app listens on (default: [web] listen).")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the web app (default: [web] listen).")] = None,
    mx: Annotated[bool, typer.Option("--mx/--no-mx", help="Run the MX listener for hosted mailboxes.")] = True,
    submission: Annotated[
        bool,
        typer.Option("--submission/--no-submission", help="Run the submission listeners (STARTTLS and implicit TLS)."),
    ] = True,
    hostname: Annotated[str | None, typer.Option(help="The mail host's name (default: hostname in coldrelay.toml).")] = None,
    mx_listen: Annotated[str | None, typer.Option(help="HOST:PORT of the MX (default: [smtp] mx_listen).")] = None,
    submission_listen: Annotated[
        str | None, typer.Option(help="HOST:PORT of STARTTLS submission (default: [smtp] submission_listen).")
    ] = None,
    submissions_listen: Annotated[
        str | None, typer.Option(help="HOST:PORT of implicit-TLS submission (default: [smtp] submissions_listen).")
    ] = None,
    tls_cert: Annotated[str | None, typer.Option(help="TLS certificate (PEM) for the SMTP listeners.")] = None,
    tls_key: Annotated[str | None, typer.Option(help="TLS private key (PEM) matching --tls-cert.")] = None,
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            "--nameserver",
            help="Nameserver (IP or IP:PORT, repeatable) for the inbound SPF/DKIM/DMARC checks and the tools; "
            "default: the system's.",
        ),
    ] = None,
) -> None:
    """Serve the SMTP error reference, the tools, the JSON API, the MX and submission for hosted mailboxes."""
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
    flags: dict[str, object] = {
        "hostname": hostname,
        "smtp.mx_listen": mx_listen,
        "smtp.submission_listen": submission_listen,
        "smtp.submissions_listen": submissions_listen,
        "smtp.tls_cert": str(Path(tls_cert).absolute()) if tls_cert else None,
        "smtp.tls_key": str(Path(tls_key).absolute()) if tls_key else None,
    }
    settings = context.apply_flags({key: value for key, value in flags.items() if value is not None})
    web_host = host or settings.web.listen.host
    web_port = port if port is not None else settings.web.listen.port
    _check_free(web_host, web_port, "web app")
    mx_address = settings.smtp.mx_listen
    starttls_listen, implicit_listen = settings.smtp.submission_listen, settings.smtp.submissions_listen
    if mx:
        _check_free(mx_address.host, mx_address.port, "MX listener")
    if submission:
        _check_free(starttls_listen.host, starttls_listen.port, "submission listener (STARTTLS)")
        _check_free(implicit_listen.host, implicit_listen.port, "submission listener (implicit TLS)")

    async def run() -> None:
        from coldrelay.config import ListenAddress, ensure_data_dir
        from coldrelay.db import create_engine, upgrade_database
        from coldrelay.dns import Resolver
        from coldrelay.mta.queue import MailQueue
        from coldrelay.mta.tls import ensure_certificate
        from coldrelay.web.tools import ToolSettings

        try:
            resolver = Resolver(nameserver or None)
        except ValueError as exc:
            console.print(f"[red]Bad --nameserver:[/red] {exc}")
            raise typer.Exit(2) from None
        app = create_app(tools=ToolSettings(nameserver or None))
        server = uvicorn.Server(uvicorn.Config(app, host=web_host, port=web_port, log_level="warning"))
        engine: Engine | None = None
        queue: MailQueue | None = None
        listeners: list[MXServer | SubmissionServer] = []
        try:
            if mx or submission:
                ensure_data_dir(context.data_dir)
                engine = create_engine(settings.database_url)
                await asyncio.to_thread(upgrade_database, engine)
                queue = MailQueue(engine, context.data_dir / "spool")
                # One certificate for every SMTP listener: the configured pair, else a self-signed one.
                tls_context = await asyncio.to_thread(
                    ensure_certificate, context.data_dir, settings.hostname, settings.smtp.tls_cert, settings.smtp.tls_key
                )
                # Spool files of enqueues that crashed before their commit: nothing of ours is in
                # flight yet (the listeners are not open), so no grace period is needed.
                await queue.recover(grace_seconds=0)
            web_address = ListenAddress(web_host, web_port)
            console.print(f"coldrelay web app on [bold]http://{web_address}[/bold] ({len(kb)} error articles).")
            if mx and engine is not None and queue is not None:
                listeners.append(await _start_mx(context, engine, queue, resolver, tls_context, mx_address.host, mx_address.port))
                console.print(f"MX for hosted mailboxes on [bold]{mx_address}[/bold] (data in {context.data_dir}).")
            if submission and engine is not None and queue is not None:
                listeners.extend(await _start_submission(context, engine, queue, tls_context))
                console.print(
                    f"Submission on [bold]{starttls_listen}[/bold] (STARTTLS) and [bold]{implicit_listen}[/bold] "
                    "(implicit TLS), AUTH required."
                )
            console.print(
                "Outbound delivery is not part of this release yet: submitted mail waits in the queue. Ctrl-C stops it."
            )
            await server.serve()
        finally:
            for listener in listeners:
                await listener.stop()
            if queue is not None:
                await queue.close()
            if engine is not None:
                engine.dispose()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how one stops it
        asyncio.run(run())


async def _start_mx(
    context: AppContext, engine: Engine, queue: MailQueue, resolver: Resolver, tls_context: ssl.SSLContext, host: str, port: int
) -> MXServer:
    """Listen for inbound mail: SPF/DKIM/DMARC recorded in Authentication-Results, bounces linked to
    the queued message they answer, then stored in each mailbox's Maildir."""
    from coldrelay.db import session_factory
    from coldrelay.mta.checks import AuthenticationStep, BounceStep, QueueHeaderLocator
    from coldrelay.mta.checks.pipeline import PipelineStep
    from coldrelay.mta.edge import DatabaseDirectory, MXLimits, start_mx
    from coldrelay.mta.store import MaildirStore

    settings = context.settings()
    directory = DatabaseDirectory(session_factory(engine))
    store = MaildirStore(context.data_dir)
    pipeline: list[PipelineStep] = [
        AuthenticationStep(resolver, settings.hostname),
        BounceStep(engine, QueueHeaderLocator(queue)),
    ]
    limits = MXLimits.from_settings(settings.limits)
    return await start_mx(
        host, port, directory, store, limits, hostname=settings.hostname, tls_context=tls_context, pipeline=pipeline
    )


async def _start_submission(
    context: AppContext, engine: Engine, queue: MailQueue, tls_context: ssl.SSLContext
) -> list[SubmissionServer]:
    """Both submission listeners over one queue (``<data-dir>/spool``), one signer and shared AUTH throttling."""
    from coldrelay.db import session_factory
    from coldrelay.mta.dkim import DkimSigner
    from coldrelay.mta.edge import DatabaseAccounts, SubmissionGuards, SubmissionLimits, start_submission

    settings = context.settings()
    sessions = session_factory(engine)
    limits = SubmissionLimits.from_settings(settings.limits)
    accounts, signer, guards = DatabaseAccounts(sessions), DkimSigner(sessions), SubmissionGuards(limits)
    servers: list[SubmissionServer] = []
    try:
        for listen, implicit_tls in ((settings.smtp.submission_listen, False), (settings.smtp.submissions_listen, True)):
            servers.append(
                await start_submission(
                    listen.host,
                    listen.port,
                    implicit_tls=implicit_tls,
                    tls_context=tls_context,
                    accounts=accounts,
                    queue=queue,
                    signer=signer,
                    limits=limits,
                    hostname=settings.hostname,
                    guards=guards,
                )
            )
    except BaseException:
        for server in servers:
            await server.stop()
        raise
    return servers
