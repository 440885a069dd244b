"""Where a recipient domain's mail goes: the ordered next hops and whether TLS must be verified.

The order of decisions is Postfix's: an explicit ``[transports]`` entry for the exact domain wins,
then the smarthost, then DNS (RFC 5321 section 5.1: MX records sorted by preference, equal
preferences in random order so load spreads; no MX records means the domain itself is the MX;
RFC 7505: a lone null MX ``0 .`` means the domain takes no mail). MTA-STS (RFC 8461) then decides
the TLS requirement for MX routes only: a transport or smarthost is the operator's own choice of
peer, not the recipient domain's.

DNS trouble never becomes a bounce: SERVFAIL and timeouts are temporary (``451 4.4.3``), only an
authoritative "does not exist" (NXDOMAIN, or no MX and no address) or a null MX is permanent.
Every refusal is a :class:`RouteError` that reads like a remote reply, so the worker feeds it to
``coldrelay.errors.explain`` like any other answer.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

from coldrelay.config import DeliverySettings
from coldrelay.dns.mtasts import PolicyFetcher, mx_matches
from coldrelay.dns.mx import MxHost, MxResult, lookup_mx
from coldrelay.dns.resolver import LookupStatus, Resolver
from coldrelay.mta.delivery.sts_policy import StsDecision, StsPolicyCache

SMTP_PORT = 25


class HopVia(enum.StrEnum):
    """How a hop was chosen (the delivery log and the DSN say it)."""

    MX = "mx"
    IMPLICIT_MX = "implicit-mx"
    TRANSPORT = "transport"
    SMARTHOST = "smarthost"


class TlsRequirement(enum.StrEnum):
    OPPORTUNISTIC = "opportunistic"
    """STARTTLS whenever offered, certificate not checked, plaintext when TLS fails (RFC 7435)."""
    VERIFIED = "verified"
    """STARTTLS required with a certificate valid for the MX host name; never plaintext (MTA-STS enforce)."""


@dataclass(frozen=True, slots=True)
class NextHop:
    host: str
    port: int
    preference: int
    via: HopVia


@dataclass(frozen=True, slots=True)
class Route:
    domain: str
    hops: tuple[NextHop, ...]
    """In the order to try."""
    tls: TlsRequirement
    """VERIFIED when the domain has an MTA-STS policy in enforce mode."""
    mx_patterns: tuple[str, ...] = ()
    """The policy's ``mx:`` patterns (hops not matching them were dropped when enforcing)."""


