"""BIMI: the ``default._bimi`` TXT record, its logo and evidence URLs, and the DMARC enforcement BIMI requires.

Mailbox providers show a BIMI logo only for mail that passes DMARC from a
domain whose DMARC policy enforces (``p=quarantine`` at 100 % or
``p=reject``, never ``sp=none``); Gmail and Apple Mail also want a Verified
Mark Certificate (the ``a=`` URL). Not publishing BIMI is a choice, not a
fault, so its absence is information only.

DMARC is read here with a deliberately small parser (the ``dmarc`` section
does the full audit); the logo is fetched with the MTA-STS
:class:`~coldrelay.dns.mtasts.PolicyFetcher`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from coldrelay.dns.mtasts import FetchResult, FetchStatus, PolicyFetcher
from coldrelay.dns.report import Finding, Section, Severity
from coldrelay.dns.resolver import Lookup, Resolver

MAX_LOGO_BYTES = 32 * 1024
"""The size mailbox providers ask SVG logos to stay under."""
_FETCH_LIMIT = 1024 * 1024
_BIMI_LIKE = re.compile(r"\s*v\s*=\s*bimi", re.IGNORECASE)
_BIMI_V1 = re.compile(r"v[ \t]*=[ \t]*BIMI1[ \t]*(;|$)")
_TAG = re.compile(r"[a-z][a-z0-9_]*")
_DMARC_V1 = re.compile(r"\s*v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)
_SPF_V1 = re.compile(r"v=spf1(\s|$)", re.IGNORECASE)
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registrable domain (``news.example.co.uk`` -> ``example.co.uk``); a public suffix stays itself."""
    return str(_psl().privatesuffix(domain) or domain)


# --- the BIMI record ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BimiRecord:
    text: str
    tags: dict[str, str] = field(default_factory=dict)
    syntax_errors: tuple[str, ...] = ()

    @property
    def logos(self) -> list[str]:
        return [u.strip() for u in self.tags.get("l", "").split(",") if u.strip()]

    @property
    def evidence(self) -> str:
        return self.tags.get("a", "").strip()


def parse_bimi_record(text: str) -> BimiRecord:
    """Tag=value pairs after the version; duplicate tags and pieces without ``=`` are syntax errors."""
    parts = [p.strip(" \t") for p in text.split(";")]
    if parts and parts[-1] == "":
        parts.pop()
    tags: dict[str, str] = {}
    errors: list[str] = []
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        name = name.strip(" \t")
        if not eq or not _TAG.fullmatch(name):
            errors.append(part)
        elif name in tags or name == "v":
            errors.append(f"{name}= repeated")
        else:
            tags[name] = value.strip(" \t")
    return BimiRecord(text, tags, tuple(errors))


def https_url_problem(url: str, suffix: str = "") -> str | None:
    """None when ``url`` is an https URL with a host name (and a path ending in ``suffix``); else the problem code."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return "not-https"
    if not _HOST.fullmatch((parts.hostname or "").lower()):
        return "no-host"
    if suffix and not parts.path.lower().endswith(suffix):
        return "wrong-suffix"
    return None


# --- DMARC, the small version ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DmarcPolicy:
    """What BIMI needs from one DMARC record: p, sp and pct."""

    domain: str
    p: str
    sp: str | None
    pct: int | None
    testing: bool
    """DMARCbis ``t=y``: receivers apply one policy level less."""
    record: str

    def to_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "p": self.p, "sp": self.sp, "pct": self.pct, "t": self.testing, "record": self.record}


def read_dmarc(domain: str, lookup: Lookup) -> tuple[DmarcPolicy | None, int]:
    """The single ``v=DMARC1`` record at ``_dmarc.<domain>`` and how many there were (receivers ignore two or more)."""
    found = [r for r in lookup.records if _DMARC_V1.match(r)] if lookup.ok else []
    if len(found) != 1:
        return None, len(found)
    tags: dict[str, str] = {}
    for part in found[0].split(";")[1:]:
        name, eq, value = part.partition("=")
        if eq:
            tags.setdefault(name.strip().lower(), value.strip().lower())
    pct_text = tags.get("pct")
    pct = int(pct_text) if pct_text is not None and pct_text.isdigit() else None
    return DmarcPolicy(domain, tags.get("p", ""), tags.get("sp"), pct, tags.get("t") == "y", found[0]), 1


def enforces(policy: str, pct: int | None, testing: bool = False) -> bool:
    """BIMI's bar: reject, or quarantine applied to all mail (an explicit pct must be 100, no ``t=y``)."""
    if policy == "reject":
        return True  # with pct below 100 or t=y the rest is still quarantined
    return policy == "quarantine" and (pct is None or pct == 100) and not testing


# --- the logo ----------------------------------------------------------------------------------------------------


