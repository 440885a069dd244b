"""DMARC: the policy at ``_dmarc.<domain>`` and everything receivers read from it (RFC 7489, DMARCbis).

Discovery follows RFC 7489 section 6.6.3: the record at the domain itself, and when
there is none, the record of its organisational domain (found with the Public
Suffix List), whose ``sp=`` then applies. Both names are asked at once. Report
addresses outside the domain need the destination's consent (section 7.1):
``<policy domain>._report._dmarc.<destination host>`` must publish ``v=DMARC1``;
those records are asked concurrently too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cache
from typing import Any
from urllib.parse import unquote

from publicsuffixlist import PublicSuffixList

from coldrelay.dns.dkim import parse_tag_list
from coldrelay.dns.report import Section, Severity
from coldrelay.dns.resolver import Lookup, Resolver

KB_MISSING = "/smtp-errors/google-550-5-7-40-dmarc-record-missing"
KB_POLICY = "/smtp-errors/google-550-5-7-26-dmarc-policy"
KB_DNS_FAILURE = "/smtp-errors/google-451-4-7-26-dmarc-dns-failure"

POLICIES = ("none", "quarantine", "reject")
KNOWN_TAGS = frozenset({"v", "p", "sp", "np", "psd", "t", "pct", "adkim", "aspf", "rua", "ruf", "fo", "rf", "ri"})
"""RFC 7489 tags plus the DMARCbis additions np (non-existent subdomains), psd (public suffix domain), t (testing)."""

_VALID_RECORD = re.compile(r"^\s*v\s*=\s*DMARC1\s*(?:;|$)")
_DMARC_LIKE = re.compile(r"^\s*v\s*=\s*dmarc", re.IGNORECASE)
_VERSION_LATER = re.compile(r";\s*v\s*=\s*dmarc1\s*(?:;|$)", re.IGNORECASE)
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SIZE_LIMIT = re.compile(r"^\d+[kmgt]?$", re.IGNORECASE)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


@cache
def default_psl() -> PublicSuffixList:
    """The Public Suffix List shipped with ``publicsuffixlist`` (parsed once)."""
    return PublicSuffixList()


def organizational_domain(domain: str, psl: PublicSuffixList | None = None) -> str:
    """The registrable domain (one label below the public suffix): ``mail.example.co.uk`` -> ``example.co.uk``.

    A name that is itself a public suffix is its own organisational domain.
    """
    name = domain.strip().rstrip(".").lower()
    found = (psl or default_psl()).privatesuffix(name)
    return str(found) if found else name


@dataclass(slots=True)
class ReportUri:
    """One entry of rua= or ruf=: the URI, its scheme, the mailbox host and an optional size limit."""

    tag: str
    uri: str
    scheme: str = ""
    address: str = ""
    host: str = ""
    size_limit: str = ""
    problem: str = ""


def parse_report_uris(tag: str, value: str) -> list[ReportUri]:
    """Split ``mailto:a@x.example!10m, https://...`` into entries; a bad entry carries a ``problem``."""
    uris: list[ReportUri] = []
    for raw in value.split(","):
        text = raw.strip()
        if not text:
            continue
        entry = ReportUri(tag, text)
        uris.append(entry)
        body, bang, limit = text.rpartition("!")
        if bang and _SIZE_LIMIT.match(limit):
            entry.size_limit = limit.lower()
            text = body
        if not _URI_SCHEME.match(text):
            entry.problem = "it is not a URI (it should look like mailto:dmarc@example.com)"
            continue
        scheme, _, rest = text.partition(":")
        entry.scheme = scheme.lower()
        if entry.scheme == "mailto":
            address = unquote(rest.partition("?")[0]).strip()
            local, at, host = address.rpartition("@")
            host = host.rstrip(".").lower()
            if not at or not local or not _HOSTNAME.match(host):
                entry.problem = "the mailto: address is not a valid email address"
                continue
            entry.address, entry.host = address, host
        else:
            authority = rest.removeprefix("//").split("/", 1)[0].rpartition("@")[2]
            entry.host = authority.split(":", 1)[0].rstrip(".").lower()
    return uris


