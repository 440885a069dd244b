"""``coldrelay smtp probe|relay-test``: talk to a mail server and report what it does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from coldrelay.cli.dns_cmd import console, print_section
from coldrelay.smtpcheck import ProbeResult, RelayTestResult, probe_smtp, relay_test, split_host_port

smtp_app = typer.Typer(help="Test SMTP servers: banner, EHLO, STARTTLS and certificate, and the open-relay tricks.")


def _target(value: str) -> tuple[str, int]:
    try:
        host, port = split_host_port(value)
    except ValueError:
        console.print(f"[red]Not a host or host:port:[/red] {value}")
        raise typer.Exit(2) from None
    if not host or not 0 < port < 65536:
        console.print(f"[red]Not a host or host:port:[/red] {value}")
        raise typer.Exit(2)
    return host, port


def _run(section: str, doing: str, check: Coroutine[Any, Any, ProbeResult | RelayTestResult], as_json: bool) -> None:
    with console.status(doing):
        result = asyncio.run(check)
    if as_json:
        print(json.dumps({**result.to_dict(), "section": result.section.to_dict()}, indent=2, default=str))
    else:
        print_section(section, result.section.to_dict())


@smtp_app.command("probe")
def probe_command(
    target: Annotated[str, typer.Argument(help="HOST or HOST:PORT (port 25 by default).")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Banner, EHLO extensions, STARTTLS, the certificate and timings of one SMTP server."""
    host, port = _target(target)
    _run("smtp", f"talking to {host}:{port} ...", probe_smtp(host, port, timeout=timeout), as_json)


@smtp_app.command("relay-test")
def relay_command(
    target: Annotated[str, typer.Argument(help="HOST or HOST:PORT (port 25 by default).")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Try the classic open-relay tricks (stopping at RCPT, no mail is sent) and report which were accepted."""
    host, port = _target(target)
    _run("relay", f"relay tricks against {host}:{port} ...", relay_test(host, port, timeout=timeout), as_json)
