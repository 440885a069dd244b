"""Delivering one transaction along a route, over connections that are kept open and reused.

``send`` walks the route's hops in order; for each it resolves the host (our Resolver; IPv4 before
IPv6, because large receivers judge IPv6 senders more strictly) and tries its addresses, at most
``MAX_ATTEMPTS`` connections per call (Postfix's ``smtp_mx_address_limit``). A hop that does not
take the transaction (see ``client.HopFailure``) hands over to the next; when none takes it every
recipient gets the same synthetic temporary result naming what each hop said.

After a transaction the connection waits in the pool (keyed by host, port, address and TLS
requirement) for ``idle_connection_seconds``; the next message to the same hop reuses it after an
RSET, up to ``messages_per_connection`` messages. A connection holds its destination's politeness
slot for its whole life, idle time included: idle connections are what receivers count. So that a
full destination does not stall until idle connections time out, a finished connection is handed
straight to a send waiting for the same hop, or closed when a send waits for another host of the
same destination, and a send that finds its destination full closes idle connections to other
hosts of that destination first.

``port_override`` exists for tests and the benchmark only: recipient MX hosts listen on port 25,
loopback sinks do not. An int replaces port 25 of every MX hop, a mapping replaces it per MX host
name; transport and smarthost hops keep their configured ports.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from coldrelay.config import DeliverySettings
from coldrelay.dns.resolver import Resolver
from coldrelay.mta.delivery.client import (
    HopFailure,
    RecipientResult,
    SmtpReply,
    SmtpSession,
    Stage,
    TransactionResult,
)
from coldrelay.mta.delivery.politeness import Politeness
from coldrelay.mta.delivery.routing import HopVia, NextHop, Route, TlsRequirement

MAX_ATTEMPTS = 5
"""Connections tried per ``send`` across all hops and addresses."""
MAX_DETAIL = 600
"""Characters of hop failures quoted in the synthetic reply (it ends up in logs and DSNs)."""

PoolKey = tuple[str, int, str, TlsRequirement]


@dataclass(slots=True)
class PoolStats:
    connections_opened: int = 0
    connections_reused: int = 0
    messages_sent: int = 0
    """Transactions whose DATA was accepted."""


@dataclass(eq=False, slots=True)
class _Connection:
    session: SmtpSession
    key: PoolKey
    slot: AsyncExitStack
    limit: int
    idle_timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Failures:
    lines: list[str] = field(default_factory=list)
    hop_failures: list[HopFailure] = field(default_factory=list)

    def add(self, where: str, failure: HopFailure | str) -> None:
        if isinstance(failure, HopFailure):
            self.hop_failures.append(failure)
            self.lines.append(f"{where}: {failure.detail}")
        else:
            self.lines.append(f"{where}: {failure}")


def verification_context(settings: DeliverySettings) -> ssl.SSLContext:
    """The system's CAs plus ``tls_ca_file``: what a certificate must chain to under MTA-STS enforce."""
    context = ssl.create_default_context()
    if settings.tls_ca_file is not None:
        context.load_verify_locations(cafile=str(settings.tls_ca_file))
    return context