@dataclass(slots=True)
class DmarcPolicy:
    """The record as receivers read it, with RFC 7489 defaults filled in."""

    record: str
    tags: dict[str, str] = field(default_factory=dict)
    policy: str | None = None
    subdomain_policy: str | None = None
    nonexistent_policy: str | None = None
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    testing: bool = False
    rua: list[ReportUri] = field(default_factory=list)
    ruf: list[ReportUri] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tags": dict(self.tags),
            "p": self.policy,
            "sp": self.subdomain_policy,
            "np": self.nonexistent_policy,
            "pct": self.pct,
            "adkim": self.adkim,
            "aspf": self.aspf,
            "t": "y" if self.testing else "n",
            "rua": [u.uri for u in self.rua],
            "ruf": [u.uri for u in self.ruf],
        }


def _rebuild(tags: dict[str, str], **changes: str) -> str:
    """The record with some tags changed (v first, the rest in their order)."""
    merged = {k: v for k, v in tags.items() if k != "v"}
    merged.update(changes)
    return "; ".join(["v=DMARC1", *(f"{k}={v}" for k, v in merged.items())])


def _publish(policy_domain: str, record: str) -> str:
    return f'_dmarc.{policy_domain} TXT "{record}"'


def _starter_record(domain: str) -> str:
    return f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"


