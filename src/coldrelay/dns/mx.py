"""MX: where a domain's mail goes, read back from DNS, and what is wrong with it.

``lookup_mx`` answers "which hosts, in which order, at which addresses"
(RFC 5321 section 5.1, including the implicit MX of a domain without MX
records and the null MX of RFC 7505). ``check_mx`` turns that answer into the
"mx" section of the report.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coldrelay.dns.report import Section, Severity
from coldrelay.dns.resolver import Lookup, LookupStatus, Resolver

SECTION = "mx"

KB_DOMAIN_NOT_FOUND = "/smtp-errors/generic-550-5-1-2"
KB_NO_HOSTS = "/smtp-errors/exim-all-relevant-mx-records-point-to-non-existent-hosts"
KB_NULL_MX_SENDER = "/smtp-errors/generic-550-5-7-27"


@dataclass(frozen=True, slots=True)
class MxHost:
    """One mail exchanger: its preference, the host it names and that host's addresses."""

    preference: int
    host: str
    """Lower case, without the trailing dot; empty for the null MX target ``.``."""
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    cname: str = ""
    """When the MX target is an alias: the name the CNAME points at (without the trailing dot)."""
    ip_literal: bool = False
    """The MX names an IP address instead of a host (not allowed; no lookups are made)."""
    lookup_error: str = ""
    """Set when the address lookups failed (SERVFAIL, timeout) and gave no address."""
    a_status: LookupStatus | None = None
    aaaa_status: LookupStatus | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.ipv4 + self.ipv6

    @property
    def resolves(self) -> bool:
        return bool(self.ipv4 or self.ipv6)

    @property
    def is_null(self) -> bool:
        return self.host == ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "preference": self.preference,
            "host": self.host or ".",
            "ipv4": list(self.ipv4),
            "ipv6": list(self.ipv6),
            "cname": self.cname,
            "ip_literal": self.ip_literal,
            "lookup_error": self.lookup_error,
        }


@dataclass(frozen=True, slots=True)
class MxResult:
    """Everything ``lookup_mx`` learnt about a domain's mail routing."""

    domain: str
    status: LookupStatus
    """The status of the MX question itself."""
    records: tuple[str, ...] = ()
    """The MX records as read (``10 mx1.example.com.``)."""
    hosts: tuple[MxHost, ...] = ()
    """Every non-null MX (or the implicit MX), sorted by preference then name."""
    null_mx: bool = False
    """The domain publishes ``MX 0 .`` (RFC 7505)."""
    implicit: bool = False
    """No MX records: the domain's own A/AAAA act as an MX of preference 0 (RFC 5321 section 5.1)."""
    lookup_failed: bool = False
    """No usable answer: the MX lookup (or, without MX records, the A/AAAA fallback) failed."""
    error: str = ""
    address_records: tuple[str, ...] = ()
    """Address records read for the targets, as zone-file lines (``mx1.example.com. A 192.0.2.1``)."""

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address mail for this domain can be delivered to, in preference order, without repeats."""
        seen: dict[str, None] = {}
        for host in self.hosts:
            for address in host.addresses:
                seen.setdefault(address, None)
        return tuple(seen)

    @property
    def accepts_mail(self) -> bool:
        """At least one MX (explicit or implicit) has an address."""
        return any(h.resolves for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "status": self.status.value,
            "null_mx": self.null_mx,
            "implicit": self.implicit,
            "lookup_failed": self.lookup_failed,
            "hosts": [h.to_dict() for h in self.hosts],
        }


def normalise_domain(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def _ip_literal(target: str) -> bool:
    text = target.strip("[]")
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_mx(text: str) -> tuple[int, str] | None:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1].rstrip(".").lower()


def _failure(lookups: Sequence[Lookup]) -> str:
    return ", ".join(f"{lk.rdtype} {lk.status.value}" for lk in lookups if lk.failed)


async def _resolve_hosts(resolver: Resolver, targets: Sequence[tuple[int, str]]) -> tuple[list[MxHost], list[str]]:
    """A, AAAA and CNAME for every host target, all at once."""
    names = sorted({host for _pref, host in targets if host and not _ip_literal(host)})
    questions = [(name, rdtype) for name in names for rdtype in ("A", "AAAA", "CNAME")]
    answers = await resolver.lookup_many(questions)
    by_key = {(q[0], q[1]): a for q, a in zip(questions, answers, strict=True)}
    hosts: list[MxHost] = []
    lines: list[str] = []
    for name in names:
        a, aaaa = by_key[(name, "A")], by_key[(name, "AAAA")]
        lines += [f"{name}. A {r}" for r in a.records] + [f"{name}. AAAA {r}" for r in aaaa.records]
    for preference, host in targets:
        if not host:
            hosts.append(MxHost(preference, ""))
            continue
        if _ip_literal(host):
            hosts.append(MxHost(preference, host, ip_literal=True))
            continue
        a, aaaa, cname = by_key[(host, "A")], by_key[(host, "AAAA")], by_key[(host, "CNAME")]
        ipv4 = a.records if a.ok else ()
        ipv6 = aaaa.records if aaaa.ok else ()
        alias = cname.records[0].rstrip(".").lower() if cname.ok and cname.records else ""
        error = "" if ipv4 or ipv6 else _failure((a, aaaa))
        hosts.append(MxHost(preference, host, ipv4, ipv6, alias, False, error, a.status, aaaa.status))
    return hosts, lines


async def lookup_mx(resolver: Resolver, domain: str) -> MxResult:
    """The domain's mail exchangers sorted by preference, each with its addresses; never raises."""
    domain = normalise_domain(domain)
    mx = await resolver.lookup(domain, "MX")
    if mx.failed:
        return MxResult(domain, mx.status, lookup_failed=True, error=f"MX {mx.status.value}")
    if mx.status is LookupStatus.NXDOMAIN:
        return MxResult(domain, mx.status)
    if mx.status is LookupStatus.NODATA:
        a, aaaa = await resolver.lookup_many([(domain, "A"), (domain, "AAAA")])
        ipv4 = a.records if a.ok else ()
        ipv6 = aaaa.records if aaaa.ok else ()
        lines = tuple(f"{domain}. A {r}" for r in ipv4) + tuple(f"{domain}. AAAA {r}" for r in ipv6)
        if ipv4 or ipv6:
            host = MxHost(0, domain, ipv4, ipv6, a_status=a.status, aaaa_status=aaaa.status)
            return MxResult(domain, mx.status, hosts=(host,), implicit=True, address_records=lines)
        failure = _failure((a, aaaa))
        return MxResult(domain, mx.status, lookup_failed=bool(failure), error=failure)
    targets: list[tuple[int, str]] = []
    for text in mx.records:
        parsed = _parse_mx(text)
        if parsed is not None:
            targets.append(parsed)
    null_mx = any(host == "" for _pref, host in targets)
    hosts, address_lines = await _resolve_hosts(resolver, targets)
    real = sorted((h for h in hosts if not h.is_null), key=lambda h: (h.preference, h.host))
    return MxResult(domain, mx.status, mx.records, tuple(real), null_mx=null_mx, address_records=tuple(address_lines))


