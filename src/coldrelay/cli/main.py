"""``coldrelay``: the entry point that joins the command groups."""

from __future__ import annotations

import typer

from coldrelay.cli.bounce_cmd import bounce_app
from coldrelay.cli.dns_cmd import dns_app
from coldrelay.cli.errors_cmd import errors_app, explain_command
from coldrelay.cli.serve_cmd import serve_command
from coldrelay.cli.smtp_cmd import smtp_app

app = typer.Typer(
    name="coldrelay",
    help="Self-hosted cold-email infrastructure: SMTP error reference, diagnosis and mail hosting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve_command)
app.command("explain")(explain_command)
app.add_typer(errors_app, name="errors")
app.add_typer(bounce_app, name="bounce")
app.add_typer(dns_app, name="dns")
app.add_typer(smtp_app, name="smtp")


if __name__ == "__main__":  # pragma: no cover
    app()
