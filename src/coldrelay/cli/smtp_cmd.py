"""``coldrelay smtp probe|relay-test``: talk to a mail server and report what it does."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from coldrelay.cli.dns_cmd import console, print_section
from coldrelay.smtpcheck import probe_smtp, relay_test

smtp_app = typer.Typer(help="Test SMTP servers: banner, EHLO, STARTTLS and certificate, and the open-relay tricks.")


def split_host_port(target: str, default_port: int = 25) -> tuple[str, int]:
    """``host``, ``host:587``, ``[2001:db8::1]:25`` or ``192.0.2.1`` into (host, port)."""
    target = target.strip()
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if target.count(":") == 1:
        host, _, port = target.partition(":")
        return host, int(port)
    return target, default_port


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


@smtp_app.command("probe")
def probe_command(
    target: Annotated[str, typer.Argument(help="HOST or HOST:PORT (port 25 by default).")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Banner, EHLO extensions, STARTTLS, the certificate and timings of one SMTP server."""
    host, port = _target(target)
    with console.status(f"talking to {host}:{port} ..."):
        result = asyncio.run(probe_smtp(host, port, timeout=timeout))
    if as_json:
        print(json.dumps({**result.to_dict(), "section": result.section.to_dict()}, indent=2, default=str))
    else:
        print_section("smtp", result.section.to_dict())


@smtp_app.command("relay-test")
def relay_command(
    target: Annotated[str, typer.Argument(help="HOST or HOST:PORT (port 25 by default).")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Try the classic open-relay tricks (stopping at RCPT, no mail is sent) and report which were accepted."""
    host, port = _target(target)
    with console.status(f"relay tricks against {host}:{port} ..."):
        result = asyncio.run(relay_test(host, port, timeout=timeout))
    if as_json:
        print(json.dumps({**result.to_dict(), "section": result.section.to_dict()}, indent=2, default=str))
    else:
        print_section("relay", result.section.to_dict())
