"""`coldrelay serve`, the README's main job, started as a real process: the web app, the MX and submission."""

from __future__ import annotations

import smtplib
import socket
import ssl
from pathlib import Path

from conftest import PASSWORD, Served, ServeHost, free_port, run_coldrelay, serve_data_dir

# The `served` fixture (conftest.py): serve on free ports, a data dir with hosted.test and anna@hosted.test.


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
    assert "Outbound delivery: up to 50 messages at once" in served.banner
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # the self-signed certificate serve made at first start
    message = b"From: Anna <anna@hosted.test>\r\nTo: lead@elsewhere.example\r\nSubject: first touch\r\n\r\nHello\r\n"
    with smtplib.SMTP("127.0.0.1", served.submission, timeout=10) as client:
        client.ehlo("platform.example")
        assert client.docmd("AUTH", "LOGIN")[0] == 530  # not before TLS
        client.starttls(context=unverified)
        client.ehlo("platform.example")
        assert client.login("anna@hosted.test", PASSWORD)[0] == 235
        client.mail("anna@hosted.test")
        assert client.rcpt("lead@elsewhere.example")[0] == 250
        assert client.data(message) == (250, b"2.0.0 Message accepted for delivery")
    with smtplib.SMTP_SSL("127.0.0.1", served.submissions, context=unverified, timeout=10) as client:
        assert client.login("anna@hosted.test", PASSWORD)[0] == 235
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
        data = serve_data_dir(tmp_path, port, free_port())
        result = run_coldrelay("--data-dir", str(data), "serve")
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_flags_override_the_file_and_the_mx_offers_starttls(serve_host: ServeHost) -> None:
    serve_host.mx = free_port()  # not the port in coldrelay.toml: the flag must win
    served = serve_host.start("--mx-listen", f"127.0.0.1:{serve_host.mx}", "--hostname", "box.hosted.test")
    assert f"127.0.0.1:{serve_host.mx}" in served.banner
    with smtplib.SMTP("127.0.0.1", serve_host.mx, timeout=10) as client:
        client.ehlo("client.example.org")
        assert client.has_extn("starttls")
        client.starttls(context=ssl._create_unverified_context())  # the self-signed certificate of first start
        client.ehlo("client.example.org")
        client.mail("someone@example.org")
        assert client.rcpt("anna@hosted.test")[0] == 250
        assert client.data(b"From: someone@example.org\r\nSubject: over TLS\r\n\r\nHello\r\n")[0] == 250
    assert any(b"over TLS" in path.read_bytes() for path in served.data.rglob("Maildir/new/*"))


def test_bad_flag_value_is_a_clear_error(serve_host: ServeHost) -> None:
    result = run_coldrelay("--data-dir", str(serve_host.data), "serve", "--mx-listen", "nowhere")
    assert result.returncode == 2
    assert "Configuration error" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_submitted_mail_is_delivered_signed_and_a_bounce_reaches_the_mailbox(serve_host: ServeHost) -> None:
    """The whole path in one process: submission, DKIM, the queue, the delivery worker, a remote MX
    (a loopback sink through [transports]); a 5xx there comes back as a DSN in the sender's Maildir."""
    import time

    from helpers.sinks import Behaviour, Reply, SinkServer

    unknown = Reply(550, "5.1.1", "The email account that you tried to reach does not exist")
    with SinkServer(Behaviour({"gone": unknown})) as sink:
        with (serve_host.data / "coldrelay.toml").open("a", encoding="utf-8") as config:
            config.write(f'[transports]\n"leads.test" = "127.0.0.1:{sink.port}"\n')
        served = serve_host.start()
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", served.submission, timeout=10) as client:
            client.starttls(context=unverified)
            client.login("anna@hosted.test", PASSWORD)
            for lead in ("lead", "gone"):
                body = f"From: Anna <anna@hosted.test>\r\nTo: {lead}@leads.test\r\nSubject: hi {lead}\r\n\r\nHello\r\n"
                client.sendmail("anna@hosted.test", [f"{lead}@leads.test"], body.encode())
        new = served.data / "mail" / "hosted.test" / "anna" / "Maildir" / "new"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (sink.messages and new.is_dir() and any(new.iterdir())):
            time.sleep(0.2)
    assert [m.rcpt_tos for m in sink.messages] == [["lead@leads.test"]]
    assert sink.messages[0].data.startswith(b"DKIM-Signature: ") and b"d=hosted.test" in sink.messages[0].data
    (dsn,) = list(new.iterdir())
    text = dsn.read_text(encoding="utf-8", errors="replace")
    assert "gone@leads.test" in text and "5.1.1" in text and "multipart/report" in text


def test_sigterm_stops_serve_and_its_dovecot_cleanly(serve_host: ServeHost) -> None:
    """SIGTERM runs serve's clean-up: IMAP (a child Dovecot) is stopped too, nothing is left running."""
    import subprocess

    served = serve_host.start()
    conf = served.data / "dovecot" / "dovecot.conf"
    running = subprocess.run(["pgrep", "-f", str(conf)], capture_output=True, text=True, check=False)
    assert running.stdout.strip(), "serve did not start Dovecot (is dovecot-imapd installed?)"
    serve_host.stop()
    assert served.process.returncode == 0
    left = subprocess.run(["pgrep", "-f", str(conf)], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == "", f"Dovecot still running after serve stopped: {left.stdout}"
    assert any("Delivery worker" in line and "stopped after" in line for line in served.output), served.output
