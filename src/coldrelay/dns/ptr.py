"""Reverse DNS: the PTR of every sending IP and every MX address, and whether it is forward-confirmed.

Receivers look up the name of the connecting IP (PTR), then check that the
name resolves back to the same IP (forward-confirmed reverse DNS, FCrDNS).
A missing PTR, a name that does not come back to the IP, or a name that looks
like a home or cloud connection ("dynamic-203-0-113-5.pool.isp.net") all cost
delivery; Gmail refuses mail from IPs without it (550 5.7.25).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from coldrelay.dns.report import Section, Severity
from coldrelay.dns.resolver import Lookup, LookupStatus, Resolver, reverse_name

SECTION = "ptr"

KB_PTR_REQUIRED = "/smtp-errors/google-550-5-7-25-ptr-record"
KB_PTR_IPV6 = "/smtp-errors/google-550-5-7-1-ipv6-ptr-authentication"

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "::/128",
        "fc00::/7",
        "fe80::/10",
    )
)

_GENERIC_WORDS = frozenset(
    {
        "adsl",
        "broadband",
        "cable",
        "cpe",
        "cust",
        "customer",
        "dhcp",
        "dial",
        "dialin",
        "dialup",
        "dsl",
        "dyn",
        "dynamic",
        "dynip",
        "ftth",
        "generic",
        "nat",
        "pool",
        "ppp",
        "pppoe",
        "residential",
        "unassigned",
        "vdsl",
        "wireless",
        "xdsl",
    }
)
"""Words ISPs put in the PTR names of home, dial-up and dynamic connections (``dynamic``, ``pool``, ``dsl``...)."""

_CLOUD_DEFAULTS = (
    "compute.amazonaws.com",
    "compute-1.amazonaws.com",
    "compute.internal",
    "googleusercontent.com",
    "linodeusercontent.com",
    "members.linode.com",
    "vultrusercontent.com",
    "your-server.de",
    "contaboserver.net",
    "hostwindsdns.com",
    "static.akamaitechnologies.com",
)
"""Cloud providers' default reverse names, left in place when nobody set a PTR of their own."""


class Role(StrEnum):
    SENDING = "sending"
    MX = "mx"


@dataclass(frozen=True, slots=True)
class PtrResult:
    """What reverse DNS says about one IP."""

    ip: str
    role: Role
    reverse: str
    """The name asked (``1.2.0.192.in-addr.arpa``)."""
    status: LookupStatus
    names: tuple[str, ...] = ()
    """The PTR names, lower case, without the trailing dot."""
    forward: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each PTR name's A (IPv4) or AAAA (IPv6) addresses."""
    forward_failed: tuple[str, ...] = ()
    """PTR names whose forward lookup failed (SERVFAIL, timeout)."""
    generic: dict[str, str] = field(default_factory=dict)
    """PTR names that look generic, with the reason."""

    @property
    def confirmed_names(self) -> tuple[str, ...]:
        """The PTR names that resolve back to the IP (forward-confirmed)."""
        return tuple(name for name in self.names if _contains(self.forward.get(name, ()), self.ip))

    @property
    def fcrdns(self) -> bool:
        return bool(self.confirmed_names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "role": self.role.value,
            "reverse": self.reverse,
            "status": self.status.value,
            "ptr": list(self.names),
            "forward": {name: list(addresses) for name, addresses in self.forward.items()},
            "fcrdns": self.fcrdns,
            "generic": dict(self.generic),
        }


def _contains(addresses: Sequence[str], ip: str) -> bool:
    wanted = ipaddress.ip_address(ip)
    for text in addresses:
        try:
            if ipaddress.ip_address(text) == wanted:
                return True
        except ValueError:
            continue
    return False