def _ip_literal(host: str) -> str | None:
    text = host.strip("[]")
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class DeliveryPool:
    """Sends transactions along routes; owns the open connections. Call :meth:`close` when done."""

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        helo_hostname: str,
        resolver: Resolver,
        tls_context: ssl.SSLContext | None = None,
        politeness: Politeness | None = None,
        port_override: Mapping[str, int] | int | None = None,
    ) -> None:
        self._settings = settings
        self._helo = helo_hostname
        self._resolver = resolver
        self._verified = tls_context if tls_context is not None else verification_context(settings)
        self._politeness = politeness or Politeness(settings)
        if isinstance(port_override, Mapping):
            port_override = {host.lower().rstrip("."): port for host, port in port_override.items()}
        self._port_override = port_override
        self._idle: dict[PoolKey, list[_Connection]] = {}
        self._waiters: dict[PoolKey, list[asyncio.Future[_Connection]]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.stats = PoolStats()

    # --- sending ---------------------------------------------------------------------------------------------

    async def send(self, route: Route, sender: str, recipients: Sequence[str], data: bytes) -> TransactionResult:
        """Deliver one transaction; never raises for remote or network trouble."""
        recipients = list(recipients)
        if not recipients:
            return TransactionResult(None, None, None, ())
        failures = _Failures()
        attempts = 0
        for hop in route.hops:
            if attempts >= MAX_ATTEMPTS:
                break
            addresses, problem = await self._addresses(hop.host)
            if problem:
                failures.add(hop.host, problem)
                continue
            await self._politeness.before_message(hop.host)
            port = self._port(hop)
            for address in addresses[: MAX_ATTEMPTS - attempts]:
                attempts += 1
                outcome = await self._try(hop.host, port, address, route.tls, sender, recipients, data)
                if isinstance(outcome, TransactionResult):
                    return outcome
                failures.add(f"{hop.host}[{address}]" if address != hop.host else hop.host, outcome)
        return _nobody_took_it(route, recipients, failures)

    def _port(self, hop: NextHop) -> int:
        if hop.via not in (HopVia.MX, HopVia.IMPLICIT_MX) or self._port_override is None:
            return hop.port
        if isinstance(self._port_override, int):
            return self._port_override
        return self._port_override.get(hop.host.lower().rstrip("."), hop.port)

    async def _addresses(self, host: str) -> tuple[list[str], str]:
        literal = _ip_literal(host)
        if literal is not None:
            return [literal], ""
        a, aaaa = await self._resolver.lookup_many([(host, "A"), (host, "AAAA")])
        addresses = [*(a.records if a.ok else ()), *(aaaa.records if aaaa.ok else ())]
        if addresses:
            return addresses, ""
        if a.failed or aaaa.failed:
            return [], f"address lookup failed (A {a.status.value}, AAAA {aaaa.status.value})"
        return [], "no A or AAAA record"

    async def _try(
        self, host: str, port: int, address: str, tls: TlsRequirement, sender: str, recipients: list[str], data: bytes
    ) -> TransactionResult | HopFailure:
        key: PoolKey = (host, port, address, tls)
        for _ in range(3):  # a reused connection that died under us is replaced, not counted as a failure
            try:
                connection, reused = await self._acquire(key)
            except HopFailure as failure:
                return failure
            try:
                results = await connection.session.transact(sender, recipients, data)
            except HopFailure as failure:
                await self._close(connection)
                if reused:
                    continue
                return failure
            except BaseException:
                connection.session.smtp.close()
                await connection.slot.aclose()
                raise
            if any(result.accepted and result.stage == Stage.DATA for result in results):
                self.stats.messages_sent += 1
            session = connection.session
            self._release(connection)
            return TransactionResult(host, session.remote_address, session.tls_version, tuple(results))
        return HopFailure(Stage.MAIL, "connection lost at MAIL FROM on every reused connection")

    # --- connections -----------------------------------------------------------------------------------------

    async def _acquire(self, key: PoolKey) -> tuple[_Connection, bool]:
        """An idle connection for ``key`` after a good RSET, else a new one within the politeness slots."""
        host = key[0]
        while True:
            connection = self._take_idle(key)
            if connection is None:
                if self._politeness.at_limit(host):
                    self._evict_idle_elsewhere(key)
                connection, stack = await self._wait_for_connection_or_slot(key)
                if stack is not None:
                    return await self._open(key, stack), False
            assert connection is not None
            if await connection.session.reset():
                self.stats.connections_reused += 1
                return connection, True
            await self._close(connection)  # broken while idle: not the hop's fault, open another

    async def _wait_for_connection_or_slot(self, key: PoolKey) -> tuple[_Connection | None, AsyncExitStack | None]:
        """Whichever comes first: a connection for ``key`` handed over by a finishing send, or a free slot."""
        handoff: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(handoff)
        slot = asyncio.ensure_future(self._enter_slot(key[0]))
        either: set[asyncio.Future[Any]] = {handoff, slot}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled: give back whatever arrived
            self._forget_waiter(key, handoff)
            if handoff.done() and not handoff.cancelled():
                self._close_soon(handoff.result())
            handoff.cancel()
            await _settle_slot(slot, keep=False)
            raise
        self._forget_waiter(key, handoff)
        handed = handoff.result() if handoff.done() and not handoff.cancelled() else None
        handoff.cancel()
        stack = await _settle_slot(slot, keep=handed is None)  # both arrived: the open connection wins
        return handed, stack

    def _forget_waiter(self, key: PoolKey, handoff: asyncio.Future[_Connection]) -> None:
        waiting = self._waiters.get(key, [])
        if handoff in waiting:
            waiting.remove(handoff)
        if not waiting:
            self._waiters.pop(key, None)

    async def _enter_slot(self, host: str) -> AsyncExitStack:
        stack = AsyncExitStack()
        await stack.enter_async_context(self._politeness.connection_slot(host))
        return stack

    async def _open(self, key: PoolKey, stack: AsyncExitStack) -> _Connection:
        host, port, address, tls = key

        async def connect(try_starttls: bool) -> SmtpSession:
            return await SmtpSession.open(
                host=host,
                address=address,
                port=port,
                helo_hostname=self._helo,
                tls=tls,
                verified_context=self._verified,
                connect_timeout=self._settings.connect_timeout,
                command_timeout=self._settings.command_timeout,
                try_starttls=try_starttls,
            )

        try:
            try:
                session = await connect(True)
            except HopFailure as failure:
                if not failure.fallback:
                    raise
                # Opportunistic TLS that fails at the handshake: one plaintext try on this hop (like Postfix).
                session = await connect(False)
        except BaseException:
            await stack.aclose()
            raise
        self.stats.connections_opened += 1
        limit = self._politeness.limits(host).messages_per_connection
        return _Connection(session, key, stack, limit)

    def _take_idle(self, key: PoolKey) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()  # the most recently used: keeps fewer connections warm
            if connection.idle_timer is not None:
                connection.idle_timer.cancel()
                connection.idle_timer = None
            if connection.session.alive:
                return connection
            self._close_soon(connection)
        self._idle.pop(key, None)
        return None

    def _evict_idle_elsewhere(self, key: PoolKey) -> None:
        """Close one idle connection to another host of the same destination, so its slot frees up."""
        destination = self._politeness.destination(key[0])
        for other, idle in self._idle.items():
            if other != key and idle and self._politeness.destination(other[0]) == destination:
                self._close_soon(idle.pop(0))
                return

    def _someone_waits_elsewhere(self, key: PoolKey) -> bool:
        destination = self._politeness.destination(key[0])
        return any(
            other != key and self._politeness.destination(other[0]) == destination and any(not f.done() for f in futures)
            for other, futures in self._waiters.items()
        )

    def _release(self, connection: _Connection) -> None:
        """After a transaction: hand over, park idle, or close."""
        session = connection.session
        if self._closed or not session.alive or session.transactions >= connection.limit:
            self._close_soon(connection)
            return
        for future in self._waiters.get(connection.key, []):
            if not future.done():
                future.set_result(connection)
                return
        if self._someone_waits_elsewhere(connection.key):
            self._close_soon(connection)
            return
        loop = asyncio.get_running_loop()
        connection.idle_timer = loop.call_later(self._settings.idle_connection_seconds, self._expire, connection)
        self._idle.setdefault(connection.key, []).append(connection)

    def _expire(self, connection: _Connection) -> None:
        idle = self._idle.get(connection.key, [])
        if connection in idle:
            idle.remove(connection)
            if not idle:
                self._idle.pop(connection.key, None)
        connection.idle_timer = None
        self._close_soon(connection)

    def _close_soon(self, connection: _Connection) -> None:
        if connection.idle_timer is not None:
            connection.idle_timer.cancel()
            connection.idle_timer = None
        task = asyncio.ensure_future(self._close(connection))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, connection: _Connection) -> None:
        """QUIT politely, then give the politeness slot back."""
        try:
            await connection.session.quit()
        finally:
            await connection.slot.aclose()

    async def close(self) -> None:
        """Close every idle connection (QUIT) and wait for closings in progress; sends must be finished."""
        self._closed = True
        for idle in list(self._idle.values()):
            for connection in idle:
                self._close_soon(connection)
        self._idle.clear()
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    @property
    def idle_connections(self) -> int:
        return sum(len(idle) for idle in self._idle.values())