def _mx_example(domain: str, preference: int = 10) -> str:
    return f"{domain}. 3600 IN MX {preference} mail.{domain}."


def mx_section(result: MxResult) -> Section:
    """The "mx" section for a lookup already made (``check_mx`` = ``lookup_mx`` + this)."""
    domain = result.domain
    section = Section(SECTION)
    section.records = [f"{domain}. MX {r}" for r in result.records] + list(result.address_records)
    section.details = result.to_dict()

    if result.status is not LookupStatus.NODATA and result.lookup_failed:
        section.add(
            Severity.ERROR,
            "mx.lookup-failed",
            f"The MX lookup for {domain} failed ({result.error}), so senders cannot tell where to deliver its mail.",
            f"Make sure every nameserver of {domain} answers `dig MX {domain}`; a SERVFAIL is usually a broken DNSSEC "
            "signature or a nameserver that is not serving the zone.",
        )
        return section
    if result.status is LookupStatus.NXDOMAIN:
        section.add(
            Severity.ERROR,
            "mx.domain-not-found",
            f"{domain} does not exist in DNS (NXDOMAIN), so no mail can be delivered to it.",
            f"Check the spelling; if the domain is yours, make sure it is registered and delegated to your DNS host, then "
            f"publish `{_mx_example(domain)}` (see {KB_DOMAIN_NOT_FOUND}).",
        )
        return section
    if result.status is LookupStatus.NODATA:
        _no_mx_records(section, result)
        return section

    if result.null_mx and not result.hosts:
        section.add(
            Severity.INFO,
            "mx.null",
            f"{domain} publishes a null MX (`0 .`, RFC 7505): it declares that it accepts no mail.",
            "Nothing to do if the domain really takes no mail. If you send from it, replace the null MX with a real one "
            f"(`{_mx_example(domain)}`): receivers refuse mail from a domain that accepts none ({KB_NULL_MX_SENDER}).",
        )
        return section
    if result.null_mx:
        section.add(
            Severity.ERROR,
            "mx.null-mixed",
            f"{domain} publishes a null MX next to other MX records, which RFC 7505 forbids; senders may decide it "
            "takes no mail.",
            f"If {domain} receives mail, delete `{domain}. IN MX 0 .`; if it does not, delete the other MX records.",
        )
    _check_hosts(section, result)
    return section