def _ip_in_name(name: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    lowered = name.lower()
    if isinstance(ip, ipaddress.IPv4Address):
        octets = [int(o) for o in str(ip).split(".")]
        numbers = [int(n) for n in re.findall(r"\d+", lowered)]
        for i in range(len(numbers) - 3):
            window = numbers[i : i + 4]
            if window in (octets, octets[::-1]):
                return True
        compact = lowered.replace("-", "").replace(".", "").replace("_", "")
        return f"{int(ip):08x}" in compact or "".join(f"{o:03d}" for o in octets) in compact
    exploded = ip.exploded.replace(":", "")
    compact = lowered.replace("-", "").replace(".", "").replace("_", "").replace(":", "")
    if exploded in compact or exploded[16:] in compact:
        return True
    dashed = lowered.replace("-", ":")
    return str(ip) in dashed


def generic_reason(name: str, ip: str) -> str:
    """Why a PTR name looks like a home, dynamic or default cloud name; empty when it looks like a mail host's."""
    address = ipaddress.ip_address(ip)
    lowered = name.lower().rstrip(".")
    if _ip_in_name(lowered, address):
        return "it contains the IP address"
    words = set(re.findall(r"[a-z]+", lowered))
    hits = sorted(words & _GENERIC_WORDS)
    if hits:
        return f"it contains {', '.join(repr(w) for w in hits)}"
    for suffix in _CLOUD_DEFAULTS:
        if lowered == suffix or lowered.endswith("." + suffix):
            return f"it is a default {suffix} name"
    return ""


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in _PRIVATE_NETWORKS)


async def lookup_ptr(resolver: Resolver, ip: str, role: Role = Role.SENDING) -> PtrResult:
    """PTR for one (valid) IP, then the forward lookups of every PTR name, concurrently."""
    reverse = reverse_name(ip)
    ptr = await resolver.lookup(reverse, "PTR")
    names = tuple(dict.fromkeys(r.rstrip(".").lower() for r in ptr.records)) if ptr.ok else ()
    rdtype = "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"
    forwards: list[Lookup] = await resolver.lookup_many([(name, rdtype) for name in names])
    forward = {name: (lk.records if lk.ok else ()) for name, lk in zip(names, forwards, strict=True)}
    failed = tuple(name for name, lk in zip(names, forwards, strict=True) if lk.failed)
    generic = {name: reason for name in names if (reason := generic_reason(name, ip))}
    return PtrResult(ip, role, reverse, ptr.status, names, forward, failed, generic)


def _suggested_host(domain: str) -> str:
    return f"mail.{domain}" if domain else "mail.example.com"


def _add_findings(section: Section, result: PtrResult, domain: str) -> None:
    ip = result.ip
    sending = result.role is Role.SENDING
    what = "sending IP" if sending else "MX address"
    host = _suggested_host(domain)
    rdtype = "AAAA" if ":" in ip else "A"
    article = KB_PTR_IPV6 if ":" in ip else KB_PTR_REQUIRED
    set_ptr = f"`{result.reverse}. IN PTR {host}.` with `{host}. 3600 IN {rdtype} {ip}`"

    if result.status in (LookupStatus.SERVFAIL, LookupStatus.TIMEOUT, LookupStatus.ERROR):
        section.add(
            Severity.WARNING,
            "ptr.lookup-failed",
            f"The reverse lookup of {what} {ip} failed ({result.status.value}), so its PTR could not be checked.",
            f"Try again later; if it keeps failing, the nameservers of {result.reverse} are broken and the owner of the IP "
            "(your hosting provider) must fix them.",
        )
        return
    if not result.names:
        section.add(
            Severity.ERROR if sending else Severity.WARNING,
            "ptr.missing",
            f"The {what} {ip} has no PTR (reverse DNS) record, so receivers cannot tell which host it is.",
            f"Ask whoever controls {ip} (your hosting or VPS provider, usually a 'reverse DNS' field in its panel) to set "
            f"{set_ptr}; "
            + (
                f"Gmail and others refuse mail from IPs without it ({article})."
                if sending
                else "receivers distrust replies and bounces sent from a host without it."
            ),
        )
        return
    if len(result.names) > 1:
        section.add(
            Severity.WARNING,
            "ptr.multiple",
            f"The {what} {ip} has {len(result.names)} PTR records ({', '.join(result.names)}); receivers may pick any one.",
            f"Keep a single PTR: `{result.reverse}. IN PTR {result.names[0]}.`.",
        )
    bad_forward = False
    for name in result.names:
        addresses = result.forward.get(name, ())
        if name in result.forward_failed:
            bad_forward = True
            section.add(
                Severity.WARNING,
                "ptr.lookup-failed",
                f"The forward lookup of {ip}'s PTR name {name} failed, so forward confirmation could not be checked.",
                f"Make sure the nameservers of {name}'s zone answer `dig {rdtype} {name}`.",
            )
        elif not addresses:
            bad_forward = True
            section.add(
                Severity.ERROR if sending else Severity.WARNING,
                "ptr.forward-missing",
                f"The PTR name {name} of {what} {ip} has no {rdtype} record, so its reverse DNS is not forward-confirmed.",
                f"Publish `{name}. 3600 IN {rdtype} {ip}` ({article}).",
            )
        elif not _contains(addresses, ip):
            bad_forward = True
            section.add(
                Severity.ERROR if sending else Severity.WARNING,
                "ptr.forward-mismatch",
                f"The PTR name {name} of {what} {ip} resolves to {', '.join(addresses)}, not back to {ip}, so its "
                "reverse DNS is not forward-confirmed.",
                f"Add the IP to the name (`{name}. 3600 IN {rdtype} {ip}`) or change the PTR to a name that resolves to {ip}.",
            )
    for name, reason in result.generic.items():
        section.add(
            Severity.WARNING if sending else Severity.INFO,
            "ptr.generic",
            f"The PTR name {name} of {what} {ip} looks generic ({reason}), which receivers read as a home, dynamic or "
            "unconfigured server.",
            f"Set a PTR naming your own mail host, {set_ptr}, and use the same name in your server's HELO/EHLO.",
        )
    if not bad_forward and not result.generic and len(result.names) == 1:
        section.add(
            Severity.OK,
            "ptr.ok",
            f"The {what} {ip} has reverse DNS {result.names[0]}, which resolves back to it (forward-confirmed).",
        )