def tiny_ps_problems(svg: str) -> list[str]:
    """What keeps an SVG from the SVG Tiny Portable/Secure profile BIMI asks for (a light textual check)."""
    problems = []
    root = re.search(r"<svg\b[^>]*>", svg, re.IGNORECASE)
    if root is None or not re.search(r"""baseProfile\s*=\s*["']tiny-ps["']""", root.group(0)):
        problems.append('the <svg> element lacks baseProfile="tiny-ps"')
    if not re.search(r"<title\b", svg, re.IGNORECASE):
        problems.append("there is no <title>")
    if re.search(r"<script\b", svg, re.IGNORECASE):
        problems.append("it contains a <script>")
    if re.search(r"""(?:xlink:)?href\s*=\s*["']\s*(?:https?:|//)""", svg, re.IGNORECASE):
        problems.append("it references external files")
    return problems


def _logo_findings(url: str, result: FetchResult, section: Section) -> None:
    section.details["logo"] = {
        "url": url,
        "status": result.status.value,
        "http_status": result.status_code,
        "content_type": result.content_type,
        "bytes": len(result.body),
        "error": result.error,
    }
    if result.status is FetchStatus.TOO_LARGE:
        section.add(
            Severity.WARNING,
            "bimi.logo-too-large",
            f"The logo at {url} is over {_FETCH_LIMIT // 1024} KiB; providers skip logos over {MAX_LOGO_BYTES // 1024} KiB.",
            "Export the logo as SVG Tiny PS without embedded bitmaps or metadata and keep it under 32 KiB.",
        )
        return
    if not result.ok:
        section.add(
            Severity.ERROR,
            "bimi.logo-unreachable",
            f"The logo at {url} could not be downloaded: {result.describe()}.",
            "Host the SVG on an HTTPS server with a valid public certificate, reachable without login, and check the l= URL.",
        )
        return
    if 300 <= result.status_code < 400:
        section.add(
            Severity.WARNING,
            "bimi.logo-redirect",
            f"The logo URL answers with a redirect (HTTP {result.status_code}); not every mailbox provider follows it.",
            f"Put the final URL of the SVG in the l= tag: {result.location}."
            if result.location
            else "Put the final URL of the SVG in the l= tag.",
        )
        return
    if result.status_code != 200:
        section.add(
            Severity.ERROR,
            "bimi.logo-http-status",
            f"The logo URL answers HTTP {result.status_code} instead of the SVG file.",
            f"Upload the SVG so that {url} answers 200 with the file.",
        )
        return
    if result.media_type != "image/svg+xml":
        section.add(
            Severity.WARNING,
            "bimi.logo-content-type",
            f'The logo is served as "{result.content_type or "no content type"}" instead of image/svg+xml.',
            "Configure the web server to send Content-Type: image/svg+xml for .svg files.",
        )
    text = result.body.decode("utf-8", errors="replace")
    if not re.search(r"<svg\b", text, re.IGNORECASE):
        section.add(
            Severity.ERROR,
            "bimi.logo-invalid",
            f"The file at {url} is not an SVG image.",
            "Publish the logo as an SVG Tiny PS file and point l= at it.",
        )
        return
    if len(result.body) > MAX_LOGO_BYTES:
        section.add(
            Severity.WARNING,
            "bimi.logo-too-large",
            f"The logo is {len(result.body)} bytes; mailbox providers skip logos over {MAX_LOGO_BYTES // 1024} KiB.",
            "Simplify the SVG (no embedded bitmaps, fonts or metadata) until it is under 32 KiB.",
        )
    problems = tiny_ps_problems(text)
    if problems:
        section.details["logo"]["tiny_ps_problems"] = problems
        section.add(
            Severity.WARNING,
            "bimi.logo-not-tiny-ps",
            f"The logo is not SVG Tiny PS: {'; '.join(problems)}.",
            'Convert it to SVG Tiny PS: version="1.2" baseProfile="tiny-ps" on <svg>, a <title>, no scripts or external links.',
        )


# --- the check ---------------------------------------------------------------------------------------------------


def _bimi_records(lookup: Lookup) -> tuple[list[str], list[str]]:
    """(records meant as BIMI, those with the exact ``v=BIMI1`` version)."""
    like = [r for r in lookup.records if _BIMI_LIKE.match(r)] if lookup.ok else []
    return like, [r for r in like if _BIMI_V1.match(r)]