class RouteError(Exception):
    """No hop can be chosen; reads like a remote reply so ``errors.explain`` can classify it."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.code = code
        self.enhanced = enhanced
        self.text = text
        self.permanent = code >= 500

    def reply_line(self) -> str:
        """``556 5.1.10 ...``: the form ``coldrelay.errors.explain`` takes."""
        return f"{self.code} {self.enhanced} {self.text}"


def normalise_domain(domain: str) -> str:
    """Lower case, no trailing dot, IDNA A-labels (DNS only knows those); RouteError when unusable."""
    name = domain.strip().rstrip(".").lower()
    if not name or ".." in name or any(c.isspace() for c in name) or "@" in name:
        raise RouteError(553, "5.1.3", f'The recipient domain "{domain}" is not a valid domain name')
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        raise RouteError(553, "5.1.3", f'The recipient domain "{domain}" is not a valid domain name') from None


class Router:
    """Turns a recipient domain into a :class:`Route`; keeps MTA-STS policies for their ``max_age``.

    ``clock`` and ``rng`` are there for tests (policy expiry, the order of equal-preference MX hosts).
    One Router is shared by every delivery of a worker so the policy cache is shared too.
    """

    def __init__(
        self,
        resolver: Resolver,
        settings: DeliverySettings,
        policy_fetcher: PolicyFetcher | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._resolver = resolver
        self._settings = settings
        self._policies = StsPolicyCache(resolver, policy_fetcher or PolicyFetcher(user_agent="coldrelay-delivery/1"), clock=clock)
        self._rng = rng or random.Random()

    async def route(self, domain: str) -> Route:
        """The hops for ``domain`` in the order to try; raises :class:`RouteError`."""
        name = normalise_domain(domain)
        transport = self._settings.transports.get(name)
        if transport is not None:
            hop = NextHop(transport.host, transport.port, 0, HopVia.TRANSPORT)
            return Route(name, (hop,), TlsRequirement.OPPORTUNISTIC)
        smarthost = self._settings.smarthost
        if smarthost is not None:
            hop = NextHop(smarthost.host, smarthost.port, 0, HopVia.SMARTHOST)
            return Route(name, (hop,), TlsRequirement.OPPORTUNISTIC)
        # The policy's TXT question goes out with the MX question: one wait instead of two.
        mx, policy = await asyncio.gather(lookup_mx(self._resolver, name), self._policies.decision(name))
        hops = self._mx_hops(mx)
        return apply_policy(name, hops, policy)

    def _mx_hops(self, mx: MxResult) -> list[NextHop]:
        domain = mx.domain
        if mx.lookup_failed:
            raise RouteError(451, "4.4.3", f"DNS lookup for {domain} failed ({mx.error}); will try again")
        if mx.status is LookupStatus.NXDOMAIN:
            raise RouteError(550, "5.1.2", f"Recipient domain {domain} does not exist (DNS NXDOMAIN)")
        if mx.implicit:
            return [NextHop(domain, SMTP_PORT, 0, HopVia.IMPLICIT_MX)]
        if mx.status is LookupStatus.NODATA:
            raise RouteError(550, "5.1.2", f"Recipient domain {domain} has no MX record and no address, so it takes no mail")
        if mx.null_mx and not mx.hosts:
            raise RouteError(556, "5.1.10", f"Recipient domain {domain} publishes a null MX (RFC 7505): it accepts no mail")
        usable = [host for host in mx.hosts if _may_resolve(host)]
        if not usable:
            names = ", ".join(host.host for host in mx.hosts) or "none"
            raise RouteError(550, "5.4.4", f"Unable to route: no MX host of {domain} has an address ({names})")
        return [NextHop(host.host, SMTP_PORT, host.preference, HopVia.MX) for host in self._shuffled(usable)]

    def _shuffled(self, hosts: Sequence[MxHost]) -> list[MxHost]:
        """Preference order; hosts of equal preference in random order (RFC 5321 section 5.1)."""
        ordered: list[MxHost] = []
        for _preference, group in groupby(sorted(hosts, key=lambda h: h.preference), key=lambda h: h.preference):
            same = list(group)
            self._rng.shuffle(same)
            ordered.extend(same)
        return ordered


def _may_resolve(host: MxHost) -> bool:
    """Keep hosts with an address, IP literals, and hosts whose address lookup failed (it may work when
    the pool asks again); drop hosts DNS says have no address at all."""
    return host.resolves or host.ip_literal or bool(host.lookup_error)


def apply_policy(domain: str, hops: Sequence[NextHop], policy: StsDecision | None) -> Route:
    """The route under an MTA-STS decision.

    In enforce mode only hops whose host matches a policy ``mx`` pattern stay, and TLS must verify.
    When none is left the answer is temporary ``451 4.7.5``: RFC 8461 section 5 forbids delivering to
    a host the policy does not name, but the cause is usually a policy the domain is still updating
    (a new MX not yet listed), which a later try under a refreshed policy may pass; X.7.5 is RFC
    3463's "cryptographic failure", the closest code for "no host with the required TLS identity".
    """
    if policy is None or policy.mode != "enforce":
        patterns = policy.patterns if policy is not None else ()
        return Route(domain, tuple(hops), TlsRequirement.OPPORTUNISTIC, patterns)
    allowed = tuple(hop for hop in hops if any(mx_matches(pattern, hop.host) for pattern in policy.patterns))
    if not allowed:
        names = ", ".join(hop.host for hop in hops)
        raise RouteError(
            451,
            "4.7.5",
            f"MTA-STS policy of {domain} (mode enforce, mx {', '.join(policy.patterns)}) names none of its MX hosts "
            f"({names}); not delivering without a verified TLS route",
        )
    return Route(domain, allowed, TlsRequirement.VERIFIED, policy.patterns)


__all__ = [
    "HopVia",
    "NextHop",
    "Route",
    "RouteError",
    "Router",
    "TlsRequirement",
    "apply_policy",
    "normalise_domain",
]