async def check_ptr(
    resolver: Resolver,
    ips: Sequence[str],
    mx_addresses: Sequence[str] = (),
    *,
    domain: str = "",
) -> Section:
    """The "ptr" section: PTR and forward confirmation for each sending IP and each MX address.

    ``domain`` only shapes the suggested host name in the fixes (``mail.<domain>``).
    """
    section = Section(SECTION)
    domain = domain.strip().rstrip(".").lower()
    if not ips and not mx_addresses:
        section.add(
            Severity.INFO,
            "ptr.no-ips",
            "No IP addresses were given, so reverse DNS was not checked.",
            "Pass the IPs your mail is sent from (for example `--ip 192.0.2.1`); MX addresses are checked with the domain.",
        )
        return section
    roles: dict[str, Role] = {}
    for text, role in [(ip, Role.SENDING) for ip in ips] + [(ip, Role.MX) for ip in mx_addresses]:
        address = _parse_ip(text)
        if address is None:
            section.add(
                Severity.ERROR,
                "ptr.invalid-ip",
                f"{text!r} is not an IP address, so its reverse DNS cannot be checked.",
                "Pass IPv4 addresses as 192.0.2.1 and IPv6 addresses as 2001:db8::1.",
            )
            continue
        key = str(address)
        if key in roles:
            continue  # an IP that both sends and receives is judged as a sending IP (those come first)
        roles[key] = role
        if _private(address):
            section.add(
                Severity.INFO,
                "ptr.private-ip",
                f"{key} is a private or loopback address that receivers never see, so its reverse DNS does not matter.",
                "Check the public address your mail leaves from instead (run `curl -4 https://ifconfig.me` on the mail "
                "server) and pass that one.",
            )
    public = [(ip, role) for ip, role in roles.items() if not _private(ipaddress.ip_address(ip))]
    results = await asyncio.gather(*(lookup_ptr(resolver, ip, role) for ip, role in public))
    for result in results:
        section.records += [f"{result.reverse}. PTR {name}." for name in result.names]
        rdtype = "AAAA" if ":" in result.ip else "A"
        section.records += [f"{name}. {rdtype} {a}" for name in result.names for a in result.forward.get(name, ())]
        _add_findings(section, result, domain)
    section.details = {"ips": [r.to_dict() for r in results]}
    return section