class _Checker:
    """Judges one DMARC record; adds findings to the section."""

    def __init__(self, section: Section, policy_domain: str, inherited: bool) -> None:
        self.section = section
        self.policy_domain = policy_domain
        self.inherited = inherited
        self._pending: list[tuple[str, str, str]] = []
        self._corrections: dict[str, str] = {}

    def add(self, severity: Severity, code: str, message: str, fix: str = "") -> None:
        self.section.add(severity, code, message, fix)

    def read(self, record: str) -> DmarcPolicy | None:
        parsed = parse_tag_list(record, fold_case=True)
        dmarc = DmarcPolicy(record, dict(parsed.tags))
        name = f"_dmarc.{self.policy_domain}"
        if not parsed.ok:
            self.add(
                Severity.ERROR,
                "dmarc.syntax-error",
                f"The DMARC record at {name} cannot be read, so receivers ignore it: {'; '.join(parsed.errors)}.",
                f"Replace it with a clean record, e.g. {_publish(self.policy_domain, _rebuild(parsed.tags))}.",
            )
            return None
        tags = parsed.tags
        for tag in parsed.names:
            if tag not in KNOWN_TAGS:
                cleaned = {k: v for k, v in tags.items() if k in KNOWN_TAGS}
                self.add(
                    Severity.WARNING,
                    "dmarc.unknown-tag",
                    f"The DMARC record has a tag receivers do not know ({tag}={tags[tag]}), so it is ignored; "
                    "often it is a misspelt tag.",
                    f"Remove or correct it: {_publish(self.policy_domain, _rebuild(cleaned))}.",
                )
        self._policies(dmarc, tags)
        self._other_values(dmarc, tags)
        self._report_invalid(tags)
        dmarc.rua = parse_report_uris("rua", tags.get("rua", ""))
        dmarc.ruf = parse_report_uris("ruf", tags.get("ruf", ""))
        for uri in dmarc.rua + dmarc.ruf:
            if uri.problem:
                self.add(
                    Severity.ERROR,
                    "dmarc.invalid-uri",
                    f"The {uri.tag}= entry '{uri.uri}' is unusable: {uri.problem}.",
                    f"Use a mailto: URI, e.g. {uri.tag}=mailto:dmarc-reports@{self.policy_domain}.",
                )
            elif uri.scheme != "mailto":
                self.add(
                    Severity.WARNING,
                    "dmarc.non-mailto-uri",
                    f"The {uri.tag}= entry '{uri.uri}' is not a mailto: address, and receivers only send reports by email.",
                    f"Use a mailto: URI, e.g. {uri.tag}=mailto:dmarc-reports@{self.policy_domain}.",
                )
        return dmarc

    def _policies(self, dmarc: DmarcPolicy, tags: dict[str, str]) -> None:
        for tag in ("p", "sp", "np"):
            if tag not in tags:
                continue
            value = tags[tag].lower()
            if value in POLICIES:
                setattr(dmarc, {"p": "policy", "sp": "subdomain_policy", "np": "nonexistent_policy"}[tag], value)
                continue
            guess = get_close_matches(value, POLICIES, n=1, cutoff=0.5)
            fallback = dmarc.policy if tag != "p" and dmarc.policy else "none"  # subdomains follow p= by default
            self._invalid(tags, tag, "none, quarantine or reject", guess[0] if guess else fallback)

    def _invalid(self, tags: dict[str, str], tag: str, expected: str, default: str) -> None:
        self._pending.append((tag, tags[tag], expected))
        self._corrections[tag] = default

    def _report_invalid(self, tags: dict[str, str]) -> None:
        """One finding per bad value; each fix shows the record with every correction applied."""
        base = tags if "p" in tags else {"p": "none", **tags}
        corrected = _publish(self.policy_domain, _rebuild(base, **self._corrections))
        for tag, value, expected in self._pending:
            if tag in ("p", "sp"):
                self.add(
                    Severity.ERROR,
                    "dmarc.invalid-policy",
                    f"{tag}={value} is not a DMARC policy ({expected}), so receivers treat the record as p=none or ignore it.",
                    f"Use a valid policy: {corrected}.",
                )
            elif tag == "np":
                self.add(
                    Severity.ERROR,
                    "dmarc.invalid-policy",
                    f"np={value} is not a DMARC policy ({expected}), so receivers ignore it for non-existent subdomains.",
                    f"Use a valid policy: {corrected}.",
                )
            else:
                self.add(
                    Severity.ERROR,
                    "dmarc.invalid-value",
                    f"{tag}={value} is not valid ({expected}), so receivers ignore it.",
                    f"Correct it or remove it: {corrected}.",
                )
        if "p" not in tags:
            self.add(
                Severity.ERROR,
                "dmarc.policy-missing",
                "The DMARC record has no p= tag, so receivers apply no policy (at best p=none).",
                f"Add the policy right after v=DMARC1: {corrected}.",
            )

    def _other_values(self, dmarc: DmarcPolicy, tags: dict[str, str]) -> None:
        if "pct" in tags:
            text = tags["pct"]
            if text.isdigit() and 0 <= int(text) <= 100:
                dmarc.pct = int(text)
            else:
                self._invalid(tags, "pct", "a whole number from 0 to 100", "100")
        for tag in ("adkim", "aspf"):
            if tag in tags:
                value = tags[tag].lower()
                if value in ("r", "s"):
                    setattr(dmarc, tag, value)
                else:
                    self._invalid(tags, tag, "r for relaxed or s for strict", "r")
        if "fo" in tags:
            options = [o.strip() for o in tags["fo"].split(":")]
            if not options or any(o not in ("0", "1", "d", "s") for o in options):
                self._invalid(tags, "fo", "0, 1, d or s, separated by colons", "1")
        if "rf" in tags:
            formats = [f.strip().lower() for f in tags["rf"].split(":")]
            if any(f != "afrf" for f in formats):
                self._invalid(tags, "rf", "afrf", "afrf")
        if "ri" in tags and not (tags["ri"].isdigit() and int(tags["ri"]) < 2**32):
            self._invalid(tags, "ri", "a number of seconds", "86400")
        if "psd" in tags and tags["psd"].lower() not in ("y", "n", "u"):
            self._invalid(tags, "psd", "y, n or u", "n")
        if "t" in tags:
            value = tags["t"].lower()
            if value in ("y", "n"):
                dmarc.testing = value == "y"
            else:
                self._invalid(tags, "t", "y or n", "n")

    def judge(self, dmarc: DmarcPolicy) -> str | None:
        """Findings about the policy in force; returns that policy (None when unusable)."""
        tags = dmarc.tags
        if dmarc.policy is None or ("sp" in tags and dmarc.subdomain_policy is None):
            return None
        effective = (dmarc.subdomain_policy or dmarc.policy) if self.inherited else dmarc.policy
        subject = "The DMARC policy that applies to this subdomain" if self.inherited else "The DMARC policy"
        if effective == "none":
            tag = "sp" if self.inherited and dmarc.subdomain_policy else "p"
            self.add(
                Severity.WARNING,
                "dmarc.policy-none",
                f"{subject} is none: receivers only report, and anyone can still send mail in your name.",
                "Once the reports show all your mail passes, move to quarantine, then reject: "
                f"{_publish(self.policy_domain, _rebuild(tags, **{tag: 'quarantine'}))}.",
            )
        else:
            self.add(
                Severity.OK,
                "dmarc.policy-enforced",
                f"{subject} is {effective}: receivers act on mail that fails authentication.",
            )
            if dmarc.pct < 100:
                self.add(
                    Severity.INFO,
                    "dmarc.pct-partial",
                    f"pct={dmarc.pct}: the {effective} policy applies to only {dmarc.pct}% of failing mail.",
                    "Raise pct to 100 (or drop it) when you are ready: "
                    f"{_publish(self.policy_domain, _rebuild(tags, pct='100'))}.",
                )
            if dmarc.testing:
                self.add(
                    Severity.INFO,
                    "dmarc.testing",
                    f"t=y: the policy is in testing mode, so receivers apply one level less than {effective}.",
                    f"Remove t=y when you are ready: {_publish(self.policy_domain, _rebuild(tags, t='n'))}.",
                )
        if not self.inherited and dmarc.policy != "none" and dmarc.subdomain_policy == "none":
            self.add(
                Severity.WARNING,
                "dmarc.subdomain-policy-none",
                f"sp=none leaves every subdomain of {self.policy_domain} unprotected although the domain itself has "
                f"p={dmarc.policy}.",
                "Drop sp= (subdomains then follow p=) or set it: "
                f"{_publish(self.policy_domain, _rebuild(tags, sp=dmarc.policy))}.",
            )
        return effective


