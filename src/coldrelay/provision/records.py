"""The record plan: every DNS record a hosted domain needs before its mailboxes can send, as data.

One plan feeds three consumers, so they can never disagree: the renderers (a zone-file fragment,
JSON, CSV for people and DNS panels), ``verify`` (is each record live?) and ``push`` (write them
through a DNS provider's API). The plan is computed from the database row alone, never from DNS.

The mail host of a domain is ``box.<domain>``: a name inside the domain's own zone, so the MX,
its addresses, the MTA-STS policy and the PTR of every sending IP all agree without depending on
a second domain. Reverse DNS cannot be pushed (the IP's provider owns that zone), so PTRs are kept
apart as ``PtrRecord``: shown with the exact value to ask for, and checked by ``verify``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from coldrelay.config import Settings
from coldrelay.db import Domain
from coldrelay.dns.resolver import reverse_name

__all__ = [
    "DEFAULT_TTL",
    "MAIL_HOST_LABEL",
    "MTA_STS_MAX_AGE",
    "DnsRecord",
    "InvalidIp",
    "PtrRecord",
    "RecordPlan",
    "ed25519_selector",
    "mail_host",
    "mta_sts_policy",
    "mta_sts_policy_id",
    "normalize_ips",
    "plan_for",
]

DEFAULT_TTL = 3600
"""One hour: short enough to correct a mistake the same day, long enough not to matter to resolvers."""
MAIL_HOST_LABEL = "box"
MTA_STS_MAX_AGE = 86_400
"""One day while the policy is in testing mode; raise it (and switch to enforce) once TLS-RPT reports are clean."""


class InvalidIp(ValueError):
    """A sending IP that is not an IPv4 or IPv6 address; the message is meant for the person."""


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One record to publish in the domain's zone.

    ``name`` is absolute without the trailing dot; ``value`` is what a DNS panel takes: an MX as
    ``10 box.example.com``, a TXT as its whole text in one string (the zone-file renderer splits it
    into 255-byte strings).
    """

    name: str
    rtype: str
    value: str
    ttl: int
    purpose: str
    required: bool

    def relative_name(self, origin: str) -> str:
        """The owner name relative to ``origin`` (``@`` for the apex), as zone files and DNS panels write it."""
        if self.name == origin:
            return "@"
        return self.name.removesuffix("." + origin) if self.name.endswith("." + origin) else self.name + "."


@dataclass(frozen=True, slots=True)
class PtrRecord:
    """The reverse-DNS name one sending IP must have; set at the IP's provider, not in the domain's zone."""

    ip: str
    value: str
    where: str = "set at the IP's provider"

    @property
    def name(self) -> str:
        """The PTR owner name (``10.2.0.192.in-addr.arpa``), for people who run the reverse zone themselves."""
        return reverse_name(self.ip)


@dataclass(frozen=True, slots=True)
class RecordPlan:
    """Everything a domain needs in DNS, plus the MTA-STS policy the web app serves and advice for people."""

    domain: str
    mail_host: str
    records: tuple[DnsRecord, ...]
    ptr_records: tuple[PtrRecord, ...]
    mta_sts_policy: str
    notes: tuple[str, ...] = field(default=())

    def find(self, rtype: str, name: str) -> list[DnsRecord]:
        """The plan's records of one type at one name (several for A/AAAA with more IPs)."""
        return [r for r in self.records if r.rtype == rtype and r.name == name]


def mail_host(domain: str) -> str:
    """``box.<domain>``: the MX target, the name the sending IPs' PTRs point to, the policy's ``mx``."""
    return f"{MAIL_HOST_LABEL}.{domain}"


def ed25519_selector(selector: str) -> str:
    """The selector of the second, Ed25519 key: ``ed-<selector>`` (``ed-s1``).

    A prefix rather than a suffix, so DNS panels that sort by name list the Ed25519 keys together,
    and the RSA selector stays the one people already know.
    """
    return f"ed-{selector}"


def normalize_ips(ips: Iterable[str]) -> list[str]:
    """Valid IPv4/IPv6 addresses in canonical text (``2001:db8::1``), duplicates dropped, order kept.

    Raises ``InvalidIp`` naming the first bad entry: an SPF ``ip4:`` term or an A record with a typo
    would silently authorise the wrong machine.
    """
    seen: dict[str, None] = {}
    for raw in ips:
        text = raw.strip()
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise InvalidIp(f"{raw!r} is not an IPv4 or IPv6 address") from None
        seen.setdefault(str(address), None)
    return list(seen)


