"""``coldrelay admin``: dashboard users and API tokens, made on the server (the dashboard needs a first user).

Secrets the command generates (a password, a token) are printed once and stored only as hashes.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from coldrelay.cli.context import EXIT_CONFLICT, EXIT_INVALID, app_context, fail
from coldrelay.db import AccountError, AlreadyExists, InvalidName

console = Console()
admin_app = typer.Typer(help="Admin dashboard users and API tokens.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for /admin/api.", no_args_is_help=True)
admin_app.add_typer(token_app, name="token")


@admin_app.command("create")
def create_command(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The login name, e.g. ops or anna@example.com.")],
    password: Annotated[
        str | None,
        typer.Option("--password", help="At least 12 characters. Omitted: a random one is generated and shown once."),
    ] = None,
) -> None:
    """Create a dashboard user."""
    from coldrelay.web.admin.users import create_admin, generate_password

    chosen = password if password is not None else generate_password()
    with app_context(ctx).session() as session:
        try:
            user = create_admin(session, username, chosen)
        except (InvalidName, AlreadyExists) as exc:
            fail(str(exc), EXIT_INVALID if isinstance(exc, InvalidName) else EXIT_CONFLICT)
        except AccountError as exc:  # a short password
            fail(str(exc), EXIT_INVALID)
        name = user.username
    console.print(f"Admin user [bold]{name}[/bold] created. Log in at /admin/login.", highlight=False)
    if password is None:
        console.print(f"Password (shown once, only its hash is stored): {chosen}", highlight=False, soft_wrap=True)


@admin_app.command("passwd")
def passwd_command(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The admin user whose password changes.")],
    password: Annotated[
        str,
        typer.Option(
            "--password",
            help="The new password (at least 12 characters). Asked for, hidden, when not given.",
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
        ),
    ],
) -> None:
    """Set a dashboard user's password and log out all of their browser sessions."""
    from coldrelay.web.admin.tokens import end_sessions
    from coldrelay.web.admin.users import UnknownAdmin, set_admin_password

    with app_context(ctx).session() as session:
        try:
            user = set_admin_password(session, username, password)
        except UnknownAdmin as exc:
            fail(str(exc), EXIT_CONFLICT)
        except AccountError as exc:
            fail(str(exc), EXIT_INVALID)
        ended = end_sessions(session, user.id)
        name = user.username
    console.print(f"Password of [bold]{name}[/bold] changed; {ended} session(s) logged out.", highlight=False)


@token_app.command("create")
def token_create_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What will use the token, e.g. reporting.")],
    user: Annotated[str, typer.Option("--user", help="The admin user the token acts as.")],
) -> None:
    """Create an API token (printed once) for scripts calling /admin/api/... with Authorization: Bearer."""
    from coldrelay.web.admin.tokens import create_api_token
    from coldrelay.web.admin.users import get_admin

    with app_context(ctx).session() as session:
        owner = get_admin(session, user)
        if owner is None:
            fail(f"There is no admin user {user.strip()!r}; create one with: coldrelay admin create NAME", EXIT_CONFLICT)
        try:
            token, _ = create_api_token(session, owner, name)
        except AccountError as exc:
            fail(str(exc), EXIT_INVALID)
        username = owner.username
    console.print(f"API token [bold]{name.strip()}[/bold] created for {username}. It is shown once:", highlight=False)
    console.print(token, highlight=False, soft_wrap=True)
