"""Is the plan live? Each planned record looked up through the shared ``Resolver`` and compared by meaning.

Comparison is by what receivers read, not by bytes: SPF by its terms (``ip4:192.0.2.10`` is the
same however the record orders them), DKIM by its key, MX and PTR by host name in any case. A
record the owner has legitimately moved on from (DMARC raised to ``quarantine``, reports sent to
an outside service, extra SPF includes for another sender) is still *present*, with the difference
in ``detail``; *wrong* is kept for what breaks sending or checking. A lookup that got no answer
(timeout, SERVFAIL) is *failed*, not *missing*: "your DNS did not answer" is not "you forgot it".
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from coldrelay.dns.dkim import parse_tag_list
from coldrelay.dns.mtasts import is_sts_record, parse_mx, parse_sts_record
from coldrelay.dns.resolver import Lookup, Resolver, reverse_name
from coldrelay.dns.spf import parse_spf, spf_records
from coldrelay.dns.tlsrpt import is_tlsrpt_record, parse_tlsrpt_record
from coldrelay.provision.records import DnsRecord, PtrRecord, RecordPlan

__all__ = ["CheckStatus", "RecordCheck", "all_required_present", "verify_plan"]


class CheckStatus(StrEnum):
    PRESENT = "present"
    WRONG = "wrong"
    MISSING = "missing"
    FAILED = "failed"
    """The lookup itself got no answer; the record may or may not be there."""


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """One planned record against what DNS answered."""

    record: DnsRecord | PtrRecord
    status: CheckStatus
    found: tuple[str, ...] = ()
    detail: str = ""

    @property
    def required(self) -> bool:
        """PTRs count as required: the large receivers refuse or junk mail from IPs without reverse DNS."""
        return self.record.required if isinstance(self.record, DnsRecord) else True

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def rtype(self) -> str:
        return self.record.rtype if isinstance(self.record, DnsRecord) else "PTR"

    @property
    def expected(self) -> str:
        return self.record.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.rtype,
            "expected": self.expected,
            "required": self.required,
            "status": self.status.value,
            "found": list(self.found),
            "detail": self.detail,
        }


def all_required_present(checks: Sequence[RecordCheck]) -> bool:
    return all(c.status is CheckStatus.PRESENT for c in checks if c.required)


def _host(text: str) -> str:
    return text.strip().rstrip(".").lower()


def _unanswered(record: DnsRecord | PtrRecord, lookup: Lookup) -> RecordCheck | None:
    """The check for a lookup that found nothing or failed; ``None`` when there are records to compare."""
    if lookup.failed:
        return RecordCheck(record, CheckStatus.FAILED, detail=f"lookup {lookup.status.value}: {lookup.error}".rstrip(": "))
    if not lookup.ok or not lookup.records:
        return RecordCheck(record, CheckStatus.MISSING, detail=f"no {lookup.rdtype} record at {lookup.name}")
    return None


def _check_mx(record: DnsRecord, lookup: Lookup) -> RecordCheck:
    preference, _, host = record.value.partition(" ")
    found = lookup.records
    pairs = [(r.split()[0], _host(r.split()[-1])) for r in found if len(r.split()) == 2]
    match = [pref for pref, target in pairs if target == _host(host)]
    others = [target for _, target in pairs if target != _host(host)]
    also = f"; other MX hosts: {', '.join(others)}" if others else ""
    if not match:
        shown = ", ".join(parse_mx(found)) or "nothing usable"
        return RecordCheck(record, CheckStatus.WRONG, found, f"MX points to {shown} where the plan has {host}")
    if preference not in match:
        return RecordCheck(
            record, CheckStatus.PRESENT, found, f"MX {host} has preference {match[0]} where the plan has {preference}{also}"
        )
    return RecordCheck(record, CheckStatus.PRESENT, found, also.removeprefix("; "))


def _check_address(record: DnsRecord, lookup: Lookup) -> RecordCheck:
    wanted = ipaddress.ip_address(record.value)
    addresses = []
    for text in lookup.records:
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    if wanted in addresses:
        return RecordCheck(record, CheckStatus.PRESENT, lookup.records)
    shown = ", ".join(lookup.records)
    return RecordCheck(
        record, CheckStatus.WRONG, lookup.records, f"{record.name} has {record.rtype} {shown} where the plan has {record.value}"
    )


def _spf_terms(text: str) -> list[str]:
    """The record's mechanisms in a comparable form (ip networks canonical, lower-case names)."""
    terms = []
    for term in parse_spf(text).terms:
        if term.is_modifier:
            terms.append(f"{term.name}={term.value}")
        elif term.network is not None:
            net = term.network
            shown = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
            terms.append(f"{'' if term.qualifier == '+' else term.qualifier}{term.name}:{shown}")
        else:
            terms.append(f"{'' if term.qualifier == '+' else term.qualifier}{term.text.lstrip('+-~?').lower()}")
    return terms


