"""The MX's check pipeline over a real socket on 127.0.0.1: the stored Maildir message carries our
Authentication-Results on top of the client's header, forged results for our hostname are gone, and a
failing step costs a 451, never a lost or half-checked message."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldrelay.db import session_factory
from coldrelay.dns import Resolver
from coldrelay.mta.checks import AuthenticationStep, PipelineStep
from coldrelay.mta.edge import DatabaseDirectory, start_mx
from coldrelay.mta.store import InboundMessage, MaildirStore
from mx_support import MX_HOSTNAME, LoopThread, RunningMX, make_database, stop
from test_inbound_auth import message, signed

TRACE_LINES = 4  # Return-Path and the three lines of our Received


def start_with(tmp_path: Path, pipeline: list[PipelineStep]) -> RunningMX:
    engine = make_database(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    loop = LoopThread()
    directory = DatabaseDirectory(session_factory(engine))
    server = loop.run(start_mx("127.0.0.1", 0, directory, MaildirStore(data_dir), hostname=MX_HOSTNAME, pipeline=pipeline))
    return RunningMX(loop, server, data_dir)


@pytest.fixture
def mx(tmp_path: Path, resolver: Resolver) -> Iterator[RunningMX]:
    running = start_with(tmp_path, [AuthenticationStep(resolver, MX_HOSTNAME)])
    yield running
    stop(running)


def send(port: int, content: bytes, sender: str = "alice@inbound.test", rcpt: str = "bob@hosted.test") -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="out.inbound.test", timeout=20) as client:
        client.sendmail(sender, [rcpt], content)


def after_trace(stored: bytes) -> bytes:
    lines = stored.split(b"\n")
    assert lines[0].startswith(b"Return-Path: ") and lines[1].startswith(b"Received: from out.inbound.test ([127.0.0.1])")
    return b"\n".join(lines[TRACE_LINES:])


def test_stored_message_starts_with_our_authentication_results(mx: RunningMX) -> None:
    content = signed(message())
    send(mx.port, content)
    [stored] = mx.delivered("bob@hosted.test")
    assert after_trace(stored) == (
        b"Authentication-Results: mx.hosted.test;\n"
        b"\tspf=pass smtp.mailfrom=alice@inbound.test;\n"
        b"\tdkim=pass header.d=inbound.test header.s=sel1;\n"
        b"\tdmarc=pass (p=reject dis=none) header.from=inbound.test\n" + content.replace(b"\r\n", b"\n")
    )


def test_failing_mail_is_stored_with_the_failure_recorded_not_refused(mx: RunningMX) -> None:
    send(mx.port, message(), sender="someone@nospf.inbound.test")  # From inbound.test, p=reject, nothing aligned
    [stored] = mx.delivered("bob@hosted.test")
    assert after_trace(stored).startswith(
        b"Authentication-Results: mx.hosted.test;\n"
        b"\tspf=none (nospf.inbound.test has no SPF record) smtp.mailfrom=someone@nospf.inbound.test;\n"
        b"\tdkim=none;\n"
        b"\tdmarc=fail (p=reject dis=reject) header.from=inbound.test\n"
        b"From: Alice <alice@inbound.test>\n"
    )


def test_forged_authentication_results_for_our_hostname_are_removed(mx: RunningMX) -> None:
    forged = (
        b"Authentication-Results: mx.hosted.test; spf=pass smtp.mailfrom=ceo@bank.example;\r\n"
        b"\tdkim=pass header.d=bank.example\r\n"
        b"Authentication-Results: MX.HOSTED.TEST; dmarc=pass header.from=bank.example\r\n"
        b"Authentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=alice@inbound.test\r\n"
    )
    send(mx.port, forged + message())
    [stored] = mx.delivered("bob@hosted.test")
    body = after_trace(stored)
    assert body.count(b"Authentication-Results: mx.hosted.test;") == 1 and b"bank.example" not in body
    assert body.startswith(b"Authentication-Results: mx.hosted.test;\n\tspf=pass smtp.mailfrom=alice@inbound.test;\n")
    assert b"\nAuthentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=alice@inbound.test\nFrom: Alice" in body


def test_a_failing_step_answers_451_and_stores_nothing(tmp_path: Path) -> None:
    async def broken(content: bytes, facts: InboundMessage) -> bytes:
        raise RuntimeError("checker crashed")

    seen: list[tuple[str, tuple[str, ...], str]] = []

    async def record(content: bytes, facts: InboundMessage) -> bytes:
        seen.append((facts.sender, facts.recipients, facts.peer_ip))
        return b"X-Step: 1\r\n" + content

    running = start_with(tmp_path, [record, broken])
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(running.port, message())
        assert (refused.value.smtp_code, refused.value.smtp_error) == (451, b"4.3.0 Local error in processing, try again later")
        assert running.all_stored() == []
        assert seen == [("alice@inbound.test", ("bob@hosted.test",), "127.0.0.1")]
    finally:
        stop(running)


def test_steps_run_in_order_each_on_the_previous_result(tmp_path: Path) -> None:
    def adding(name: bytes) -> PipelineStep:
        async def step(content: bytes, facts: InboundMessage) -> bytes:
            return b"X-Step: " + name + b"\r\n" + content

        return step

    running = start_with(tmp_path, [adding(b"first"), adding(b"second")])
    try:
        send(running.port, message())
        [stored] = running.delivered("bob@hosted.test")
        assert after_trace(stored).startswith(b"X-Step: second\nX-Step: first\nFrom: Alice")
    finally:
        stop(running)