def _dmarc_findings(domain: str, org: str, own: Lookup, org_lookup: Lookup | None, section: Section) -> None:
    example = f'_dmarc.{domain}. TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@{domain}"'
    article = "/smtp-errors/google-550-5-7-26-dmarc-policy"
    own_policy, own_count = read_dmarc(domain, own)
    org_policy, org_count = read_dmarc(org, org_lookup) if org_lookup is not None else (None, 0)
    if own.failed or (own_policy is None and own_count == 0 and org_lookup is not None and org_lookup.failed):
        section.add(
            Severity.WARNING,
            "bimi.dmarc-lookup-failed",
            f"The DMARC lookup for {domain} failed, so BIMI's DMARC requirement could not be checked.",
            "Make sure every authoritative nameserver answers TXT questions for _dmarc names, then run the check again.",
        )
        return
    applied = own_policy or (org_policy if own_count == 0 else None)
    if applied is None:
        count, where = (own_count, domain) if own_count else (org_count, org)
        problem = f"has {count} DMARC records at _dmarc.{where}, which receivers ignore" if count > 1 else "has no DMARC record"
        section.add(
            Severity.ERROR,
            "bimi.dmarc-missing",
            f"{domain} {problem}; BIMI logos are only shown for domains with an enforcing DMARC policy.",
            f"Publish one DMARC record such as {example}, once your mail passes DMARC (see {article}).",
        )
        return
    inherited = applied is not own_policy
    effective = (applied.sp or applied.p) if inherited else applied.p
    section.details["dmarc"] = {**applied.to_dict(), "inherited": inherited, "effective_policy": effective}
    if not enforces(effective, applied.pct, applied.testing):
        detail = f"p={effective or '(missing)'}"
        if effective == "quarantine" and applied.pct is not None:
            detail += f" with pct={applied.pct}"
        if effective == "quarantine" and applied.testing:
            detail += " with t=y"
        section.add(
            Severity.ERROR,
            "bimi.dmarc-not-enforced",
            f"The DMARC policy that applies to {domain} is {detail}; BIMI needs p=quarantine (at 100%) or p=reject.",
            f"Change the record at _dmarc.{applied.domain} to p=quarantine or p=reject, without pct below 100 or t=y, "
            f"after checking your DMARC reports show all your mail passing (see {article}).",
        )
    if applied.sp == "none" and not inherited:
        section.add(
            Severity.ERROR,
            "bimi.dmarc-sp-none",
            f"The DMARC record at _dmarc.{applied.domain} has sp=none, which rules out BIMI for mail under it.",
            f"Remove sp=none from the record at _dmarc.{applied.domain} or set sp=quarantine.",
        )
    if (
        not inherited
        and org_policy is not None
        and org != domain
        and not enforces(org_policy.p, org_policy.pct, org_policy.testing)
    ):
        section.add(
            Severity.WARNING,
            "bimi.dmarc-org-not-enforced",
            f"The organisational domain {org} has DMARC p={org_policy.p or '(missing)'}; "
            "several providers also require it to enforce.",
            f"Move _dmarc.{org} to p=quarantine or p=reject once its mail passes DMARC (see {article}).",
        )


def _spf_findings(domain: str, lookup: Lookup, section: Section) -> None:
    spf = [r for r in lookup.records if _SPF_V1.match(r)] if lookup.ok else []
    if len(spf) != 1:
        return  # the spf section reports missing and duplicate records
    terms = spf[0].lower().split()
    if "+all" in terms or "all" in terms:
        section.add(
            Severity.ERROR,
            "bimi.spf-pass-all",
            f"The SPF record of {domain} ends in +all (anyone may send as you), which disqualifies the domain from BIMI.",
            "End the SPF record with -all or ~all and list only your real senders (e.g. v=spf1 include:_spf.example.net -all).",
        )