def _check_spf(record: DnsRecord, lookup: Lookup) -> RecordCheck:
    published = spf_records(lookup.records)
    if not published:
        return RecordCheck(record, CheckStatus.MISSING, lookup.records, f"no SPF record among the TXT records at {record.name}")
    if len(published) > 1:
        return RecordCheck(
            record, CheckStatus.WRONG, tuple(published), f"{len(published)} SPF records: receivers treat that as a permerror"
        )
    have, want = _spf_terms(published[0]), _spf_terms(record.value)
    missing = [t for t in want if t not in have]
    extra = [t for t in have if t not in want]
    all_have = [t for t in have if t.endswith("all")]
    all_want = [t for t in want if t.endswith("all")]
    problems = []
    if missing:
        lacking = [t for t in missing if not t.endswith("all")]
        replaced = [t for t in extra if t.split(":")[0] in {m.split(":")[0] for m in lacking} and not t.endswith("all")]
        if lacking and replaced:
            problems.append(f"SPF has {' '.join(replaced)} where the plan has {' '.join(lacking)}")
        elif lacking:
            problems.append(f"SPF lacks {' '.join(lacking)}")
        if all_want and all_have != all_want:
            problems.append(f"SPF ends with {' '.join(all_have) or 'no all'} where the plan has {' '.join(all_want)}")
    if problems:
        return RecordCheck(record, CheckStatus.WRONG, (published[0],), "; ".join(problems))
    kept = [t for t in extra if not t.endswith("all")]
    return RecordCheck(record, CheckStatus.PRESENT, (published[0],), f"SPF also has {' '.join(kept)}" if kept else "")


def _check_dkim(record: DnsRecord, lookup: Lookup) -> RecordCheck:
    want = parse_tag_list(record.value).tags
    keys = [r for r in lookup.records if "p=" in r]
    if not keys:
        return RecordCheck(record, CheckStatus.MISSING, lookup.records, f"no DKIM key among the TXT records at {record.name}")
    for text in keys:
        tags = parse_tag_list(text).tags
        if "".join(tags.get("p", "").split()) == want["p"]:
            if tags.get("k", "rsa") != want.get("k", "rsa"):
                return RecordCheck(record, CheckStatus.WRONG, (text,), f"DKIM key type is k={tags.get('k', 'rsa')}")
            return RecordCheck(record, CheckStatus.PRESENT, (text,))
    return RecordCheck(record, CheckStatus.WRONG, tuple(keys), "DKIM key differs from this server's key: mail would fail DKIM")


def _check_dmarc(record: DnsRecord, lookup: Lookup) -> RecordCheck:
    published = [r for r in lookup.records if r.lstrip().upper().startswith("V=DMARC1")]
    if not published:
        return RecordCheck(record, CheckStatus.MISSING, lookup.records, f"no DMARC record at {record.name}")
    if len(published) > 1:
        return RecordCheck(record, CheckStatus.WRONG, tuple(published), "several DMARC records: receivers ignore them all")
    have = parse_tag_list(published[0], fold_case=True)
    want = parse_tag_list(record.value, fold_case=True).tags
    if not have.ok or have.tags.get("p") not in ("none", "quarantine", "reject"):
        return RecordCheck(record, CheckStatus.WRONG, tuple(published), "the DMARC record has no valid p= policy")
    notes = [
        f"{tag}={have.tags.get(tag, '(unset)')} where the plan has {tag}={want[tag]}"
        for tag in ("p", "rua", "adkim", "aspf")
        if have.tags.get(tag, "r" if tag in ("adkim", "aspf") else None) != want[tag]
    ]
    return RecordCheck(record, CheckStatus.PRESENT, tuple(published), "; ".join(notes))


def _check_sts(record: DnsRecord, lookup: Lookup) -> RecordCheck:
    published = [r for r in lookup.records if is_sts_record(r)]
    if not published:
        return RecordCheck(record, CheckStatus.MISSING, lookup.records, f"no v=STSv1 record at {record.name}")
    have = parse_sts_record(published[0]).policy_id
    want = parse_sts_record(record.value).policy_id
    if len(published) > 1 or have != want:
        detail = f"MTA-STS id is {have} where the plan has {want}: senders keep the old policy until the id changes"
        return RecordCheck(record, CheckStatus.WRONG, tuple(published), detail)
    return RecordCheck(record, CheckStatus.PRESENT, tuple(published))


