"""The MX's named limits over real sockets: SIZE, line length, recipients per message, connections per client
address and in all, the idle timeout and the DATA deadline; a slowloris client is cut off without holding up a
normal one. Every refusal leaves nothing stored."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldrelay.config import LimitSettings
from coldrelay.mta.edge import MXLimits
from mx_support import RawClient, RunningMX, start, stop, transaction, wait_until

SIZE = 10_000
LIMITS = MXLimits(max_message_size=SIZE, max_recipients=3, max_line_length=1001, max_connections_per_ip=50)


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMX]:
    running = start(tmp_path_factory.mktemp("mx-limits"), LIMITS)
    yield running
    stop(running)


def send_data(client: RawClient, data: bytes) -> str:
    assert client.command("DATA") == "354 End data with <CR><LF>.<CR><LF>"
    client.send(data + b".\r\n")
    return client.reply()


# --- size ---------------------------------------------------------------------------------------------------------


def test_size_is_announced(mx: RunningMX) -> None:
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=10) as client:
        client.ehlo("client.example")
        assert client.esmtp_features["size"] == str(SIZE)


def test_declared_size_over_the_limit_is_refused_at_mail_from(mx: RunningMX) -> None:
    client = RawClient(mx.port)
    client.reply()
    client.command("EHLO client.example")
    assert client.command(f"MAIL FROM:<sender@example.net> SIZE={SIZE + 1}") == "552 5.3.4 Message size exceeds fixed limit"
    assert client.command(f"MAIL FROM:<sender@example.net> SIZE={SIZE}") == "250 2.1.0 Sender OK"
    client.close()


def test_message_over_the_limit_is_refused_after_data_and_not_stored(mx: RunningMX) -> None:
    client = transaction(mx.port)
    line = b"x" * 98 + b"\r\n"
    assert (
        send_data(client, b"Subject: big\r\n\r\n" + line * (SIZE // len(line) + 1))
        == "552 5.3.4 Message size exceeds fixed limit"
    )
    assert client.command("NOOP") == "250 2.0.0 OK"  # the session is in step after the refused data
    client.close()
    assert mx.all_stored() == []


def test_message_under_the_limit_is_accepted(mx: RunningMX) -> None:
    client = transaction(mx.port, "carol@second.test")
    line = b"x" * 98 + b"\r\n"
    assert (
        send_data(client, b"Subject: fits\r\n\r\n" + line * (SIZE // len(line) - 1)) == "250 2.0.0 Message accepted for delivery"
    )
    client.close()
    assert len(mx.delivered("carol@second.test")) == 1


# --- line length --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1002, 1003, 1500, 100_000])
def test_data_line_over_the_limit_is_refused_and_not_stored(mx: RunningMX, length: int) -> None:
    client = transaction(mx.port, "bob@hosted.test")
    body = b"Subject: long\r\n\r\n" + b"y" * (length - 2) + b"\r\nafter\r\n"
    assert send_data(client, body) == "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"
    assert client.command("NOOP") == "250 2.0.0 OK"
    client.close()
    assert mx.delivered("bob@hosted.test") == []


def test_line_of_1000_octets_is_accepted(mx: RunningMX) -> None:
    client = transaction(mx.port, "alice@hosted.test")
    before = len(mx.delivered("alice@hosted.test"))
    assert send_data(client, b"Subject: edge\r\n\r\n" + b"z" * 998 + b"\r\n") == "250 2.0.0 Message accepted for delivery"
    client.close()
    assert len(mx.delivered("alice@hosted.test")) == before + 1


def test_command_line_too_long(mx: RunningMX) -> None:
    client = RawClient(mx.port)
    client.reply()
    assert client.command("NOOP " + "x" * 600) == "500 5.5.2 Command line too long"
    assert client.command("NOOP " + "x" * 5000) == "500 5.5.2 Command line too long"
    assert client.command("NOOP") == "250 2.0.0 OK"
    client.close()


# --- recipients ---------------------------------------------------------------------------------------------------


def test_recipients_per_message_limit(tmp_path: Path) -> None:
    mx = start(tmp_path, MXLimits(max_recipients=3))
    try:
        client = transaction(mx.port, "alice@hosted.test")
        assert client.command("RCPT TO:<nobody@hosted.test>") == "550 5.1.1 Recipient address rejected: user unknown"
        assert client.command("RCPT TO:<bob@hosted.test>") == "250 2.1.5 Recipient OK"
        assert client.command("RCPT TO:<carol@second.test>") == "250 2.1.5 Recipient OK"
        assert client.command("RCPT TO:<alice+again@hosted.test>") == "452 4.5.3 Too many recipients"
        assert client.command("RCPT TO:<someone@elsewhere.example>") == "452 4.5.3 Too many recipients"
        assert send_data(client, b"Subject: three\r\n\r\nhi\r\n") == "250 2.0.0 Message accepted for delivery"
        client.close()
        assert [len(mx.delivered(a)) for a in ("alice@hosted.test", "bob@hosted.test", "carol@second.test")] == [1, 1, 1]
        assert len(mx.all_stored()) == 3
    finally:
        stop(mx)


def test_limits_from_settings() -> None:
    limits = MXLimits.from_settings(LimitSettings(max_message_size=1234, max_recipients=7))
    assert (limits.max_message_size, limits.max_recipients) == (1234, 7)


# --- connections --------------------------------------------------------------------------------------------------


def test_connections_per_ip(tmp_path: Path) -> None:
    mx = start(tmp_path, MXLimits(max_connections_per_ip=2))
    try:
        first, second = RawClient(mx.port), RawClient(mx.port)
        assert first.reply().startswith("220 ") and second.reply().startswith("220 ")
        third = RawClient(mx.port)
        assert third.reply() == "421 4.7.0 Too many connections from your address, try again later"
        assert third.closed_by_server()
        assert second.command("NOOP") == "250 2.0.0 OK"  # the admitted ones are unaffected
        assert first.command("QUIT") == "221 2.0.0 Bye"
        first.close()
        assert wait_until(lambda: mx.server.gate.open["127.0.0.1"] == 1)
        fourth = RawClient(mx.port)
        assert fourth.reply().startswith("220 mx.hosted.test ESMTP coldrelay")
        for client in (second, third, fourth):
            client.close()
        assert wait_until(lambda: not mx.server.gate.open)
    finally:
        stop(mx)


def test_connections_in_all(tmp_path: Path) -> None:
    mx = start(tmp_path, MXLimits(max_connections_per_ip=10, max_connections=2))
    try:
        clients = [RawClient(mx.port), RawClient(mx.port)]
        assert all(c.reply().startswith("220 ") for c in clients)
        extra = RawClient(mx.port)
        assert extra.reply() == "421 4.3.2 Too many connections, try again later"
        assert extra.closed_by_server()
        for client in [*clients, extra]:
            client.close()
    finally:
        stop(mx)


# --- timeouts -----------------------------------------------------------------------------------------------------


def test_idle_timeout_closes_a_silent_session(tmp_path: Path) -> None:
    mx = start(tmp_path, MXLimits(idle_timeout=0.5))
    try:
        client = RawClient(mx.port)
        started = time.monotonic()
        assert client.reply().startswith("220 ")
        assert client.reply() == "421 4.4.2 Timeout exceeded, closing connection"
        assert client.closed_by_server()
        assert 0.4 <= time.monotonic() - started < 3
        assert wait_until(lambda: not mx.server.gate.open)
    finally:
        stop(mx)


def test_slowloris_is_cut_off_while_a_normal_client_is_served(tmp_path: Path) -> None:
    mx = start(tmp_path, MXLimits(idle_timeout=1.0))
    outcome: dict[str, object] = {}

    def trickle() -> None:
        client = RawClient(mx.port)
        client.reply()
        started = time.monotonic()
        try:
            for byte in b"EHLO slow.example" * 10:  # one byte every 0.1 s: never a complete command
                client.send(bytes([byte]))
                time.sleep(0.1)
                if time.monotonic() - started > 5:
                    break
        except OSError:
            pass
        outcome["elapsed"] = time.monotonic() - started
        outcome["closed"] = client.closed_by_server(timeout=2)
        outcome["buffer"] = client.buffer
        client.close()

    try:
        slow = [threading.Thread(target=trickle) for _ in range(3)]
        for thread in slow:
            thread.start()
        time.sleep(0.2)
        began = time.monotonic()
        with smtplib.SMTP("127.0.0.1", mx.port, timeout=5) as client:
            client.ehlo("client.example")
            client.sendmail("sender@example.net", ["alice@hosted.test"], b"Subject: normal\r\n\r\nserved\r\n")
        assert time.monotonic() - began < 1.0
        assert len(mx.delivered("alice@hosted.test")) == 1
        for thread in slow:
            thread.join(timeout=10)
        assert outcome["closed"] is True
        assert outcome["buffer"] == b"421 4.4.2 Timeout exceeded, closing connection\r\n"
        assert 0.8 <= float(str(outcome["elapsed"])) < 3
    finally:
        stop(mx)


def test_data_that_trickles_past_the_deadline_is_dropped(tmp_path: Path) -> None:
    mx = start(tmp_path, MXLimits(idle_timeout=0.8, data_timeout=1.0))
    try:
        client = transaction(mx.port)
        assert client.command("DATA") == "354 End data with <CR><LF>.<CR><LF>"
        started = time.monotonic()
        closed = False
        for _ in range(40):  # a line every 0.25 s keeps the idle timer happy, but not the DATA deadline
            try:
                client.send(b"a slow but steady line\r\n")
            except OSError:
                closed = True
                break
            time.sleep(0.25)
            if client.closed_by_server(timeout=0.01):
                closed = True
                break
        assert closed
        assert client.buffer == b"421 4.4.2 Message transfer took too long, closing connection\r\n"
        assert 0.9 <= time.monotonic() - started < 3
        client.close()
        assert mx.all_stored() == []
    finally:
        stop(mx)