def _no_mx_records(section: Section, result: MxResult) -> None:
    domain = result.domain
    if result.implicit:
        addresses = ", ".join(result.addresses)
        section.add(
            Severity.WARNING,
            "mx.implicit",
            f"{domain} has no MX record, so senders deliver to its own address ({addresses}) as an implicit MX "
            "(RFC 5321 section 5.1).",
            f"Publish an MX for the server that really receives your mail, e.g. `{_mx_example(domain)}`; if the domain "
            f"should take no mail, publish `{domain}. 3600 IN MX 0 .` (RFC 7505) instead.",
        )
    elif result.lookup_failed:
        section.add(
            Severity.ERROR,
            "mx.lookup-failed",
            f"{domain} has no MX record and the fallback address lookup failed ({result.error}).",
            f"Make sure every nameserver of {domain} answers `dig A {domain}`, and publish `{_mx_example(domain)}`.",
        )
    else:
        section.add(
            Severity.ERROR,
            "mx.missing",
            f"{domain} has no MX record and no A/AAAA address, so it cannot receive mail.",
            f"Publish the MX of your mail provider, e.g. `{_mx_example(domain)}` (Google Workspace: "
            f"`{domain}. 3600 IN MX 1 smtp.google.com.`); for a domain that should take no mail, publish "
            f"`{domain}. 3600 IN MX 0 .`.",
        )


def _address_example(host: str, ip: str) -> str:
    rdtype = "AAAA" if ":" in ip else "A"
    return f"{host}. 3600 IN {rdtype} {ip}"


def _check_hosts(section: Section, result: MxResult) -> None:
    domain = result.domain
    problems = 0
    for host in result.hosts:
        record = f"{domain}. MX {host.preference} {host.host}."
        if host.ip_literal:
            problems += 1
            ip = host.host.strip("[]")
            section.add(
                Severity.ERROR,
                "mx.ip-literal",
                f"The MX record `{record}` names an IP address, but an MX must name a host, so most senders will not "
                "deliver there.",
                f"Give the address a host name and point the MX at it: `{_address_example(f'mail.{domain}', ip)}` and "
                f"`{domain}. 3600 IN MX {host.preference} mail.{domain}.`.",
            )
            continue
        if host.cname:
            problems += 1
            section.add(
                Severity.WARNING,
                "mx.cname",
                f"The MX host {host.host} is an alias (CNAME to {host.cname}); an MX must name the host itself "
                "(RFC 2181 section 10.3, RFC 5321 section 5.1) and some senders will not follow it.",
                f"Point the MX at the real name: `{domain}. 3600 IN MX {host.preference} {host.cname}.`.",
            )
        if host.resolves:
            continue
        problems += 1
        if host.lookup_error:
            section.add(
                Severity.WARNING,
                "mx.target-lookup-failed",
                f"The address lookup for the MX host {host.host} failed ({host.lookup_error}), so senders may not reach "
                "it right now.",
                f"Make sure the nameservers of {host.host}'s zone answer `dig A {host.host}` and `dig AAAA {host.host}`.",
            )
        else:
            section.add(
                Severity.ERROR,
                "mx.target-unresolvable",
                f"The MX host {host.host} has no A or AAAA record, so mail routed to it cannot be delivered.",
                f"Publish its address (`{host.host}. 3600 IN A <mail server IPv4>`) or point the MX at your provider's "
                f"current host name (see {KB_NO_HOSTS}).",
            )
    resolving = [h for h in result.hosts if h.resolves and not h.ip_literal]
    if not resolving:
        return
    names = {h.host for h in result.hosts}
    if problems == 0:
        listing = ", ".join(f"{h.preference} {h.host}" for h in resolving)
        count = len(resolving)
        section.add(
            Severity.OK,
            "mx.found",
            f"{domain} has {count} MX host{'s' if count != 1 else ''} ({listing}), each with an address.",
        )
    address_sets = {frozenset(h.addresses) for h in resolving}
    if len(names) == 1:
        only = resolving[0].host
        section.add(
            Severity.INFO,
            "mx.single-host",
            f"All of {domain}'s mail goes to one host, {only}; there is no backup MX.",
            "Nothing to do if your provider runs several servers behind that name (Google and Microsoft do); otherwise "
            f"add a second MX at a higher preference value, e.g. `{domain}. 3600 IN MX 20 mail2.{domain}.`.",
        )
    elif len(address_sets) == 1 and len(resolving) == len(result.hosts):
        shared = ", ".join(sorted(next(iter(address_sets))))
        section.add(
            Severity.INFO,
            "mx.single-host",
            f"All {len(names)} MX hosts of {domain} resolve to the same address ({shared}), so they are one server.",
            f"For a real backup, point one MX at a server at another address, e.g. `{domain}. 3600 IN MX 20 mail2.{domain}.`.",
        )


async def check_mx(resolver: Resolver, domain: str) -> Section:
    """The "mx" section: MX records, their targets and addresses, null and implicit MX."""
    return mx_section(await lookup_mx(resolver, domain))
