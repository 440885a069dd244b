"""`coldrelay serve`, the README's main job, started as a real process: the web app, the MX and submission."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

COLDRELAY = Path(sys.executable).with_name("coldrelay")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _data_dir(tmp_path: Path, web: int, mx: int, submission: int | None = None, submissions: int | None = None) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "coldrelay.toml").write_text(
        f'hostname = "box.hosted.test"\n[web]\nlisten = "127.0.0.1:{web}"\n[smtp]\nmx_listen = "127.0.0.1:{mx}"\n'
        f'submission_listen = "127.0.0.1:{submission or _free_port()}"\n'
        f'submissions_listen = "127.0.0.1:{submissions or _free_port()}"\n',
        encoding="utf-8",
    )
    return data


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COLDRELAY), *args], capture_output=True, text=True, timeout=60, check=False)


@dataclass
class Served:
    data: Path
    web: int
    mx: int
    submission: int
    submissions: int
    banner: str


@pytest.fixture
def served(tmp_path: Path, dns_server: Any) -> Iterator[Served]:
    web, mx, submission, submissions = _free_port(), _free_port(), _free_port(), _free_port()
    data = _data_dir(tmp_path, web, mx, submission, submissions)
    assert _run("--data-dir", str(data), "domain", "add", "hosted.test").returncode == 0
    added = _run("--data-dir", str(data), "mailbox", "add", "anna@hosted.test", "--password", "long enough secret")
    assert added.returncode == 0, added.stderr
    process = subprocess.Popen(
        # Inbound SPF/DKIM/DMARC checks ask the loopback DNS server: no test query leaves the machine.
        [str(COLDRELAY), "--data-dir", str(data), "serve", "--nameserver", dns_server.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(4))
        assert f"http://127.0.0.1:{web}" in banner and f"127.0.0.1:{mx}" in banner, banner
        _wait_for(f"http://127.0.0.1:{web}/smtp-errors")
        yield Served(data, web, mx, submission, submissions, banner)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                assert "SMTP error reference" in response.read().decode()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_mx_refuses_relay_and_delivers_to_the_hosted_mailbox(served: Served) -> None:
    data, mx = served.data, served.mx
    with smtplib.SMTP("127.0.0.1", mx, timeout=10) as client:
        client.ehlo("client.example.org")
        client.mail("someone@example.org")
        assert client.rcpt("someone@elsewhere.example")[:1] == (550,)
        code, text = client.rcpt("someone@elsewhere.example")
        assert (code, b"5.7.1" in text, b"Unable to relay" in text) == (550, True, True)
        assert client.rcpt("nobody@hosted.test")[0] == 550
        assert client.rcpt("anna@hosted.test")[0] == 250
        assert client.data(b"From: someone@example.org\r\nSubject: hello\r\n\r\nHi Anna\r\n")[0] == 250
    delivered = list(data.rglob("Maildir/new/*"))
    assert len(delivered) == 1 and b"Hi Anna" in delivered[0].read_bytes()
    stored = delivered[0].read_bytes()
    assert b"Authentication-Results: box.hosted.test;" in stored and b"spf=" in stored and b"dmarc=" in stored


def test_submission_queues_a_signed_message(served: Served) -> None:
    assert f"127.0.0.1:{served.submission}" in served.banner and f"127.0.0.1:{served.submissions}" in served.banner
    assert "Outbound delivery is not part of this release" in served.banner
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # the self-signed certificate serve made at first start
    message = b"From: Anna <anna@hosted.test>\r\nTo: lead@elsewhere.example\r\nSubject: first touch\r\n\r\nHello\r\n"
    with smtplib.SMTP("127.0.0.1", served.submission, timeout=10) as client:
        client.ehlo("platform.example")
        assert client.docmd("AUTH", "LOGIN")[0] == 530  # not before TLS
        client.starttls(context=unverified)
        client.ehlo("platform.example")
        assert client.login("anna@hosted.test", "long enough secret")[0] == 235
        client.mail("anna@hosted.test")
        assert client.rcpt("lead@elsewhere.example")[0] == 250
        assert client.data(message) == (250, b"2.0.0 Message accepted for delivery")
    with smtplib.SMTP_SSL("127.0.0.1", served.submissions, context=unverified, timeout=10) as client:
        assert client.login("anna@hosted.test", "long enough secret")[0] == 235
    assert (served.data / "tls" / "selfsigned-cert.pem").is_file()
    [queued] = list((served.data / "spool").glob("*.eml"))
    data = queued.read_bytes()
    assert data.startswith(b"DKIM-Signature: ") and b"d=hosted.test" in data
    assert b"\r\nMessage-ID: " in data and data.endswith(b"\r\n\r\nHello\r\n")


def test_serve_on_a_busy_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data = _data_dir(tmp_path, port, _free_port())
        result = _run("--data-dir", str(data), "serve")
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