async def check_bimi(
    resolver: Resolver,
    domain: str,
    *,
    fetcher: PolicyFetcher | None = None,
    fetch_logo: bool = True,
    selector: str = "default",
) -> Section:
    """The BIMI section: the assertion record (with the organisational-domain fallback), DMARC, SPF and the logo."""
    domain = domain.strip().rstrip(".").lower()
    section = Section("bimi")
    org = organizational_domain(domain)
    first = f"{selector}._bimi.{domain}"
    fallback = f"default._bimi.{org}"
    questions = [(first, "TXT"), (f"_dmarc.{domain}", "TXT"), (domain, "TXT")]
    if fallback != first:
        questions.append((fallback, "TXT"))
    if org != domain:
        questions.append((f"_dmarc.{org}", "TXT"))
    answers = dict(zip(questions, await resolver.lookup_many(questions), strict=True))
    example = f'{first}. TXT "v=BIMI1; l=https://{domain}/brand/logo.svg; a=https://{domain}/brand/vmc.pem"'

    record_name = first
    lookup = answers[(first, "TXT")]
    like, exact = _bimi_records(lookup)
    if not lookup.failed and not exact and fallback != first:
        if like:
            section.records.extend(like)
            section.add(
                Severity.ERROR,
                "bimi.bad-version",
                f'The record at {first} does not start with "v=BIMI1", so mailbox providers ignore it.',
                f"Replace it with {example}.",
            )
            like = []
        record_name = fallback
        lookup = answers[(fallback, "TXT")]
        like, exact = _bimi_records(lookup)
    if lookup.failed:
        section.add(
            Severity.WARNING,
            "bimi.lookup-failed",
            f"The DNS lookup of {record_name} failed ({lookup.status.value}), so BIMI could not be checked.",
            "Make sure every authoritative nameserver of the domain answers TXT questions, then run the check again.",
        )
        return section
    section.records.extend(like)
    section.details["record_name"] = record_name
    if like and not exact:
        section.add(
            Severity.ERROR,
            "bimi.bad-version",
            f'The record at {record_name} does not start with "v=BIMI1", so mailbox providers ignore it.',
            f"Replace it with {example}.",
        )
        return section
    if not exact:
        if not section.findings:
            section.add(
                Severity.INFO,
                "bimi.missing",
                f"{domain} publishes no BIMI record, so no brand logo is shown next to its mail.",
                f"Optional: with DMARC at p=quarantine or p=reject, publish {example}.",
            )
        return section
    if len(exact) > 1:
        section.add(
            Severity.ERROR,
            "bimi.multiple-records",
            f"{record_name} has {len(exact)} BIMI records; mailbox providers then show no logo.",
            f"Keep a single record, e.g. {example}.",
        )
        return section
    record = parse_bimi_record(exact[0])
    section.details["record"] = {"l": record.logos, "a": record.evidence, "tags": record.tags}
    if not record.logos and not record.evidence:
        section.add(
            Severity.INFO,
            "bimi.declined",
            f"The BIMI record at {record_name} declines BIMI (empty l= and a=), so no logo is shown.",
            f"To show a logo, publish {example}.",
        )
        return section
    if record.syntax_errors:
        section.add(
            Severity.ERROR,
            "bimi.syntax",
            f"The BIMI record at {record_name} is malformed: {', '.join(record.syntax_errors)}.",
            f"Write each tag once as name=value, separated by semicolons: {example}.",
        )
    fetchable: list[str] = []
    if not record.logos:
        section.add(
            Severity.ERROR,
            "bimi.logo-missing",
            f"The BIMI record at {record_name} has no logo URL in l=, which receivers require.",
            f"Add the HTTPS URL of the SVG logo: {example}.",
        )
    for url in record.logos:
        problem = https_url_problem(url, ".svg")
        if problem in ("not-https", "no-host"):
            section.add(
                Severity.ERROR,
                "bimi.logo-not-https",
                f"The logo URL {url} is not an https:// URL with a host name; only HTTPS logos are used.",
                f"Serve the logo over HTTPS and publish {example}.",
            )
        elif problem == "wrong-suffix":
            section.add(
                Severity.ERROR,
                "bimi.logo-not-svg",
                f"The logo URL {url} does not end in .svg; BIMI logos must be SVG files.",
                "Convert the logo to SVG Tiny PS and point l= at the .svg file.",
            )
        else:
            fetchable.append(url)
    if not record.evidence:
        section.add(
            Severity.WARNING,
            "bimi.no-vmc",
            "The record has no a= certificate (VMC or CMC), so Gmail and Apple Mail will not show the logo.",
            f"Obtain a Verified Mark Certificate or Common Mark Certificate and publish its PEM URL in a=: {example}.",
        )
    elif https_url_problem(record.evidence) is not None:
        section.add(
            Severity.ERROR,
            "bimi.vmc-not-https",
            f"The certificate URL {record.evidence} is not an https:// URL with a host name.",
            f"Serve the VMC/CMC PEM file over HTTPS and publish {example}.",
        )
    _dmarc_findings(domain, org, answers[(f"_dmarc.{domain}", "TXT")], answers.get((f"_dmarc.{org}", "TXT")), section)
    _spf_findings(domain, answers[(domain, "TXT")], section)
    if fetch_logo and fetchable:
        result = await (fetcher or PolicyFetcher()).get(fetchable[0], resolver=resolver, max_bytes=_FETCH_LIMIT)
        _logo_findings(fetchable[0], result, section)
    if not any(f.severity is Severity.ERROR for f in section.findings):
        policy = section.details.get("dmarc", {}).get("effective_policy")
        tail = f" and DMARC p={policy} meets BIMI's requirement." if policy else "."
        section.findings.insert(0, Finding(Severity.OK, "bimi.valid", f"The BIMI record at {record_name} is valid{tail}"))
    return section


__all__ = [
    "BimiRecord",
    "DmarcPolicy",
    "check_bimi",
    "enforces",
    "https_url_problem",
    "organizational_domain",
    "parse_bimi_record",
    "read_dmarc",
    "tiny_ps_problems",
]