def _check_tlsrpt(record: DnsRecord, lookup: Lookup) -> RecordCheck:
    published = [r for r in lookup.records if is_tlsrpt_record(r)]
    if not published:
        return RecordCheck(record, CheckStatus.MISSING, lookup.records, f"no v=TLSRPTv1 record at {record.name}")
    have = parse_tlsrpt_record(published[0])
    if have.problems:
        return RecordCheck(
            record, CheckStatus.WRONG, tuple(published), f"TLS-RPT record has problems: {', '.join(have.problems)}"
        )
    want = parse_tlsrpt_record(record.value).rua
    detail = "" if set(want) <= set(have.rua) else f"reports go to {', '.join(have.rua)} where the plan has {', '.join(want)}"
    return RecordCheck(record, CheckStatus.PRESENT, tuple(published), detail)


def _check_txt(record: DnsRecord, lookup: Lookup) -> RecordCheck:
    value = record.value
    if value.startswith("v=spf1"):
        return _check_spf(record, lookup)
    if value.startswith("v=DKIM1"):
        return _check_dkim(record, lookup)
    if value.startswith("v=DMARC1"):
        return _check_dmarc(record, lookup)
    if value.startswith("v=STSv1"):
        return _check_sts(record, lookup)
    if value.startswith("v=TLSRPTv1"):
        return _check_tlsrpt(record, lookup)
    if value in lookup.records:
        return RecordCheck(record, CheckStatus.PRESENT, (value,))
    return RecordCheck(record, CheckStatus.WRONG, lookup.records, "the TXT text differs")


async def _check_cname(record: DnsRecord, resolver: Resolver, plan: RecordPlan) -> RecordCheck:
    """A CNAME to the mail host, or (accepted as well) the mail host's own addresses at that name."""
    lookup = await resolver.lookup(record.name, "CNAME")
    if lookup.ok and lookup.records:
        if _host(lookup.records[0]) == _host(record.value):
            return RecordCheck(record, CheckStatus.PRESENT, lookup.records)
        detail = f"{record.name} is an alias of {_host(lookup.records[0])} where the plan has {record.value}"
        return RecordCheck(record, CheckStatus.WRONG, lookup.records, detail)
    if lookup.failed:
        return _unanswered(record, lookup) or RecordCheck(record, CheckStatus.FAILED)
    wanted = {r.value for r in plan.records if r.name == record.value and r.rtype in ("A", "AAAA")}
    addresses = await resolver.lookup_many([(record.name, "A"), (record.name, "AAAA")])
    found = tuple(a for lk in addresses if lk.ok for a in lk.records)
    if not found:
        return RecordCheck(record, CheckStatus.MISSING, detail=f"{record.name} has no CNAME and no address")
    if wanted and wanted <= {str(ipaddress.ip_address(a)) for a in found}:
        return RecordCheck(record, CheckStatus.PRESENT, found, f"addresses instead of a CNAME to {record.value}")
    return RecordCheck(record, CheckStatus.WRONG, found, f"{record.name} has addresses {', '.join(found)}, not the mail host's")


async def _check_ptr(record: PtrRecord, resolver: Resolver) -> RecordCheck:
    lookup = await resolver.lookup(reverse_name(record.ip), "PTR")
    unanswered = _unanswered(record, lookup)
    if unanswered is not None:
        return RecordCheck(record, unanswered.status, detail=f"{record.ip} has no reverse DNS ({record.where})")
    names = [_host(r) for r in lookup.records]
    if _host(record.value) in names:
        return RecordCheck(record, CheckStatus.PRESENT, lookup.records)
    detail = f"PTR of {record.ip} is {', '.join(names)} where the plan has {record.value} ({record.where})"
    return RecordCheck(record, CheckStatus.WRONG, lookup.records, detail)


async def _check_record(record: DnsRecord, resolver: Resolver, plan: RecordPlan) -> RecordCheck:
    if record.rtype == "CNAME":
        return await _check_cname(record, resolver, plan)
    lookup = await resolver.lookup(record.name, record.rtype)
    unanswered = _unanswered(record, lookup)
    if unanswered is not None:
        return unanswered
    if record.rtype == "MX":
        return _check_mx(record, lookup)
    if record.rtype in ("A", "AAAA"):
        return _check_address(record, lookup)
    if record.rtype == "TXT":
        return _check_txt(record, lookup)
    if record.value in lookup.records:  # pragma: no cover - the plan has no other types today
        return RecordCheck(record, CheckStatus.PRESENT, lookup.records)
    return RecordCheck(record, CheckStatus.WRONG, lookup.records, "the value differs")  # pragma: no cover


async def verify_plan(plan: RecordPlan, resolver: Resolver) -> list[RecordCheck]:
    """Every record and PTR of the plan checked concurrently, in plan order."""
    jobs = [_check_record(record, resolver, plan) for record in plan.records]
    jobs += [_check_ptr(ptr, resolver) for ptr in plan.ptr_records]
    return list(await asyncio.gather(*jobs))
