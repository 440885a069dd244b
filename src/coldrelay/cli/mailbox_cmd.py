"""``coldrelay mailbox``: the mailboxes a sending platform logs in as, one at a time or in bulk.

Passwords are stored only as argon2id hashes. A password is therefore shown or exported only
by the run that creates or resets it: ``add`` and ``passwd`` print a generated one once, and
``bulk``/``export`` write them to a new owner-only file before committing, so a failed write
leaves no mailbox whose password nobody has.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from coldrelay.cli.context import EXIT_CONFLICT, EXIT_INVALID, AppContext, app_context, err_console, fail
from coldrelay.config import Settings
from coldrelay.db import AccountError, AlreadyExists, InvalidName, UnknownDomain, create_mailbox, get_domain, list_mailboxes
from coldrelay.db.accounts import MailboxBusy, UnknownMailbox, remove_mailbox, set_mailbox_enabled, set_password
from coldrelay.provision.export import (
    ExportEndpoints,
    ExportError,
    ExportFormat,
    MailboxCredentials,
    write_export,
    write_export_file,
)
from coldrelay.provision.mailboxes import (
    DEFAULT_PATTERNS,
    NewMailbox,
    Pattern,
    create_planned,
    generate_password,
    normalize_domains,
    plan_for_session,
    read_names_file,
    reset_passwords,
)

console = Console()
mailbox_app = typer.Typer(help="Mailboxes of the hosted domains.", no_args_is_help=True)

# Options shared by every command that can write an export.
ExportFile = Annotated[
    Path | None,
    typer.Option("--export", dir_okay=False, help="Write a CSV with the new password(s) here (a new file, mode 0600)."),
]
FormatOption = Annotated[ExportFormat, typer.Option("--format", case_sensitive=False, help="Export layout.")]
SmtpHost = Annotated[str | None, typer.Option("--smtp-host", help="SMTP host in the export (default: box.<domain>).")]
SmtpPort = Annotated[int | None, typer.Option("--smtp-port", help="SMTP port in the export (default: 587, STARTTLS).")]
ImapHost = Annotated[str | None, typer.Option("--imap-host", help="IMAP host in the export (default: box.<domain>).")]
ImapPort = Annotated[int | None, typer.Option("--imap-port", help="IMAP port in the export (default: 993, TLS).")]
PasswordOption = Annotated[
    str | None,
    typer.Option("--password", help="The SMTP login password (8+ characters). Default: a random one, shown once."),
]
AskPassword = Annotated[bool, typer.Option("--ask-password", help="Type the password at a hidden prompt instead.")]
DailyLimit = Annotated[
    int | None, typer.Option("--daily-limit", min=0, help="Messages per day for the mailbox (default: limits.daily_cap).")
]

_CONFLICTS = (AlreadyExists, UnknownDomain, UnknownMailbox, MailboxBusy)


def _fail_for(exc: Exception) -> NoReturn:
    """One line and the exit code: 1 for a clash with what exists, 2 for what was typed."""
    fail(str(exc), EXIT_CONFLICT if isinstance(exc, _CONFLICTS) else EXIT_INVALID)


def _endpoints(
    settings: Settings, smtp_host: str | None, smtp_port: int | None, imap_host: str | None, imap_port: int | None
) -> ExportEndpoints:
    try:
        return ExportEndpoints.from_settings(
            settings, smtp_host=smtp_host, smtp_port=smtp_port, imap_host=imap_host, imap_port=imap_port
        )
    except ExportError as exc:
        _fail_for(exc)


def _check_new_file(path: Path | None) -> None:
    """Refuse an existing export file before anything changes (the write itself refuses again, atomically)."""
    if path is not None and path.exists():
        fail(f"{path} exists already; it may hold passwords in use, so give a new file name", EXIT_INVALID)


def _credentials(created: Sequence[NewMailbox], default_cap: int) -> list[MailboxCredentials]:
    return [
        MailboxCredentials(
            item.address, item.display_name, item.password, item.daily_cap if item.daily_cap is not None else default_cap
        )
        for item in created
    ]


class _ExportTransaction:
    """The command's session, and the export files written inside its transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.written: list[Path] = []

    def write(self, path: Path, fmt: ExportFormat, items: Sequence[MailboxCredentials], endpoints: ExportEndpoints) -> None:
        try:
            write_export_file(path, fmt, items, endpoints)
        except ExportError as exc:
            _fail_for(exc)
        self.written.append(path)


