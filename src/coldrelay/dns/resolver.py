"""One resolver object every check shares: where to ask, how long to wait, what to remember.

Checks never raise on DNS trouble: a ``Lookup`` says whether the name exists
(NXDOMAIN), exists without that type (NODATA), or the lookup itself failed
(SERVFAIL, TIMEOUT). Those are different findings for a sender: "no SPF record"
is not "your DNS host did not answer".
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.nameserver
import dns.rdatatype
import dns.resolver


class LookupStatus(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    """The name does not exist."""
    NODATA = "nodata"
    """The name exists but has no record of this type."""
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Nameserver:
    """A nameserver address with its port (tests and split-horizon setups use other ports than 53)."""

    host: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> Nameserver:
        """``192.0.2.1``, ``192.0.2.1:5353``, ``[2001:db8::1]:53`` or ``2001:db8::1``."""
        text = text.strip()
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            return cls(host, int(rest.lstrip(":") or 53))
        if text.count(":") == 1:
            host, _, port = text.partition(":")
            return cls(host, int(port))
        return cls(text)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Lookup:
    """The outcome of one question: status, the records as text, and whether DNSSEC validated them."""

    name: str
    rdtype: str
    status: LookupStatus
    records: tuple[str, ...] = ()
    ttl: int = 0
    authenticated: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is LookupStatus.OK

    @property
    def failed(self) -> bool:
        """The lookup did not get an answer at all (as opposed to an answer of 'nothing there')."""
        return self.status in (LookupStatus.SERVFAIL, LookupStatus.TIMEOUT, LookupStatus.ERROR)


def _rdata_text(rdata: object) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:  # TXT: the character-strings joined, as RFC 7208 and RFC 6376 read them
        return b"".join(strings).decode("utf-8", errors="replace")
    return str(rdata.to_text())  # type: ignore[attr-defined]


class Resolver:
    """Asynchronous DNS lookups with per-nameserver ports, retries on timeout/SERVFAIL and a TTL cache."""

    def __init__(
        self,
        nameservers: Sequence[Nameserver | str] | None = None,
        *,
        timeout: float = 3.0,
        retries: int = 2,
        cache_size: int = 1024,
        dnssec: bool = True,
    ) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            servers = [ns if isinstance(ns, Nameserver) else Nameserver.parse(ns) for ns in nameservers]
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(s.host, s.port) for s in servers]
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout
        if dnssec:
            self._resolver.use_edns(0, dns.flags.DO, 1232)
        self.timeout = timeout
        self.retries = retries
        self._cache: OrderedDict[tuple[str, str], tuple[float, Lookup]] = OrderedDict()
        self._cache_size = cache_size
        self.queries = 0
        """How many questions went to the network (cache hits excluded): useful in tests and reports."""

    @property
    def nameservers(self) -> list[str]:
        return [str(ns) for ns in self._resolver.nameservers]

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        """Ask once (with retries); never raises for DNS conditions."""
        key = (name.rstrip(".").lower(), rdtype.upper())
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            self._cache.move_to_end(key)
            return cached[1]
        result = await self._ask(key[0], key[1])
        ttl = result.ttl if result.ok else 60
        if not result.failed:
            self._cache[key] = (time.monotonic() + max(ttl, 1), result)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    async def _ask(self, name: str, rdtype: str) -> Lookup:
        last: Lookup | None = None
        for _attempt in range(self.retries + 1):
            self.queries += 1
            try:
                answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
            except dns.resolver.NXDOMAIN:
                return Lookup(name, rdtype, LookupStatus.NXDOMAIN)
            except (dns.exception.Timeout, dns.resolver.LifetimeTimeout):
                last = Lookup(name, rdtype, LookupStatus.TIMEOUT, error=f"no answer within {self.timeout:g} s")
                continue
            except dns.resolver.NoNameservers as exc:
                last = Lookup(name, rdtype, LookupStatus.SERVFAIL, error=str(exc)[:200])
                continue
            except (dns.exception.DNSException, OSError, ValueError) as exc:
                return Lookup(name, rdtype, LookupStatus.ERROR, error=str(exc)[:200])
            authenticated = bool(answer.response.flags & dns.flags.AD)
            if answer.rrset is None:
                return Lookup(name, rdtype, LookupStatus.NODATA, authenticated=authenticated)
            records = tuple(_rdata_text(rdata) for rdata in answer.rrset)
            return Lookup(name, rdtype, LookupStatus.OK, records, answer.rrset.ttl, authenticated)
        assert last is not None
        return last

    async def lookup_many(self, questions: Sequence[tuple[str, str]]) -> list[Lookup]:
        """Several questions at once (checks fan out; the whole domain check is one wait)."""
        return list(await asyncio.gather(*(self.lookup(name, rdtype) for name, rdtype in questions)))


def reverse_name(ip: str) -> str:
    """``192.0.2.1`` -> ``1.2.0.192.in-addr.arpa``; IPv6 likewise under ip6.arpa."""
    import dns.reversename

    return str(dns.reversename.from_address(ip)).rstrip(".")


def is_rdtype(text: str) -> bool:
    try:
        dns.rdatatype.from_text(text)
    except dns.rdatatype.UnknownRdatatype:
        return False
    return True
