"""``coldrelay``: the entry point that joins the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coldrelay.cli.admin_cmd import admin_app
from coldrelay.cli.bounce_cmd import bounce_app
from coldrelay.cli.context import AppContext
from coldrelay.cli.dns_cmd import dns_app
from coldrelay.cli.domain_cmd import domain_app
from coldrelay.cli.errors_cmd import errors_app, explain_command
from coldrelay.cli.mailbox_cmd import mailbox_app
from coldrelay.cli.price_cmd import price_command
from coldrelay.cli.queue_cmd import queue_app
from coldrelay.cli.senders_cmd import senders_app
from coldrelay.cli.serve_cmd import serve_command
from coldrelay.cli.smtp_cmd import smtp_app
from coldrelay.config import default_data_dir

app = typer.Typer(
    name="coldrelay",
    help="Self-hosted cold-email infrastructure: SMTP error reference, diagnosis and mail hosting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="COLDRELAY_DATA_DIR",
            file_okay=False,
            help="Holds the database, keys, Maildirs and coldrelay.toml. Default: ./data.",
        ),
    ] = None,
) -> None:
    """Self-hosted cold-email infrastructure: SMTP error reference, diagnosis and mail hosting."""
    # The only place the environment is read (through envvar); everything below gets ctx.obj.
    ctx.obj = AppContext((data_dir or default_data_dir()).expanduser().absolute())


app.command("serve")(serve_command)
app.command("explain")(explain_command)
app.command("price")(price_command)
app.add_typer(errors_app, name="errors")
app.add_typer(bounce_app, name="bounce")
app.add_typer(dns_app, name="dns")
app.add_typer(smtp_app, name="smtp")
app.add_typer(domain_app, name="domain")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(queue_app, name="queue")
app.add_typer(senders_app, name="senders")
app.add_typer(admin_app, name="admin")


if __name__ == "__main__":  # pragma: no cover
    app()