@contextmanager
def _export_transaction(app: AppContext) -> Iterator[_ExportTransaction]:
    """A session whose export files are removed again if the transaction does not commit.

    The files are written inside the transaction, before the commit; if the commit fails their
    passwords match nothing, and a file of wrong passwords is worse than none. Only files this
    run created are removed, never one that was there before.
    """
    transaction: _ExportTransaction | None = None
    try:
        with app.session() as session:
            transaction = _ExportTransaction(session)
            yield transaction
    except BaseException:
        for path in transaction.written if transaction is not None else []:
            path.unlink(missing_ok=True)
        raise


def _warn_imap(endpoints: ExportEndpoints) -> None:
    if not endpoints.imap_enabled:
        err_console.print(
            "Note: IMAP is off (imap.enabled = false); the platforms test IMAP when they import a mailbox "
            "and will report these as failing until it is on.",
            highlight=False,
        )


def _choose_password(password: str | None, ask: bool) -> tuple[str, bool]:
    """The password to set and whether it was generated here (and so must be shown once)."""
    if password is not None and ask:
        fail("Give --password or --ask-password, not both.", EXIT_INVALID)
    if ask:
        typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return typed, False
    if password is not None:
        return password, False
    return generate_password(), True


def _show_generated(address: str, password: str) -> None:
    console.print(
        f"Password for {address} (shown only now; only its hash is stored): [bold]{escape(password)}[/bold]",
        highlight=False,
        soft_wrap=True,
    )


@mailbox_app.command("add")
def add_command(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The mailbox address, e.g. anna@example.com; its domain must be added first.")],
    password: PasswordOption = None,
    ask_password: AskPassword = False,
    name: Annotated[str | None, typer.Option("--name", help='Display name, e.g. "Anna Berg".')] = None,
    daily_limit: DailyLimit = None,
    export: ExportFile = None,
    fmt: FormatOption = ExportFormat.CSV,
    smtp_host: SmtpHost = None,
    smtp_port: SmtpPort = None,
    imap_host: ImapHost = None,
    imap_port: ImapPort = None,
) -> None:
    """Add a mailbox at a hosted domain (a random password, shown once, unless you give one)."""
    app = app_context(ctx)
    settings = app.settings()
    default_cap = settings.limits.daily_cap
    endpoints = _endpoints(settings, smtp_host, smtp_port, imap_host, imap_port)
    _check_new_file(export)
    secret, generated = _choose_password(password, ask_password)
    with _export_transaction(app) as transaction:
        session = transaction.session
        try:
            mailbox = create_mailbox(session, address, secret, display_name=name, daily_cap=daily_limit)
        except AccountError as exc:  # a bad address, unknown domain, duplicate, short password, negative cap
            _fail_for(exc)
        created = mailbox.address
        cap = mailbox.daily_cap
        if export is not None:
            row = NewMailbox(created, mailbox.display_name, secret, cap)
            transaction.write(export, fmt, _credentials([row], default_cap), endpoints)
    shown_cap = f"{cap} messages/day" if cap is not None else f"{default_cap} messages/day (the default)"
    console.print(f"Mailbox [bold]{created}[/bold] added, daily cap {shown_cap}.", highlight=False)
    if generated:
        _show_generated(created, secret)
    if export is not None:
        console.print(f"Login details written to {export} ({fmt.value} format).", highlight=False)
        _warn_imap(endpoints)


