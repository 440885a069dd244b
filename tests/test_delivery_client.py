"""The SMTP client and the pool end to end: routes from the loopback DNS server, real aiosmtpd sinks as the
recipient MX hosts (tests/helpers/sinks.py), trustme certificates, MTA-STS policies over real HTTPS."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pytest
import trustme

from coldrelay.config import DeliverySettings, DestinationLimits
from coldrelay.dns import Resolver
from coldrelay.errors import explain
from coldrelay.mta.delivery.client import SmtpReply, TransactionResult
from coldrelay.mta.delivery.pool import DeliveryPool
from coldrelay.mta.delivery.routing import HopVia, NextHop, Route, Router, TlsRequirement
from helpers.policy_https import PolicyReply, PolicyServer, policy_text
from helpers.sinks import (
    DROP,
    AtData,
    Behaviour,
    DropAtData,
    FirstTempThenAccept,
    Reply,
    SinkServer,
    broken_tls_context,
    refused_port,
)
from scripted_smtp import SILENT, ScriptedServer

SENDER = "anna@hosted.test"
HELO = "box.hosted.test"
MESSAGE = (
    b"From: anna@hosted.test\r\nTo: bob@normal.deliver.test\r\nSubject: hello\r\n\r\n"
    b"Hi Bob,\r\n.a line that starts with a dot\r\n..and two\r\nna\xc3\xafve caf\xc3\xa9\r\n"
)


@dataclass
class Run:
    result: TransactionResult
    pool: DeliveryPool


def deliver(
    resolver: Resolver,
    domain: str,
    recipients: Sequence[str],
    *,
    ports: Mapping[str, int],
    data: bytes = MESSAGE,
    settings: DeliverySettings | None = None,
    router: Router | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> Run:
    """Route ``domain`` and send one transaction through a fresh pool (closed afterwards)."""
    settings = settings or DeliverySettings(connect_timeout=5, command_timeout=10)

    async def go() -> Run:
        pool = DeliveryPool(settings, helo_hostname=HELO, resolver=resolver, tls_context=tls_context, port_override=ports)
        try:
            route = await (router or Router(resolver, settings)).route(domain)
            return Run(await pool.send(route, SENDER, recipients, data), pool)
        finally:
            await pool.close()

    return asyncio.run(go())


def only(run: Run) -> SmtpReply:
    (result,) = run.result.results
    return result.reply


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    with SinkServer() as server:
        yield server


# --- the 250 path ------------------------------------------------------------------------------------------------


def test_message_arrives_intact_in_plaintext(resolver: Resolver, sink: SinkServer) -> None:
    run = deliver(resolver, "normal.deliver.test", ["bob@normal.deliver.test"], ports={"mx1.deliver.test": sink.port})
    (result,) = run.result.results
    assert result.accepted and result.stage == "data"
    assert result.reply.code == 250 and result.reply.enhanced == "2.0.0"
    assert run.result.remote_host == "mx1.deliver.test"
    assert run.result.remote_address == f"127.0.0.1:{sink.port}"
    assert run.result.tls_version is None
    (message,) = sink.messages
    assert message.data == MESSAGE  # dot-stuffing undone by the server, 8-bit bytes untouched
    assert (message.mail_from, message.rcpt_tos) == (SENDER, ["bob@normal.deliver.test"])
    assert f"SIZE={len(MESSAGE)}" in message.mail_options
    assert "BODY=8BITMIME" in message.mail_options


def test_starttls_is_used_when_offered_and_recorded(resolver: Resolver) -> None:
    ca = trustme.CA()  # opportunistic: the certificate is not checked, so any CA will do
    with SinkServer(tls=ca.issue_cert("mx1.deliver.test")) as mx:
        run = deliver(resolver, "normal.deliver.test", ["bob@normal.deliver.test"], ports={"mx1.deliver.test": mx.port})
    assert only(run).code == 250
    assert run.result.tls_version == "TLSv1.3"
    assert mx.messages[0].tls_version == "TLSv1.3"
    assert mx.messages[0].data == MESSAGE


def test_broken_tls_falls_back_to_plaintext_once(resolver: Resolver) -> None:
    with SinkServer(tls=broken_tls_context(trustme.CA().issue_cert("mx1.deliver.test"))) as mx:
        run = deliver(resolver, "normal.deliver.test", ["bob@normal.deliver.test"], ports={"mx1.deliver.test": mx.port})
    assert only(run).code == 250
    assert run.result.tls_version is None
    assert len(mx.connections) == 2  # the failed handshake, then the plaintext connection
    assert mx.messages[0].tls_version is None


def test_smtputf8_passed_through_for_a_non_ascii_address(resolver: Resolver, sink: SinkServer) -> None:
    run = deliver(resolver, "normal.deliver.test", ["jörg@normal.deliver.test"], ports={"mx1.deliver.test": sink.port})
    assert only(run).code == 250
    assert sink.messages[0].rcpt_tos == ["jörg@normal.deliver.test"]
    assert "SMTPUTF8" in sink.messages[0].mail_options


def test_non_ascii_address_to_a_server_without_smtputf8_is_permanent(resolver: Resolver) -> None:
    with SinkServer(smtputf8=False) as mx:
        run = deliver(resolver, "normal.deliver.test", ["jörg@normal.deliver.test"], ports={"mx1.deliver.test": mx.port})
    assert (only(run).code, only(run).enhanced) == (553, "5.6.7")
    assert mx.messages == []


# --- per-recipient and per-transaction answers ---------------------------------------------------------------------


def test_greylisted_then_accepted_on_the_next_try(resolver: Resolver) -> None:
    with SinkServer(Behaviour({"greylist-*": FirstTempThenAccept})) as mx:
        ports = {"mx1.deliver.test": mx.port}
        first = deliver(resolver, "normal.deliver.test", ["greylist-bob@normal.deliver.test"], ports=ports)
        second = deliver(resolver, "normal.deliver.test", ["greylist-bob@normal.deliver.test"], ports=ports)
    (temporary,) = first.result.results
    assert temporary.temporary and not temporary.permanent
    assert (temporary.reply.code, temporary.reply.enhanced, temporary.stage) == (451, "4.7.1", "rcpt")
    assert first.result.remote_host == "mx1.deliver.test"  # the hop took the transaction: no move to mx2
    assert only(second).code == 250
    assert len(mx.messages) == 1


def test_permanent_for_one_recipient_while_another_is_accepted(resolver: Resolver) -> None:
    with SinkServer(
        Behaviour({"nobody*": Reply(550, "5.1.1", "The email account that you tried to reach does not exist")})
    ) as mx:
        run = deliver(
            resolver,
            "normal.deliver.test",
            ["alice@normal.deliver.test", "nobody@normal.deliver.test", "carol@normal.deliver.test"],
            ports={"mx1.deliver.test": mx.port},
        )
    alice, nobody, carol = run.result.results
    assert [r.recipient for r in run.result.results] == [
        "alice@normal.deliver.test",
        "nobody@normal.deliver.test",
        "carol@normal.deliver.test",
    ]
    assert alice.accepted and carol.accepted and alice.stage == "data"
    assert nobody.permanent and nobody.stage == "rcpt"
    assert nobody.reply.line() == "550 5.1.1 The email account that you tried to reach does not exist"
    assert explain(nobody.reply.line()).hard_bounce
    assert mx.messages[0].rcpt_tos == ["alice@normal.deliver.test", "carol@normal.deliver.test"]


def test_no_recipient_accepted_skips_data(resolver: Resolver) -> None:
    with SinkServer(Behaviour({"*": Reply(550, "5.1.1", "no such user")})) as mx:
        run = deliver(
            resolver,
            "normal.deliver.test",
            ["a@normal.deliver.test", "b@normal.deliver.test"],
            ports={"mx1.deliver.test": mx.port},
        )
    assert [r.stage for r in run.result.results] == ["rcpt", "rcpt"]
    assert all(r.permanent for r in run.result.results)
    assert mx.messages == []


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [(Reply(554, "5.7.1", "Message rejected as spam"), True), (Reply(451, "4.3.0", "Temporary local problem"), False)],
)
def test_reply_to_data_applies_to_every_accepted_recipient(resolver: Resolver, reply: Reply, permanent: bool) -> None:
    with SinkServer(Behaviour({"nobody": Reply(550, "5.1.1", "no such user"), "spam*": AtData(reply)})) as mx:
        run = deliver(
            resolver,
            "normal.deliver.test",
            ["spammy@normal.deliver.test", "nobody@normal.deliver.test", "bob@normal.deliver.test"],
            ports={"mx1.deliver.test": mx.port},
        )
    spammy, nobody, bob = run.result.results
    for result in (spammy, bob):
        assert result.stage == "data"
        assert result.reply.line() == reply.line()
        assert result.permanent is permanent and result.temporary is not permanent
    assert nobody.stage == "rcpt" and nobody.reply.code == 550


@pytest.mark.parametrize(
    ("mail", "permanent"), [(Reply(451, "4.7.0", "Try again later"), False), (Reply(550, "5.7.1", "Sender blocked"), True)]
)
def test_reply_to_mail_from_applies_to_every_recipient(resolver: Resolver, mail: Reply, permanent: bool) -> None:
    with SinkServer(Behaviour(mail=mail)) as mx:
        run = deliver(
            resolver,
            "normal.deliver.test",
            ["a@normal.deliver.test", "b@normal.deliver.test"],
            ports={"mx1.deliver.test": mx.port},
        )
    assert [(r.stage, r.reply.line(), r.permanent) for r in run.result.results] == [("mail", mail.line(), permanent)] * 2
    assert run.result.remote_host == "mx1.deliver.test"
    assert mx.messages == []


def test_connection_dropped_mid_data_is_temporary_for_accepted_recipients(resolver: Resolver) -> None:
    with SinkServer(Behaviour({"nobody": Reply(550, "5.1.1", "no such user"), "drop*": DropAtData()})) as mx:
        run = deliver(
            resolver,
            "normal.deliver.test",
            ["drop@normal.deliver.test", "nobody@normal.deliver.test"],
            ports={"mx1.deliver.test": mx.port},
        )
    dropped, nobody = run.result.results
    assert dropped.temporary and dropped.stage == "data"
    assert (dropped.reply.code, dropped.reply.enhanced) == (451, "4.4.2")
    assert nobody.permanent and nobody.stage == "rcpt"
    assert mx.messages == []


def test_message_bigger_than_the_announced_size_is_permanent_without_sending(resolver: Resolver) -> None:
    with SinkServer(data_size_limit=100) as mx:
        run = deliver(resolver, "normal.deliver.test", ["bob@normal.deliver.test"], ports={"mx1.deliver.test": mx.port})
    reply = only(run)
    assert (reply.code, reply.enhanced) == (552, "5.3.4")
    assert run.result.results[0].permanent
    assert mx.rcpts == [] and mx.messages == []


# --- moving on to the next hop -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        None,  # nothing listens: connection refused
        Behaviour(greeting=DROP),
        Behaviour(greeting=Reply(421, "4.3.2", "Too busy, try later")),
        Behaviour(greeting=Reply(554, "5.3.2", "No SMTP service here")),
        Behaviour(ehlo=Reply(421, "4.7.0", "Closing connection")),
    ],
    ids=["refused", "drop-at-greeting", "421-greeting", "554-greeting", "421-ehlo"],
)
def test_a_hop_that_does_not_take_the_transaction_hands_over_to_the_next(
    resolver: Resolver, sink: SinkServer, first: Behaviour | None
) -> None:
    if first is None:
        ports = {"mx1.deliver.test": refused_port(), "mx2.deliver.test": sink.port}
        run = deliver(resolver, "normal.deliver.test", ["bob@normal.deliver.test"], ports=ports)
    else:
        with SinkServer(first) as mx1:
            ports = {"mx1.deliver.test": mx1.port, "mx2.deliver.test": sink.port}
            run = deliver(resolver, "normal.deliver.test", ["bob@normal.deliver.test"], ports=ports)
            assert mx1.messages == []
    assert only(run).code == 250
    assert run.result.remote_host == "mx2.deliver.test"
    assert len(sink.messages) == 1


def test_ehlo_refused_with_5xx_falls_back_to_helo(resolver: Resolver) -> None:
    with SinkServer(Behaviour(ehlo=Reply(502, "5.5.1", "EHLO not implemented"))) as mx:
        run = deliver(resolver, "normal.deliver.test", ["bob@normal.deliver.test"], ports={"mx1.deliver.test": mx.port})
    assert only(run).code == 250
    assert run.result.remote_host == "mx1.deliver.test"
    assert mx.messages[0].data == MESSAGE
    assert mx.messages[0].mail_options == []  # no ESMTP, so no SIZE or BODY parameters


def test_no_hop_reachable_gives_every_recipient_a_temporary_result(resolver: Resolver) -> None:
    with SinkServer(Behaviour(greeting=Reply(421, "4.3.2", "Too busy"))) as mx2:
        ports = {"mx1.deliver.test": refused_port(), "mx2.deliver.test": mx2.port}
        run = deliver(resolver, "normal.deliver.test", ["a@normal.deliver.test", "b@normal.deliver.test"], ports=ports)
    assert (run.result.remote_host, run.result.remote_address, run.result.tls_version) == (None, None, None)
    assert [r.recipient for r in run.result.results] == ["a@normal.deliver.test", "b@normal.deliver.test"]
    for result in run.result.results:
        assert result.temporary and result.stage == "connect"
        assert (result.reply.code, result.reply.enhanced) == (451, "4.4.1")
        assert "No answer from any MX of normal.deliver.test" in result.reply.text
        assert "mx1.deliver.test[127.0.0.1]: connection refused" in result.reply.text
        assert "mx2.deliver.test[127.0.0.1]: greeting 421 4.3.2 Too busy" in result.reply.text
    assert not explain(run.result.results[0].reply.line()).permanent


def test_a_silent_server_times_out_and_is_named_in_the_result(resolver: Resolver) -> None:
    settings = DeliverySettings(connect_timeout=0.5, command_timeout=1)
    with ScriptedServer(SILENT) as silent:
        ports = {"mx1.deliver.test": silent.port, "mx2.deliver.test": refused_port()}
        run = deliver(resolver, "normal.deliver.test", ["bob@normal.deliver.test"], ports=ports, settings=settings)
    reply = only(run)
    assert (reply.code, reply.enhanced) == (451, "4.4.1")
    assert "mx1.deliver.test[127.0.0.1]: no greeting in time" in reply.text
    assert "mx2.deliver.test[127.0.0.1]: connection refused" in reply.text
    assert silent.connections == 1


def test_ip_literal_transport_host_is_used_as_is(resolver: Resolver, sink: SinkServer) -> None:
    route = Route("x.test", (NextHop("127.0.0.1", sink.port, 0, HopVia.TRANSPORT),), TlsRequirement.OPPORTUNISTIC)

    async def go() -> TransactionResult:
        pool = DeliveryPool(DeliverySettings(), helo_hostname=HELO, resolver=resolver, port_override=1)  # not an MX hop
        try:
            return await pool.send(route, SENDER, ["bob@x.test"], MESSAGE)
        finally:
            await pool.close()

    result = asyncio.run(go())
    assert result.results[0].accepted
    assert result.remote_address == f"127.0.0.1:{sink.port}"
    assert resolver.queries == 0


# --- MTA-STS: verified TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sts_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def policies(sts_ca: trustme.CA) -> Iterator[PolicyServer]:
    replies = {"sts.deliver.test": PolicyReply(policy_text("enforce", "mx1.sts.deliver.test", "*.pool.sts.deliver.test"))}
    with PolicyServer(sts_ca, replies) as server:
        yield server


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def deliver_sts(resolver: Resolver, policies: PolicyServer, mx: SinkServer, ca: trustme.CA) -> Run:
    settings = DeliverySettings(connect_timeout=5, command_timeout=10)
    return deliver(
        resolver,
        "sts.deliver.test",
        ["bob@sts.deliver.test"],
        # rogue.deliver.test (not in the policy) would take plaintext mail at the sink: it must never be tried
        ports={"mx1.sts.deliver.test": mx.port, "a.pool.sts.deliver.test": refused_port(), "rogue.deliver.test": mx.port},
        settings=settings,
        router=Router(resolver, settings, policies.fetcher()),
        tls_context=trusting(ca),
    )


def test_enforce_delivers_over_verified_tls(resolver: Resolver, policies: PolicyServer, sts_ca: trustme.CA) -> None:
    with SinkServer(tls=sts_ca.issue_cert("mx1.sts.deliver.test")) as mx:
        run = deliver_sts(resolver, policies, mx, sts_ca)
    assert only(run).code == 250
    assert run.result.remote_host == "mx1.sts.deliver.test"
    assert run.result.tls_version == "TLSv1.3"
    assert [m.tls_version for m in mx.messages] == ["TLSv1.3"]


@pytest.mark.parametrize(
    "certificate",
    ["untrusted-ca", "wrong-name", "no-starttls"],
)
def test_enforce_never_falls_back_to_plaintext(
    resolver: Resolver, policies: PolicyServer, sts_ca: trustme.CA, certificate: str
) -> None:
    if certificate == "untrusted-ca":
        tls: trustme.LeafCert | None = trustme.CA().issue_cert("mx1.sts.deliver.test")
    elif certificate == "wrong-name":
        tls = sts_ca.issue_cert("mx.somewhere-else.test")
    else:
        tls = None
    with SinkServer(tls=tls) as mx:
        run = deliver_sts(resolver, policies, mx, sts_ca)
    result = run.result.results[0]
    assert result.temporary
    assert (result.reply.code, result.reply.enhanced, result.stage) == (451, "4.7.5", "starttls")
    assert "MTA-STS policy of sts.deliver.test" in result.reply.text
    assert mx.messages == [] and mx.rcpts == []
    assert len(mx.connections) == 1  # no second, plaintext connection


# --- connection reuse ----------------------------------------------------------------------------------------------


def send_many(resolver: Resolver, route: Route, count: int, ports: Mapping[str, int], settings: DeliverySettings) -> DeliveryPool:
    async def go() -> DeliveryPool:
        pool = DeliveryPool(settings, helo_hostname=HELO, resolver=resolver, port_override=ports)
        try:
            for n in range(count):
                result = await pool.send(route, SENDER, [f"user{n}@normal.deliver.test"], MESSAGE)
                assert result.results[0].accepted
        finally:
            await pool.close()
        return pool

    return asyncio.run(go())


NORMAL = Route("normal.deliver.test", (NextHop("mx1.deliver.test", 25, 10, HopVia.MX),), TlsRequirement.OPPORTUNISTIC)


def test_five_messages_to_one_hop_share_one_connection(resolver: Resolver, sink: SinkServer) -> None:
    pool = send_many(resolver, NORMAL, 5, {"mx1.deliver.test": sink.port}, DeliverySettings())
    assert (pool.stats.connections_opened, pool.stats.connections_reused, pool.stats.messages_sent) == (1, 4, 5)
    assert len(sink.connections) == 1
    assert [m.connection for m in sink.messages] == [1] * 5
    assert not sink.connections[0].open  # closed by pool.close()


def test_messages_per_connection_is_honoured(resolver: Resolver, sink: SinkServer) -> None:
    settings = DeliverySettings(destinations=(DestinationLimits("default", messages_per_connection=2),))
    pool = send_many(resolver, NORMAL, 5, {"mx1.deliver.test": sink.port}, settings)
    assert [c.messages for c in sink.connections] == [2, 2, 1]
    assert (pool.stats.connections_opened, pool.stats.connections_reused) == (3, 2)


def test_a_connection_the_server_closed_while_idle_is_replaced_quietly(resolver: Resolver) -> None:
    with SinkServer(idle_timeout=0.3) as mx, SinkServer() as backup:
        ports = {"mx1.deliver.test": mx.port, "mx2.deliver.test": backup.port}
        route = Route(
            "normal.deliver.test",
            (NextHop("mx1.deliver.test", 25, 10, HopVia.MX), NextHop("mx2.deliver.test", 25, 20, HopVia.MX)),
            TlsRequirement.OPPORTUNISTIC,
        )

        async def go() -> tuple[DeliveryPool, list[TransactionResult]]:
            pool = DeliveryPool(DeliverySettings(), helo_hostname=HELO, resolver=resolver, port_override=ports)
            results = [await pool.send(route, SENDER, ["a@normal.deliver.test"], MESSAGE)]
            await asyncio.sleep(0.8)  # the server drops the idle connection
            results.append(await pool.send(route, SENDER, ["b@normal.deliver.test"], MESSAGE))
            await pool.close()
            return pool, results

        pool, results = asyncio.run(go())
    assert [r.remote_host for r in results] == ["mx1.deliver.test", "mx1.deliver.test"]  # not a failure: no move to mx2
    assert all(r.results[0].accepted for r in results)
    assert pool.stats.connections_opened == 2 and backup.connections == []


def test_idle_connections_close_after_idle_connection_seconds(resolver: Resolver, sink: SinkServer) -> None:
    settings = DeliverySettings(idle_connection_seconds=0.2)

    async def go() -> tuple[int, int]:
        pool = DeliveryPool(settings, helo_hostname=HELO, resolver=resolver, port_override={"mx1.deliver.test": sink.port})
        await pool.send(NORMAL, SENDER, ["a@normal.deliver.test"], MESSAGE)
        idle_before = pool.idle_connections
        await asyncio.sleep(0.6)
        idle_after = pool.idle_connections
        await pool.close()
        return idle_before, idle_after

    assert asyncio.run(go()) == (1, 0)
    deadline = time.monotonic() + 2
    while sink.connections[0].open and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sink.connections[0].open