async def _settle_slot(slot: asyncio.Future[AsyncExitStack], *, keep: bool) -> AsyncExitStack | None:
    """Finish the slot request: the stack when it was granted and is wanted, else give it back."""
    if not slot.done():
        slot.cancel()
    try:
        stack = await slot
    except asyncio.CancelledError:
        return None
    if keep:
        return stack
    await stack.aclose()
    return None


def _nobody_took_it(route: Route, recipients: list[str], failures: _Failures) -> TransactionResult:
    details = "; ".join(failures.lines) or "no host to try"
    if len(details) > MAX_DETAIL:
        details = details[: MAX_DETAIL - 3] + "..."
    if route.tls is TlsRequirement.VERIFIED and any(f.tls for f in failures.hop_failures):
        # The most useful thing to say: at least one host answered but could not prove its identity.
        text = f"Verified TLS required by the MTA-STS policy of {route.domain} failed with every MX host ({details})"
        reply, stage = SmtpReply(451, "4.7.5", text), Stage.STARTTLS
    else:
        kind = "MX" if all(hop.via in (HopVia.MX, HopVia.IMPLICIT_MX) for hop in route.hops) else "host"
        reply = SmtpReply(451, "4.4.1", f"No answer from any {kind} of {route.domain} ({details})")
        stages = {f.stage for f in failures.hop_failures}
        stage = stages.pop() if len(stages) == 1 and len(failures.hop_failures) == len(failures.lines) else Stage.CONNECT
    return TransactionResult(None, None, None, tuple(RecipientResult(r, reply, stage) for r in recipients))


__all__ = ["MAX_ATTEMPTS", "DeliveryPool", "PoolStats", "verification_context"]