@mailbox_app.command("bulk")
def bulk_command(
    ctx: typer.Context,
    domains: Annotated[str, typer.Option("--domains", help="Hosted domains, comma-separated: d1.com,d2.com")],
    names: Annotated[Path, typer.Option("--names", dir_okay=False, help='A UTF-8 file with one "First Last" per line.')],
    per_domain: Annotated[int, typer.Option("--per-domain", help="Mailboxes to create at each domain.")],
    patterns: Annotated[
        list[Pattern] | None,
        typer.Option("--pattern", case_sensitive=False, help="Address patterns to try, in order (repeat it). Default: all."),
    ] = None,
    daily_limit: DailyLimit = None,
    export: ExportFile = None,
    fmt: FormatOption = ExportFormat.CSV,
    smtp_host: SmtpHost = None,
    smtp_port: SmtpPort = None,
    imap_host: ImapHost = None,
    imap_port: ImapPort = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the addresses it would create, change nothing.")] = False,
) -> None:
    """Create mailboxes for a list of people across several domains, with random passwords in an export.

    Names are dealt across the domains in file order (back to the top when the list runs out);
    for each name the patterns are tried in order until an address is free. Existing addresses
    are skipped and listed. All mailboxes are created in one transaction, or none.
    """
    app = app_context(ctx)
    settings = app.settings()
    if export is None and not dry_run:
        fail("--export FILE is required: the generated passwords exist only in that file.", EXIT_INVALID)
    endpoints = _endpoints(settings, smtp_host, smtp_port, imap_host, imap_port)
    _check_new_file(None if dry_run else export)
    try:
        domain_names = normalize_domains(domains.split(","))
        people = read_names_file(names)
    except AccountError as exc:
        _fail_for(exc)
    started = time.perf_counter()
    with _export_transaction(app) as transaction:
        session = transaction.session
        for domain in domain_names:
            if get_domain(session, domain) is None:
                fail(f"The domain {domain} is not hosted here; add it first with: coldrelay domain add {domain}")
        try:
            plan = plan_for_session(session, domain_names, people, per_domain, patterns or DEFAULT_PATTERNS)
        except AccountError as exc:
            _fail_for(exc)
        if plan.skipped_existing:
            shown = ", ".join(plan.skipped_existing[:10]) + (" ..." if len(plan.skipped_existing) > 10 else "")
            console.print(f"Skipped {len(plan.skipped_existing)} existing address(es): {shown}", highlight=False, soft_wrap=True)
        if plan.shortfall:
            short = "; ".join(f"{domain}: {missing} short" for domain, missing in plan.shortfall.items())
            fail(
                f"Not enough free addresses ({short}); add names to the file or --pattern values. Nothing was created.",
                EXIT_INVALID,
            )
        if dry_run:
            for item in plan.planned:
                console.print(f"{item.address}  {item.name.display}", highlight=False)
            console.print(f"Would create {len(plan.planned)} mailboxes (dry run, nothing changed).", highlight=False)
            return
        assert export is not None
        try:
            created = create_planned(session, plan, daily_limit)
        except AccountError as exc:
            _fail_for(exc)
        transaction.write(export, fmt, _credentials(created, settings.limits.daily_cap), endpoints)
    elapsed = time.perf_counter() - started
    console.print(
        f"Created {len(created)} mailboxes across {len(domain_names)} domain(s) in {elapsed:.1f} s. "
        f"Passwords are in {export} ({fmt.value} format), the only copy: store it safely.",
        highlight=False,
        soft_wrap=True,
    )
    _warn_imap(endpoints)


