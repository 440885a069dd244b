"""``coldrelay serve``: the web app, the MX, submission, outbound delivery (and IMAP) in one process.

``--role`` splits them for several machines: ``web`` (the site and dashboard), ``edge`` (MX and
submission), ``delivery`` (workers only; run as many as you like against one PostgreSQL queue),
``all`` (the default: everything, the embedded SQLite setup of a single box).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from coldrelay.cli.context import AppContext
    from coldrelay.cli.serve_imap import ImapRunner
    from coldrelay.config import Settings
    from coldrelay.dns import Resolver
    from coldrelay.mta.delivery.service import DeliveryService
    from coldrelay.mta.edge import MXServer, SubmissionServer
    from coldrelay.mta.queue import MailQueue
    from coldrelay.mta.store.message import MessageStore

console = Console()


class Role(enum.StrEnum):
    """What one ``coldrelay serve`` process runs."""

    ALL = "all"
    WEB = "web"
    EDGE = "edge"
    DELIVERY = "delivery"


def _check_free(host: str, port: int, what: str) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        console.print(f"[red]Cannot listen on {host}:{port} for the {what}:[/red] {exc.strerror or exc}")
        raise typer.Exit(1) from None


def serve_command(
    ctx: typer.Context,
    role: Annotated[
        Role, typer.Option(help="all: everything; web: site and dashboard; edge: MX and submission; delivery: workers only.")
    ] = Role.ALL,
    host: Annotated[str | None, typer.Option(help="Address the web app listens on (default: [web] listen).")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the web app (default: [web] listen).")] = None,
    mx: Annotated[bool, typer.Option("--mx/--no-mx", help="Run the MX listener for hosted mailboxes.")] = True,
    submission: Annotated[
        bool,
        typer.Option("--submission/--no-submission", help="Run the submission listeners (STARTTLS and implicit TLS)."),
    ] = True,
    delivery: Annotated[
        bool, typer.Option("--delivery/--no-delivery", help="Run the outbound delivery workers (--no-delivery: mail waits).")
    ] = True,
    imap: Annotated[
        bool, typer.Option("--imap/--no-imap", help="Run IMAP (a private Dovecot) for the sending platforms, when installed.")
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
    """Serve the SMTP error reference, the tools, the JSON API, the MX, submission and outbound delivery."""
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
        "dns.nameservers": list(nameserver) if nameserver else None,
    }
    settings = context.apply_flags({key: value for key, value in flags.items() if value is not None})
    web = role in (Role.ALL, Role.WEB)
    mx = mx and role in (Role.ALL, Role.EDGE)
    submission = submission and role in (Role.ALL, Role.EDGE)
    delivery = delivery and role in (Role.ALL, Role.DELIVERY)
    imap = imap and settings.imap.enabled and role in (Role.ALL, Role.EDGE)
    web_host = host or settings.web.listen.host
    web_port = port if port is not None else settings.web.listen.port
    if web:
        _check_free(web_host, web_port, "web app")
    mx_address = settings.smtp.mx_listen
    starttls_listen, implicit_listen = settings.smtp.submission_listen, settings.smtp.submissions_listen
    if mx:
        _check_free(mx_address.host, mx_address.port, "MX listener")
    if submission:
        _check_free(starttls_listen.host, starttls_listen.port, "submission listener (STARTTLS)")
        _check_free(implicit_listen.host, implicit_listen.port, "submission listener (implicit TLS)")

    async def run() -> None:
        from coldrelay.cli.serve_imap import ImapRunner
        from coldrelay.cli.web_server import WebServer
        from coldrelay.config import ListenAddress, ensure_data_dir
        from coldrelay.db import create_engine, session_factory, upgrade_database
        from coldrelay.dns import Resolver
        from coldrelay.mta.queue import MailQueue
        from coldrelay.mta.tls import ensure_certificate
        from coldrelay.web.admin import AdminState, install_admin
        from coldrelay.web.tools import ToolSettings

        nameservers = list(settings.dns.nameservers) if settings.dns.nameservers else None
        try:
            resolver = Resolver(nameservers, timeout=settings.dns.timeout)
        except ValueError as exc:
            console.print(f"[red]Bad nameserver (--nameserver or [dns] nameservers):[/red] {exc}")
            raise typer.Exit(2) from None
        # Every role needs the database: the dashboard reads it, the edge and the workers share the queue.
        ensure_data_dir(context.data_dir)
        engine: Engine = create_engine(settings.database_url)
        await asyncio.to_thread(upgrade_database, engine)
        sessions = session_factory(engine)
        app = create_app(tools=ToolSettings(nameservers), pricing=settings.pricing, sessions=sessions)
        install_admin(app, AdminState(engine=engine, sessions=sessions, settings=settings, resolver=resolver))
        server = WebServer(uvicorn.Config(app, host=web_host, port=web_port, log_level="warning"))
        queue = MailQueue(engine, context.data_dir / "spool")
        listeners: list[MXServer | SubmissionServer] = []
        delivery_service: DeliveryService | None = None
        imap_service: ImapRunner | None = None
        try:
            store = _mail_store(context.data_dir, imap)
            if mx or submission or imap:
                # One certificate for every TLS listener: the configured pair, else a self-signed one.
                tls_context = await asyncio.to_thread(
                    ensure_certificate, context.data_dir, settings.hostname, settings.smtp.tls_cert, settings.smtp.tls_key
                )
            if mx or submission:
                # Spool files of enqueues that crashed before their commit: nothing of ours is in
                # flight yet (the listeners are not open), so no grace period is needed.
                await queue.recover(grace_seconds=0)
            if web:
                web_address = ListenAddress(web_host, web_port)
                console.print(f"coldrelay web app on [bold]http://{web_address}[/bold] ({len(kb)} error articles).")
            if mx:
                listeners.append(await _start_mx(settings, engine, queue, resolver, tls_context, store))
                console.print(f"MX for hosted mailboxes on [bold]{mx_address}[/bold] (data in {context.data_dir}).")
            if submission:
                listeners.extend(await _start_submission(settings, engine, queue, tls_context))
                console.print(
                    f"Submission on [bold]{starttls_listen}[/bold] (STARTTLS) and [bold]{implicit_listen}[/bold] "
                    "(implicit TLS), AUTH required."
                )
            if delivery:
                from coldrelay.mta.delivery.service import DeliveryService

                # DSNs for hosted senders go straight into their Maildirs when this process runs the
                # MX (the Maildirs are here); a delivery-only node mails them to the MX instead.
                delivery_service = DeliveryService(queue, engine, settings, resolver, store=store, local_mailboxes=mx)
                await delivery_service.start()
                console.print(
                    f"Outbound delivery: up to {settings.delivery.concurrency} messages at once, "
                    f"worker [bold]{delivery_service.owner}[/bold]."
                )
            elif role is Role.ALL:
                console.print("Outbound delivery is off (--no-delivery): submitted mail waits in the queue.")
            if imap:
                imap_service = await ImapRunner.start(settings, engine, console)
            elif role in (Role.ALL, Role.EDGE):
                console.print("IMAP is off (--no-imap or [imap] enabled = false).")
            console.print("Ctrl-C stops it.")
            if web:
                await server.serve()
            else:
                await _wait_for_signal()
        finally:
            if imap_service is not None:
                await imap_service.stop()
            if delivery_service is not None:
                await delivery_service.stop()
                stats = delivery_service.worker.stats
                console.print(
                    f"Delivery worker {delivery_service.owner} stopped after {stats.tries} tries: "
                    f"{stats.delivered} delivered, {stats.deferred} deferred, {stats.bounced} bounced."
                )
            for listener in listeners:
                await listener.stop()
            await queue.close()
            engine.dispose()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how one stops it
        asyncio.run(run())


async def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM (the web server does this itself when it runs)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _mail_store(data_dir: Path, imap: bool) -> MessageStore:
    """Where inbound mail and DSNs are written: Maildirs owned by the user Dovecot reads them as,
    when IMAP runs (as root that is not root; see coldrelay.mta.imap), else plain Maildirs."""
    from coldrelay.mta.imap import OwnedMaildirStore, dovecot_available, mail_owner
    from coldrelay.mta.store import MaildirStore

    if imap and dovecot_available():
        return OwnedMaildirStore(data_dir, mail_owner())
    return MaildirStore(data_dir)


async def _start_mx(
    settings: Settings,
    engine: Engine,
    queue: MailQueue,
    resolver: Resolver,
    tls_context: ssl.SSLContext,
    store: MessageStore,
) -> MXServer:
    """Listen for inbound mail: SPF/DKIM/DMARC recorded in Authentication-Results, bounces linked to
    the queued message they answer, then stored in each mailbox's Maildir."""
    from coldrelay.db import session_factory
    from coldrelay.mta.checks import AuthenticationStep, BounceStep, QueueHeaderLocator
    from coldrelay.mta.checks.pipeline import PipelineStep
    from coldrelay.mta.edge import DatabaseDirectory, MXLimits, start_mx

    directory = DatabaseDirectory(session_factory(engine))
    pipeline: list[PipelineStep] = [
        AuthenticationStep(resolver, settings.hostname),
        BounceStep(engine, QueueHeaderLocator(queue)),
    ]
    limits = MXLimits.from_settings(settings.limits)
    listen = settings.smtp.mx_listen
    return await start_mx(
        listen.host, listen.port, directory, store, limits, hostname=settings.hostname, tls_context=tls_context, pipeline=pipeline
    )


async def _start_submission(
    settings: Settings, engine: Engine, queue: MailQueue, tls_context: ssl.SSLContext
) -> list[SubmissionServer]:
    """Both submission listeners over one queue (``<data-dir>/spool``), one signer, shared AUTH throttling,
    and the reputation guard's pauses checked at MAIL FROM."""
    from coldrelay.db import session_factory
    from coldrelay.mta.delivery.reputation import ReputationGuard
    from coldrelay.mta.dkim import DkimSigner
    from coldrelay.mta.edge import DatabaseAccounts, SubmissionGuards, SubmissionLimits, start_submission

    pauses = ReputationGuard(engine, settings.reputation)
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
                    pauses=pauses,
                )
            )
    except BaseException:
        for server in servers:
            await server.stop()
        raise
    return servers
