"""DNSSEC: is the domain's zone signed, does the parent publish a DS for it, and did the resolver validate the answer?

Signing is optional for mail (it matters most for DANE), so an unsigned zone
is information, not a fault. A zone that is signed halfway is worth a warning
(keys but no DS: validators treat it as unsigned), and a DS that matches no
key is an error: validating resolvers, which many receiving mail servers use,
then fail every lookup in the zone, MX and SPF included.

The AD flag (``Lookup.authenticated``) is only meaningful when the resolver
validates; without it the DS/DNSKEY comparison still shows whether the chain
of trust is in place.
"""

from __future__ import annotations

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS

from coldrelay.dns.report import Section, Severity
from coldrelay.dns.resolver import Lookup, LookupStatus, Resolver

WEAK_ALGORITHMS = {
    1: "RSAMD5",
    3: "DSA",
    5: "RSASHA1",
    6: "DSA-NSEC3-SHA1",
    7: "RSASHA1-NSEC3-SHA1",
    12: "ECC-GOST",
}
"""Signing algorithms RFC 8624 says not to use (SHA-1 ones are refused by some validators already)."""
WEAK_DIGESTS = {1: "SHA-1", 3: "GOST R 34.11-94"}
"""DS digest types RFC 8624 says not to publish any more."""


def _ancestors(domain: str) -> list[str]:
    """``a.b.example.com`` -> the name and each parent down to the registrable level (the TLD is left out)."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]


def _parse(rdtype: dns.rdatatype.RdataType, texts: tuple[str, ...]) -> list[dns.rdata.Rdata]:
    parsed = []
    for text in texts:
        try:
            parsed.append(dns.rdata.from_text(dns.rdataclass.IN, rdtype, text))
        except (dns.exception.DNSException, ValueError):
            continue
    return parsed


def ds_matches(zone: str, ds: DS, keys: list[DNSKEY]) -> bool:
    """Whether the DS record is the digest of one of the zone's DNSKEYs."""
    name = dns.name.from_text(zone)
    for key in keys:
        if key.algorithm != ds.algorithm or dns.dnssec.key_id(key) != ds.key_tag:
            continue
        try:
            expected = dns.dnssec.make_ds(name, key, ds.digest_type, validating=True)
        except (dns.exception.DNSException, ValueError):
            continue  # a digest type we cannot compute: give the record the benefit of the doubt
        if expected.digest == ds.digest:
            return True
    return False


def _failed(section: Section, names: list[str], lookups: list[Lookup]) -> bool:
    failed = [(n, lk) for n, lk in zip(names, lookups, strict=True) if lk.failed]
    if not failed:
        return False
    name, lookup = failed[0]
    section.add(
        Severity.WARNING,
        "dnssec.lookup-failed",
        f"The {lookup.rdtype} lookup for {name} failed ({lookup.status.value}); with a validating resolver "
        "a SERVFAIL can also mean the signatures do not validate.",
        f"Check the zone with a DNSSEC debugger (e.g. dnsviz.net for {name}) and make sure every nameserver answers.",
    )
    return True


