"""The SMTP tools as users reach them: `coldrelay smtp probe|relay-test` and /tools/smtp-test."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from coldrelay.cli.main import app
from coldrelay.web import create_app
from coldrelay.web.tools import ToolSettings

runner = CliRunner()


class OpenRelay:
    """Accepts every recipient: the deliberate open relay."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def open_relay() -> Iterator[int]:
    port = _free_port()
    controller = Controller(OpenRelay(), hostname="127.0.0.1", port=port, server_hostname="mx.relay.test")
    controller.start()
    yield port
    controller.stop()


def test_cli_probe_json(open_relay: int) -> None:
    result = runner.invoke(app, ["smtp", "probe", f"127.0.0.1:{open_relay}", "--timeout", "5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    codes = [f["code"] for f in data["section"]["findings"]]
    assert "smtp.banner-ok" in codes and "smtp.starttls-missing" in codes


def test_cli_relay_test_finds_the_open_relay(open_relay: int) -> None:
    result = runner.invoke(app, ["smtp", "relay-test", f"127.0.0.1:{open_relay}", "--timeout", "5", "--json"])
    assert result.exit_code == 0, result.output
    codes = [f["code"] for f in json.loads(result.stdout)["section"]["findings"]]
    assert "relay.accepted.plain" in codes and "relay.accepted.percent-hack" in codes


def test_cli_bad_target() -> None:
    result = runner.invoke(app, ["smtp", "probe", "host:notaport"])
    assert result.exit_code == 2 and "Not a host" in result.stdout


def test_public_page_refuses_private_and_odd_ports(open_relay: int) -> None:
    public = TestClient(create_app(tools=ToolSettings(["127.0.0.1:9"])))
    page = public.get("/tools/smtp-test", params={"host": "127.0.0.1:25"})
    assert page.status_code == 422 and "private or local address" in page.text
    assert public.get("/api/v1/smtp-test", params={"host": "192.0.2.1:22"}).status_code == 422


def test_page_runs_probe_and_relay_test_when_allowed(open_relay: int) -> None:
    tools = ToolSettings(["127.0.0.1:9"], allow_private_targets=True, smtp_ports=frozenset({open_relay}))
    client = TestClient(create_app(tools=tools))
    page = client.get("/tools/smtp-test", params={"host": f"127.0.0.1:{open_relay}", "relay": "1"})
    assert page.status_code == 200
    assert 'data-code="smtp.banner-ok"' in page.text and 'data-code="relay.accepted.plain"' in page.text
    data = client.get("/api/v1/smtp-test", params={"host": f"127.0.0.1:{open_relay}"}).json()
    assert data["relay"] is None and data["smtp"]["status"] in {"fail", "warn", "pass"}