def _external_destinations(dmarc: DmarcPolicy, policy_domain: str, psl: PublicSuffixList | None) -> list[str]:
    own = organizational_domain(policy_domain, psl)
    hosts: list[str] = []
    for uri in dmarc.rua + dmarc.ruf:
        if uri.problem or not uri.host or uri.host in hosts:
            continue
        if organizational_domain(uri.host, psl) != own:
            hosts.append(uri.host)
    return hosts


def _dmarc_records(lookup: Lookup) -> tuple[list[str], list[str]]:
    """(valid v=DMARC1 records, DMARC-looking records receivers discard)."""
    valid = [r for r in lookup.records if _VALID_RECORD.match(r)]
    broken = [r for r in lookup.records if r not in valid and (_DMARC_LIKE.match(r) or _VERSION_LATER.search(r))]
    return valid, broken


def _report_broken(section: Section, record: str, policy_domain: str, valid: list[str]) -> None:
    """A DMARC-looking record receivers discard; the fix rewrites it, or removes it when a valid one exists."""
    rewritten = _publish(policy_domain, _rebuild(parse_tag_list(record, fold_case=True).tags))
    if _DMARC_LIKE.match(record):
        code = "dmarc.invalid-version"
        message = (
            f"The record at _dmarc.{policy_domain} does not start with exactly v=DMARC1 (case matters), so receivers ignore it."
        )
        fix = f"Write the version as v=DMARC1: {rewritten}."
    else:
        code = "dmarc.version-not-first"
        message = f"The record at _dmarc.{policy_domain} does not begin with v=DMARC1, so receivers ignore it."
        fix = f"Put v=DMARC1 first: {rewritten}."
    if valid:
        fix = f'Delete the TXT record "{record}" at _dmarc.{policy_domain}; the valid record beside it is enough.'
    section.add(Severity.ERROR, code, message, fix)