async def check_dnssec(resolver: Resolver, domain: str) -> Section:
    """The DNSSEC section: validation (AD flag), DS at the parent, DNSKEY in the zone, and whether they match."""
    domain = domain.strip().rstrip(".").lower()
    section = Section("dnssec")
    names = _ancestors(domain)
    questions = [(n, "SOA") for n in names] + [(domain, "A"), (domain, "DS"), (domain, "DNSKEY")]
    answers = await resolver.lookup_many(questions)
    soas, (a, ds_lookup, key_lookup) = answers[: len(names)], answers[len(names) :]
    if _failed(section, [domain], [soas[0]]):
        return section
    if soas[0].status is LookupStatus.NXDOMAIN and a.status is LookupStatus.NXDOMAIN:
        section.add(
            Severity.WARNING,
            "dnssec.domain-not-found",
            f"{domain} does not exist in DNS, so there is nothing to check for DNSSEC.",
            "Check the spelling of the domain, or register it and publish its zone first.",
        )
        return section
    zone = next((n for n, soa in zip(names, soas, strict=True) if soa.ok), domain)
    if zone != domain:
        ds_lookup, key_lookup = await resolver.lookup_many([(zone, "DS"), (zone, "DNSKEY")])
    if _failed(section, [zone, zone], [ds_lookup, key_lookup]):
        return section
    authenticated = any(lk.authenticated for lk in (soas[0], a, ds_lookup, key_lookup))
    ds_records = [r for r in _parse(dns.rdatatype.DS, ds_lookup.records if ds_lookup.ok else ()) if isinstance(r, DS)]
    keys = [r for r in _parse(dns.rdatatype.DNSKEY, key_lookup.records if key_lookup.ok else ()) if isinstance(r, DNSKEY)]
    section.records.extend(f"{zone}. DS {r}" for r in (ds_lookup.records if ds_lookup.ok else ()))
    section.records.extend(f"{zone}. DNSKEY {r}" for r in (key_lookup.records if key_lookup.ok else ()))
    matching = [ds for ds in ds_records if ds_matches(zone, ds, keys)]
    section.details.update(
        {
            "zone": zone,
            "authenticated": authenticated,
            "ds": [{"key_tag": d.key_tag, "algorithm": int(d.algorithm), "digest_type": int(d.digest_type)} for d in ds_records],
            "dnskey": [{"key_tag": dns.dnssec.key_id(k), "flags": k.flags, "algorithm": int(k.algorithm)} for k in keys],
            "matching_ds": [d.key_tag for d in matching],
        }
    )
    where = "" if zone == domain else f" (the zone {zone} that holds {domain})"

    if authenticated:
        section.add(
            Severity.OK,
            "dnssec.validated",
            f"The resolver validated the DNSSEC signatures for {domain}.",
        )
    if ds_records and keys:
        if not matching:
            section.add(
                Severity.ERROR,
                "dnssec.ds-mismatch",
                f"The DS record at the parent of {zone} matches none of the zone's DNSKEYs, so validating resolvers "
                "reject every answer from the zone, MX and SPF included.",
                f"Publish the DS of the current key signing key at your registrar (e.g. from `dnssec-dsfromkey` for {zone}) "
                "and remove the stale one.",
            )
        else:
            section.add(
                Severity.OK,
                "dnssec.signed",
                f"{zone} is signed and its parent publishes a matching DS record{where}.",
            )
            if not authenticated:
                section.add(
                    Severity.INFO,
                    "dnssec.not-validated",
                    "The resolver used did not validate the answers (no AD flag), so the signatures themselves were not checked.",
                    "Run the check with a validating resolver (e.g. --nameserver 1.1.1.1) to confirm the signatures.",
                )
    elif ds_records:
        section.add(
            Severity.ERROR,
            "dnssec.ds-without-dnskey",
            f"The parent publishes a DS record for {zone} but the zone has no DNSKEY, so validating resolvers fail every lookup.",
            f"Either sign {zone} again with the key the DS names, or remove the DS record at your registrar.",
        )
    elif keys:
        section.add(
            Severity.WARNING,
            "dnssec.no-ds",
            f"{zone} is signed but its parent has no DS record, so validators treat it as unsigned.",
            f"Submit the DS record of the key signing key to your registrar, e.g. {zone}. DS <tag> <alg> 2 <sha-256 digest>.",
        )
    else:
        section.add(
            Severity.INFO,
            "dnssec.unsigned",
            f"{zone} is not signed with DNSSEC{where}; mail works without it, but DANE for inbound TLS needs it.",
            "Optional: enable DNSSEC at your DNS host, then publish the DS record it shows at your registrar.",
        )

    algorithms = [int(d.algorithm) for d in ds_records] + [int(k.algorithm) for k in keys]
    weak_algorithms = sorted({WEAK_ALGORITHMS[n] for n in algorithms if n in WEAK_ALGORITHMS})
    if weak_algorithms:
        section.add(
            Severity.WARNING,
            "dnssec.weak-algorithm",
            f"{zone} uses outdated signing algorithm(s) {', '.join(weak_algorithms)}, which some validators no longer accept.",
            "Roll the zone over to ECDSAP256SHA256 (algorithm 13) or ED25519 (15) and publish the new DS at your registrar.",
        )
    if ds_records and all(int(d.digest_type) in WEAK_DIGESTS for d in ds_records):
        names_used = sorted({WEAK_DIGESTS[int(d.digest_type)] for d in ds_records})
        section.add(
            Severity.WARNING,
            "dnssec.weak-digest",
            f"Every DS record for {zone} uses the outdated digest {', '.join(names_used)}.",
            "Publish a DS record with digest type 2 (SHA-256) at your registrar, then remove the old one.",
        )
    return section


__all__ = ["WEAK_ALGORITHMS", "WEAK_DIGESTS", "check_dnssec", "ds_matches"]
