"""The receivers' own SPF, DKIM and DMARC verdict on a message, from the world's loopback DNS.

SPF and DMARC discovery reuse coldrelay's public pieces (``check_spf``: RFC 7208 check_host through
our Resolver; ``check_dmarc``: policy discovery and alignment), because rewriting an SPF evaluator for
test infrastructure would only add bugs. DKIM is verified independently with dkimpy and a ``dnsfunc``
that asks the world's DNS server through dnspython, so a signature coldrelay produced is checked by
code that is not coldrelay's verifier. The decision (what to refuse and with which text) is the
receiver's, in :func:`decide`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import dkim
import dns.exception
import dns.resolver

from coldrelay.dns import Resolver
from coldrelay.mta.checks.authentication import (
    Disposition,
    DkimCheck,
    DmarcCheck,
    Verdict,
    check_dmarc,
    check_spf,
)

__all__ = ["AuthOutcome", "authenticate", "dkim_dnsfunc"]


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    spf: Verdict
    dkim: Verdict
    dkim_domain: str
    dmarc: DmarcCheck

    @property
    def authenticated(self) -> bool:
        """Gmail's and Yahoo's minimum since 2024: SPF or DKIM passes."""
        return self.spf is Verdict.PASS or self.dkim is Verdict.PASS

    @property
    def dmarc_rejects(self) -> bool:
        """DMARC failed and the From domain asks receivers to refuse or quarantine such mail."""
        return self.dmarc.result is Verdict.FAIL and self.dmarc.policy in (Disposition.REJECT, Disposition.QUARANTINE)

    def summary(self) -> str:
        return f"spf={self.spf.value} dkim={self.dkim.value} dmarc={self.dmarc.result.value}"


def dkim_dnsfunc(host: str, port: int) -> Callable[..., bytes]:
    """A dkimpy ``dnsfunc`` that reads TXT records from the DNS server at host:port (blocking)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.lifetime = 3.0

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        try:
            answer = resolver.resolve(name.decode("ascii").rstrip("."), "TXT", tcp=False, raise_on_no_answer=False)
        except (dns.exception.DNSException, UnicodeError):
            return b""
        for record in answer.rrset or ():
            return b"".join(record.strings)
        return b""

    return dnsfunc


def _verify_dkim(message: bytes, host: str, port: int) -> tuple[Verdict, str]:
    try:
        verifier = dkim.DKIM(message)
        if not any(name.lower() == b"dkim-signature" for name, _value in verifier.headers):
            return Verdict.NONE, ""
        passed = verifier.verify(dnsfunc=dkim_dnsfunc(host, port))
    except dkim.DKIMException:
        return Verdict.FAIL, ""
    domain = (verifier.domain or b"").decode("ascii", errors="replace").lower()
    return (Verdict.PASS if passed else Verdict.FAIL), domain


async def authenticate(message: bytes, *, client_ip: str, helo: str, mail_from: str, dns_address: str) -> AuthOutcome:
    """SPF for MAIL FROM, DKIM (first signature) and DMARC for From, all from the DNS at ``dns_address``."""
    host, _, port = dns_address.rpartition(":")
    resolver = Resolver([dns_address], timeout=2.0, retries=1)
    spf = await check_spf(resolver, client_ip=client_ip, helo=helo, mail_from=mail_from)
    dkim_result, dkim_domain = await asyncio.to_thread(_verify_dkim, message, host, int(port))
    dmarc = await check_dmarc(message, resolver, spf, (DkimCheck(dkim_result, dkim_domain),))
    return AuthOutcome(spf.result, dkim_result, dkim_domain, dmarc)