@mailbox_app.command("list")
def list_command(
    ctx: typer.Context,
    domain: Annotated[str | None, typer.Option("--domain", help="Only this domain's mailboxes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List mailboxes with their display name, daily cap and state."""
    app = app_context(ctx)
    default_cap = app.settings().limits.daily_cap
    with app.session() as session:
        try:
            mailboxes = list_mailboxes(session, domain)
        except InvalidName as exc:
            fail(str(exc), EXIT_INVALID)
        if as_json:
            rows = [
                {
                    "address": item.address,
                    "display_name": item.display_name,
                    "daily_cap": item.daily_cap,
                    "effective_daily_cap": item.daily_cap if item.daily_cap is not None else default_cap,
                    "enabled": item.enabled,
                    "created_at": item.created_at.isoformat(),
                }
                for item in mailboxes
            ]
            print(json.dumps(rows, indent=2))
            return
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


@mailbox_app.command("passwd")
def passwd_command(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The mailbox whose password to replace.")],
    password: PasswordOption = None,
    ask_password: AskPassword = False,
    export: ExportFile = None,
    fmt: FormatOption = ExportFormat.CSV,
    smtp_host: SmtpHost = None,
    smtp_port: SmtpPort = None,
    imap_host: ImapHost = None,
    imap_port: ImapPort = None,
) -> None:
    """Replace a mailbox's password (random and shown once, unless you give one); the old one stops working."""
    app = app_context(ctx)
    settings = app.settings()
    endpoints = _endpoints(settings, smtp_host, smtp_port, imap_host, imap_port)
    _check_new_file(export)
    secret, generated = _choose_password(password, ask_password)
    with _export_transaction(app) as transaction:
        session = transaction.session
        try:
            mailbox = set_password(session, address, secret)
        except AccountError as exc:
            _fail_for(exc)
        changed = mailbox.address
        if export is not None:
            row = NewMailbox(changed, mailbox.display_name, secret, mailbox.daily_cap)
            transaction.write(export, fmt, _credentials([row], settings.limits.daily_cap), endpoints)
    console.print(f"Password of [bold]{changed}[/bold] replaced; the old one no longer works.", highlight=False)
    if generated:
        _show_generated(changed, secret)
    if export is not None:
        console.print(f"Login details written to {export} ({fmt.value} format).", highlight=False)


def _set_enabled(ctx: typer.Context, address: str, enabled: bool) -> None:
    app = app_context(ctx)
    with app.session() as session:
        try:
            mailbox = set_mailbox_enabled(session, address, enabled)
        except AccountError as exc:
            _fail_for(exc)
        changed = mailbox.address
    if enabled:
        console.print(f"Mailbox [bold]{changed}[/bold] enabled: it can log in and receive mail again.", highlight=False)
    else:
        console.print(
            f"Mailbox [bold]{changed}[/bold] disabled: its logins and incoming mail are refused "
            f"until: coldrelay mailbox enable {changed}",
            highlight=False,
        )


@mailbox_app.command("disable")
def disable_command(ctx: typer.Context, address: Annotated[str, typer.Argument(help="The mailbox to disable.")]) -> None:
    """Stop a mailbox at once: SMTP logins and mail to it are refused; nothing is deleted."""
    _set_enabled(ctx, address, False)


@mailbox_app.command("enable")
def enable_command(ctx: typer.Context, address: Annotated[str, typer.Argument(help="The mailbox to enable.")]) -> None:
    """Let a disabled mailbox log in and receive mail again."""
    _set_enabled(ctx, address, True)


@mailbox_app.command("remove")
def remove_command(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The mailbox to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a mailbox. Refused while messages it sent are still queued: their bounces must still reach it."""
    app = app_context(ctx)
    if not yes and not typer.confirm(f"Remove the mailbox {address}? Its login stops working at once", default=False):
        fail("Nothing removed.", EXIT_CONFLICT)
    from coldrelay.mta.store import maildir_path

    with app.session() as session:
        try:
            mailbox = remove_mailbox(session, address)
        except AccountError as exc:
            _fail_for(exc)
        removed = mailbox.address
    maildir = maildir_path(app.settings().data_dir, removed)
    console.print(f"Mailbox [bold]{removed}[/bold] removed.", highlight=False)
    if maildir.exists():
        console.print(
            f"Its received mail is still in {maildir}; delete that directory when it is no longer needed.", highlight=False
        )


@mailbox_app.command("export")
def export_command(
    ctx: typer.Context,
    fmt: FormatOption = ExportFormat.CSV,
    domain: Annotated[str | None, typer.Option("--domain", help="Only this domain's mailboxes.")] = None,
    reset_passwords_flag: Annotated[
        bool,
        typer.Option("--reset-passwords", help="Required: give every exported mailbox a new random password."),
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", dir_okay=False, help="A new file (default: standard output).")
    ] = None,
    smtp_host: SmtpHost = None,
    smtp_port: SmtpPort = None,
    imap_host: ImapHost = None,
    imap_port: ImapPort = None,
) -> None:
    """Export the enabled mailboxes for a sending platform, with new passwords.

    Only password hashes are stored, so the current passwords cannot be exported; the export
    sets new ones, and the platforms must be given the new file.
    """
    if not reset_passwords_flag:
        fail(
            "Passwords are stored only as argon2id hashes, so an export cannot contain the current ones. "
            "Add --reset-passwords to give every exported mailbox a new password and write those "
            "(logins with the old passwords stop working).",
            EXIT_INVALID,
        )
    app = app_context(ctx)
    settings = app.settings()
    endpoints = _endpoints(settings, smtp_host, smtp_port, imap_host, imap_port)
    _check_new_file(output)
    with _export_transaction(app) as transaction:
        session = transaction.session
        try:
            mailboxes = list_mailboxes(session, domain)
        except InvalidName as exc:
            fail(str(exc), EXIT_INVALID)
        enabled = [item for item in mailboxes if item.enabled]
        if not enabled:
            where = f" at {domain}" if domain else ""
            fail(f"No enabled mailboxes{where} to export; nothing changed.", EXIT_CONFLICT)
        items = _credentials(reset_passwords(enabled), settings.limits.daily_cap)
        if output is None:
            write_export(sys.stdout, fmt, items, endpoints)
            sys.stdout.flush()
        else:
            transaction.write(output, fmt, items, endpoints)
    left_out = len(mailboxes) - len(enabled)
    note = f"; {left_out} disabled mailbox(es) left out" if left_out else ""
    where = f"to {output}" if output is not None else "above"
    err_console.print(
        f"Exported {len(items)} mailbox(es) with new passwords {where} ({fmt.value} format){note}.", highlight=False
    )
    _warn_imap(endpoints)