def mta_sts_policy(domain: str) -> str:
    """The MTA-STS policy file for the domain (RFC 8461 3.2): testing mode, the one MX, one day.

    Testing mode, because a mistake in enforce mode bounces mail for ``max_age``; the plan's notes
    say when to move on. Lines end in CRLF as the RFC's grammar writes them.
    """
    lines = ["version: STSv1", "mode: testing", f"mx: {mail_host(domain)}", f"max_age: {MTA_STS_MAX_AGE}"]
    return "\r\n".join(lines) + "\r\n"


def mta_sts_policy_id(policy: str) -> str:
    """The ``id=`` of ``_mta-sts``: derived from the policy text, so it changes exactly when the policy does.

    Senders refetch the policy only when the id changes; a hash means pushing the same plan twice
    changes nothing, and any edit of the policy is announced. 20 hex digits fit RFC 8461's 1-32 alphanumerics.
    """
    return hashlib.sha256(policy.encode("utf-8")).hexdigest()[:20]


def _spf_value(ips: Sequence[str]) -> str:
    terms = [f"ip4:{ip}" for ip in ips if ipaddress.ip_address(ip).version == 4]
    terms += [f"ip6:{ip}" for ip in ips if ipaddress.ip_address(ip).version == 6]
    # Without known IPs the MX host is the sender; "mx" costs one lookup of the ten SPF allows.
    return " ".join(["v=spf1", *(terms or ["mx"]), "-all"])


def plan_for(domain: Domain, settings: Settings) -> RecordPlan:
    """The records ``domain`` needs, from its stored IPs and active DKIM keys."""
    name = domain.name
    host = mail_host(name)
    ips = normalize_ips(domain.ips or [])
    ttl = DEFAULT_TTL
    records: list[DnsRecord] = [DnsRecord(name, "MX", f"10 {host}", ttl, "mail for the domain goes to its mail host", True)]
    for ip in ips:
        rtype = "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"
        records.append(DnsRecord(host, rtype, ip, ttl, "the mail host's address (MX target, HELO name)", True))
    records.append(DnsRecord(name, "TXT", _spf_value(ips), ttl, "SPF: only the mail host may send for the domain", True))
    for key in domain.dkim_keys:
        if key.active:
            purpose = f"DKIM public key ({key.algorithm.value}, selector {key.selector})"
            records.append(DnsRecord(key.dns_name, "TXT", key.txt_value, ttl, purpose, True))
    dmarc = f"v=DMARC1; p=none; rua=mailto:dmarc@{name}; adkim=r; aspf=r"
    records.append(DnsRecord(f"_dmarc.{name}", "TXT", dmarc, ttl, "DMARC: start with p=none and collect reports", True))
    policy = mta_sts_policy(name)
    sts = f"v=STSv1; id={mta_sts_policy_id(policy)}"
    records.append(DnsRecord(f"_mta-sts.{name}", "TXT", sts, ttl, "MTA-STS: announces the policy and its version", False))
    records.append(DnsRecord(f"mta-sts.{name}", "CNAME", host, ttl, "MTA-STS: the policy host is the mail host's web app", False))
    tlsrpt = f"v=TLSRPTv1; rua=mailto:tlsrpt@{name}"
    records.append(DnsRecord(f"_smtp._tls.{name}", "TXT", tlsrpt, ttl, "TLS-RPT: senders report TLS failures", False))
    ptrs = tuple(PtrRecord(ip, host) for ip in ips)

    notes = [
        "DMARC starts at p=none: after a clean week of reports, change it to p=quarantine.",
        f"MTA-STS starts in testing mode: the web app serves the policy at https://mta-sts.{name}/.well-known/mta-sts.txt, "
        "which needs a certificate for that name; switch to enforce once TLS-RPT reports are clean.",
        f"Reports go to dmarc@{name} and tlsrpt@{name}: create those mailboxes or change the addresses.",
    ]
    if not ips:
        notes.insert(
            0,
            f"No sending IPs are stored, so {host} has no address and SPF falls back to 'mx': "
            f"add them with: coldrelay domain ips {name} --ip IP",
        )
    else:
        notes.append(f"Ask the provider of each IP to set its reverse DNS (PTR) to {host}.")
    if settings.hostname != host:
        notes.append(
            f"This server's hostname setting is {settings.hostname}; the MX and MTA-STS use {host}, "
            "so its TLS certificate must cover that name too."
        )
    return RecordPlan(name, host, tuple(records), ptrs, policy, tuple(notes))
