"""``check_domain``: every check for one domain, concurrently, in one report.

The MX lookup runs once and feeds the MX section, reverse DNS (each MX
address) and the blocklists (the given sending IPs, else the mail hosts'
addresses). Everything else runs side by side, so a full check costs about two
round trips, however many selectors and IPs are asked about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from coldrelay.dns.bimi import check_bimi
from coldrelay.dns.dkim import check_dkim
from coldrelay.dns.dmarc import check_dmarc
from coldrelay.dns.dnsbl import BlocklistConfig, check_blocklists
from coldrelay.dns.dnssec import check_dnssec
from coldrelay.dns.mtasts import PolicyFetcher, check_mta_sts
from coldrelay.dns.mx import MxResult, lookup_mx, mx_section
from coldrelay.dns.ptr import check_ptr
from coldrelay.dns.report import Report, Section
from coldrelay.dns.resolver import Resolver
from coldrelay.dns.spf import check_spf
from coldrelay.dns.tlsrpt import check_tls_rpt


def normalise_domain(domain: str) -> str:
    """What the user typed, as a domain: no scheme, no path, no trailing dot, lowercase, IDNA."""
    text = domain.strip().lower()
    for prefix in ("http://", "https://", "mailto:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.split("/", 1)[0].split("@")[-1].rstrip(".")
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return text


async def check_domain(
    resolver: Resolver,
    domain: str,
    *,
    selectors: Sequence[str] = (),
    ips: Sequence[str] = (),
    fetcher: PolicyFetcher | None = None,
    blocklists: BlocklistConfig | None = None,
) -> Report:
    """All sections for ``domain``: mx, spf, dkim, dmarc, ptr, mta_sts, tls_rpt, bimi, dnssec, blocklists."""
    domain = normalise_domain(domain)
    mx_task: asyncio.Future[MxResult] = asyncio.ensure_future(lookup_mx(resolver, domain))
    after_mx = asyncio.ensure_future(_after_mx(resolver, domain, mx_task, ips, blocklists))
    sections: list[Section] = list(
        await asyncio.gather(
            check_spf(resolver, domain, ips),
            check_dkim(resolver, domain, selectors),
            check_dmarc(resolver, domain),
            check_mta_sts(resolver, domain, fetcher=fetcher),
            check_tls_rpt(resolver, domain),
            check_bimi(resolver, domain, fetcher=fetcher),
            check_dnssec(resolver, domain),
        )
    )
    mx, ptr, listed = await after_mx
    report = Report(domain)
    for section in (mx, *sections, ptr, listed):
        report.sections[section.name] = section
    return report


async def _after_mx(
    resolver: Resolver,
    domain: str,
    mx_task: asyncio.Future[MxResult],
    ips: Sequence[str],
    blocklists: BlocklistConfig | None,
) -> tuple[Section, Section, Section]:
    mx = await mx_task
    addresses = list(mx.addresses)
    ptr, listed = await asyncio.gather(
        check_ptr(resolver, ips, addresses, domain=domain),
        check_blocklists(resolver, list(ips) or addresses, [domain], blocklists),
    )
    return mx_section(mx), ptr, listed