async def check_dmarc(resolver: Resolver, domain: str, *, psl: PublicSuffixList | None = None) -> Section:
    """The ``dmarc`` section. ``psl`` overrides the Public Suffix List used to find the organisational domain."""
    section = Section("dmarc")
    domain = domain.strip().rstrip(".").lower()
    org = organizational_domain(domain, psl)
    questions = [(f"_dmarc.{domain}", "TXT")]
    if org != domain:
        questions.append((f"_dmarc.{org}", "TXT"))
    lookups = await resolver.lookup_many(questions)
    own = lookups[0]
    section.details.update({"domain": domain, "org_domain": org, "record_name": f"_dmarc.{domain}", "inherited": False})

    if own.failed:
        section.add(
            Severity.ERROR,
            "dmarc.lookup-failed",
            f"The DNS lookup of _dmarc.{domain} failed ({own.status.value}), so receivers cannot read your policy either.",
            f"Make every nameserver of {domain} answer for _dmarc.{domain}, then run the check again. See {KB_DNS_FAILURE}.",
        )
        return section

    valid, broken = _dmarc_records(own)
    section.records.extend(valid + broken)
    for text in broken:
        _report_broken(section, text, domain, valid)
    if len(valid) > 1:
        section.add(
            Severity.ERROR,
            "dmarc.multiple-records",
            f"_dmarc.{domain} has {len(valid)} DMARC records, and receivers ignore them all when there is more than one.",
            f"Keep exactly one, e.g. {_publish(domain, valid[0].strip())}.",
        )
        return section

    policy_domain, inherited = domain, False
    record: str | None = valid[0] if valid else None
    if record is None and len(lookups) > 1:
        parent = lookups[1]
        if parent.failed:
            section.add(
                Severity.ERROR,
                "dmarc.lookup-failed",
                f"{domain} has no DMARC record and the lookup of _dmarc.{org} (its organisational domain) failed "
                f"({parent.status.value}).",
                f"Make every nameserver of {org} answer for _dmarc.{org}, then run the check again. See {KB_DNS_FAILURE}.",
            )
            return section
        parent_valid, _parent_broken = _dmarc_records(parent)
        if len(parent_valid) == 1:
            policy_domain, record, inherited = org, parent_valid[0], True
            section.records.append(record)
            section.details.update({"inherited": True, "record_name": f"_dmarc.{org}"})
    section.details["policy_domain"] = policy_domain
    if record is None:
        if not broken:
            section.add(
                Severity.ERROR,
                "dmarc.missing",
                f"{domain} publishes no DMARC record"
                + (f", and neither does its organisational domain {org}." if org != domain else "."),
                f"Publish one, starting with monitoring: {_publish(domain, _starter_record(domain))}. See {KB_MISSING}.",
            )
        return section

    checker = _Checker(section, policy_domain, inherited)
    if inherited:
        section.add(
            Severity.INFO,
            "dmarc.inherited",
            f"{domain} has no DMARC record of its own, so receivers apply the policy of {org}.",
            f"Nothing to do if {org}'s policy suits {domain}; otherwise publish {_publish(domain, _starter_record(domain))}.",
        )
    dmarc = checker.read(record)
    if dmarc is None:
        return section
    effective = checker.judge(dmarc)
    section.details.update(dmarc.to_dict())
    section.details["effective_policy"] = effective

    if not dmarc.rua:
        section.add(
            Severity.WARNING,
            "dmarc.no-rua",
            "The DMARC record has no rua= address, so you get no reports of who sends mail in your name.",
            f"Add one: {_publish(policy_domain, _rebuild(dmarc.tags, rua=f'mailto:dmarc-reports@{policy_domain}'))}.",
        )

    hosts = _external_destinations(dmarc, policy_domain, psl)
    names = [f"{policy_domain}._report._dmarc.{host}" for host in hosts]
    authorisations = await resolver.lookup_many([(name, "TXT") for name in names])
    external: list[dict[str, Any]] = []
    for host, name, answer in zip(hosts, names, authorisations, strict=True):
        authorised: bool | None = any(_VALID_RECORD.match(r) for r in answer.records) if not answer.failed else None
        external.append({"host": host, "record_name": name, "authorized": authorised})
        if answer.failed:
            section.add(
                Severity.WARNING,
                "dmarc.external-lookup-failed",
                f"Could not check whether {host} accepts DMARC reports for {policy_domain}: the lookup of {name} failed "
                f"({answer.status.value}).",
                f"Make sure {name} answers with a TXT record v=DMARC1, then run the check again.",
            )
        elif authorised:
            section.add(
                Severity.OK,
                "dmarc.external-authorized",
                f"{host} has agreed to receive DMARC reports for {policy_domain}.",
            )
        else:
            section.add(
                Severity.WARNING,
                "dmarc.external-unauthorized",
                f"Reports go to {host}, outside your domain, but {host} has not published consent, so receivers send it none.",
                f'Ask the report receiver to publish {name} TXT "v=DMARC1" (reporting services do this when you sign up).',
            )
    section.details["external_destinations"] = external
    return section
