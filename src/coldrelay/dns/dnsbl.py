"""Blocklists: sending IPs against DNSBLs and domains against domain lists, with what each answer means.

A DNSBL is asked with an A query for ``<reversed IP>.<zone>`` (IPv4 octets or
IPv6 nibbles reversed, RFC 5782) or ``<domain>.<zone>``. NXDOMAIN means "not
listed"; an address in 127.0.0.0/8 is a return code whose meaning depends on
the list. Some answers are not listings at all: Spamhaus answers
127.255.255.252-255 when it refuses the query (a public resolver, too many
queries, a mistyped zone), SURBL and URIBL answer 127.0.0.1 for the same, and
a resolver that rewrites NXDOMAIN answers with some other address. Those are
reported as "could not check", never as "listed".

The lists are data (``BlocklistConfig``), so tests point them at zones on the
loopback server and users can add or drop lists.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from coldrelay.dns.mx import lookup_mx
from coldrelay.dns.report import Section, Severity
from coldrelay.dns.resolver import LookupStatus, Resolver

SECTION = "blocklists"

_LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")
_SEVERITY_ORDER = {Severity.OK: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.ERROR: 3}


class TargetKind(StrEnum):
    IP = "ip"
    DOMAIN = "domain"


class Outcome(StrEnum):
    LISTED = "listed"
    CLEAN = "clean"
    REFUSED = "refused"
    """The list answered with an error code (public resolver, rate limit, wrong zone): not a listing."""
    UNEXPECTED = "unexpected"
    """An answer that is no return code (outside 127.0.0.0/8): usually a resolver rewriting NXDOMAIN."""
    FAILED = "failed"
    """The DNS question itself failed (SERVFAIL, timeout)."""


@dataclass(frozen=True, slots=True)
class Listing:
    """What one return code (or one bit of a bitmask answer) means."""

    label: str
    """The list's own name for it: ``SBL``, ``PBL``, ``black``, ``PH``."""
    meaning: str
    severity: Severity = Severity.ERROR
    article: str = ""
    """Knowledge-base slug (``spamhaus-pbl-listed``) for the rejection this listing causes."""
    advice: str = ""
    """What to do about this kind of listing, when it differs from "fix the cause, then request removal"."""


@dataclass(frozen=True, slots=True)
class Blocklist:
    """One DNS blocklist zone and how to read its answers."""

    name: str
    zone: str
    kind: TargetKind
    lookup_url: str
    """Where a sender sees the listing and its evidence; ``{target}`` is replaced by the IP or domain."""
    removal_url: str = ""
    codes: Mapping[str, Listing] = field(default_factory=dict)
    """Exact answers and their meaning."""
    bits: Mapping[int, Listing] = field(default_factory=dict)
    """For bitmask lists (SURBL, URIBL): the bits of the last octet and their meaning."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """Exact answers that mean the list refused or could not answer the question."""
    error_prefix: str = ""
    """Every answer starting with this (``127.255.255.``) is a query error."""
    refused_bit: bool = False
    """Bitmask lists: bit 0x1 of the last octet means "query refused"."""
    default: Listing = Listing("listed", "return code")
    """Any other 127.0.0.0/8 answer: its label, and the meaning the answer is appended to."""
    ipv6: bool = False
    """Whether the list answers for IPv6 addresses (reversed nibbles)."""
    article: str = "dnsbl-listed"

    def query_name(self, target: str) -> str:
        """``192.0.2.1`` -> ``1.2.0.192.<zone>``; ``2001:db8::1`` -> 32 reversed nibbles; a domain as is."""
        if self.kind is TargetKind.IP:
            address = ipaddress.ip_address(target)
            if isinstance(address, ipaddress.IPv4Address):
                prefix = ".".join(reversed(str(address).split(".")))
            else:
                prefix = ".".join(reversed(address.exploded.replace(":", "")))
            return f"{prefix}.{self.zone}"
        return f"{target}.{self.zone}"

    def url(self, target: str) -> str:
        return self.lookup_url.replace("{target}", target)

    def interpret(self, answers: Sequence[str]) -> tuple[Outcome, tuple[Listing, ...], str]:
        """Read the A answers: the outcome, the listings found and, when refused or unexpected, why."""
        listings: list[Listing] = []
        errors: list[str] = []
        unexpected: list[str] = []
        for text in answers:
            try:
                address = ipaddress.IPv4Address(text)
            except ValueError:
                unexpected.append(text)
                continue
            if text in self.errors:
                errors.append(self.errors[text])
            elif self.error_prefix and text.startswith(self.error_prefix):
                errors.append(f"{text}, an error code of the list")
            elif address not in _LOOPBACK_NET:
                unexpected.append(text)
            elif self.bits:
                last = int(text.rsplit(".", 1)[1])
                if self.refused_bit and last & 1:
                    errors.append(f"{text}, the list refused the query")
                    continue
                decoded = [listing for bit, listing in sorted(self.bits.items()) if last & bit]
                known = sum(self.bits)
                if last & ~known:
                    decoded.append(replace(self.default, meaning=f"{self.default.meaning} {text}"))
                listings += decoded
                if not decoded:
                    unexpected.append(text)
            elif text in self.codes:
                listings.append(self.codes[text])
            elif text == "127.0.0.1":
                errors.append("127.0.0.1, which RFC 5782 rules out as a listing and usually means the list refuses this resolver")
            else:
                listings.append(replace(self.default, meaning=f"{self.default.meaning} {text}"))
        if listings:
            return Outcome.LISTED, tuple(dict.fromkeys(listings)), ""
        if errors:
            return Outcome.REFUSED, (), "; ".join(dict.fromkeys(errors))
        if unexpected:
            return Outcome.UNEXPECTED, (), ", ".join(unexpected)
        return Outcome.CLEAN, (), ""


# --- the default lists -------------------------------------------------------------------------------

_SPAMHAUS_CHECK = "https://check.spamhaus.org/"
_SPAMHAUS_ERRORS = {
    "127.255.255.252": "127.255.255.252, Spamhaus does not serve this zone name",
    "127.255.255.254": "127.255.255.254, Spamhaus refuses queries sent through public or open resolvers",
    "127.255.255.255": "127.255.255.255, this resolver sent more queries than Spamhaus's free use allows",
}
_XBL = Listing(
    "XBL",
    "seen infected, hijacked or running an open proxy",
    article="spamhaus-xbl-listed",
    advice="Find and clean the infected machine or open proxy behind the IP (or NAT), then request removal.",
)
_PBL_ADVICE = (
    "If this is your mail server's own static IP, remove it from the PBL yourself at https://www.spamhaus.org/pbl/removal/; "
    "if it is a home or dynamic address, send through your provider's or an ESP's SMTP relay instead."
)

ZEN = Blocklist(
    name="Spamhaus ZEN",
    zone="zen.spamhaus.org",
    kind=TargetKind.IP,
    lookup_url=_SPAMHAUS_CHECK,
    codes={
        "127.0.0.2": Listing("SBL", "a verified spam source or spam operation", article="spamhaus-sbl-listed"),
        "127.0.0.3": Listing(
            "CSS",
            "low-reputation mail seen from this IP, typically snowshoe sending or poor list hygiene",
            article="spamhaus-css-listed",
            advice="Stop the mail that caused it (cold lists without verification, high bounce or complaint rates), "
            "then request removal; CSS relists quickly if the sending does not change.",
        ),
        "127.0.0.4": _XBL,
        "127.0.0.5": _XBL,
        "127.0.0.6": _XBL,
        "127.0.0.7": _XBL,
        "127.0.0.9": Listing(
            "DROP",
            "a netblock hijacked or run by criminals",
            article="spamhaus-sbl-listed",
            advice="Move your sending to a reputable provider's network; DROP listings are not removed for single IPs.",
        ),
        "127.0.0.10": Listing(
            "PBL",
            "the network's owner says this IP should not send mail directly",
            article="spamhaus-pbl-listed",
            advice=_PBL_ADVICE,
        ),
        "127.0.0.11": Listing(
            "PBL",
            "Spamhaus rates this as an end-user IP that should not send mail directly",
            article="spamhaus-pbl-listed",
            advice=_PBL_ADVICE,
        ),
        "127.0.0.30": Listing("BCL", "a botnet controller", article="spamhaus-sbl-zen-listed"),
    },
    errors=_SPAMHAUS_ERRORS,
    error_prefix="127.255.255.",
    default=Listing("ZEN", "return code", article="spamhaus-sbl-zen-listed"),
    ipv6=True,
    article="spamhaus-sbl-zen-listed",
)
SPAMCOP = Blocklist(
    name="SpamCop",
    zone="bl.spamcop.net",
    kind=TargetKind.IP,
    lookup_url="https://www.spamcop.net/bl.shtml?{target}",
    codes={
        "127.0.0.2": Listing(
            "SCBL",
            "recipients reported mail from this IP as spam, or it hit SpamCop's traps",
            article="spamcop-bl-listed",
            advice="Stop the mail that draws reports; SpamCop drops the listing on its own about a day after the reports stop.",
        )
    },
    default=Listing("SCBL", "return code", article="spamcop-bl-listed"),
    article="spamcop-bl-listed",
)
BARRACUDA = Blocklist(
    name="Barracuda BRBL",
    zone="b.barracudacentral.org",
    kind=TargetKind.IP,
    lookup_url="https://www.barracudacentral.org/lookups/lookup-reputation",
    removal_url="https://www.barracudacentral.org/rbl/removal-request",
    codes={"127.0.0.2": Listing("BRBL", "Barracuda rates this IP's sending as poor", article="barracuda-brbl-listed")},
    default=Listing("BRBL", "return code", article="barracuda-brbl-listed"),
    article="barracuda-brbl-listed",
)
PSBL = Blocklist(
    name="PSBL",
    zone="psbl.surriel.com",
    kind=TargetKind.IP,
    lookup_url="https://psbl.org/listing?ip={target}",
    removal_url="https://psbl.org/remove",
    codes={
        "127.0.0.2": Listing(
            "PSBL",
            "this IP sent mail to PSBL's spam traps",
            Severity.WARNING,
            article="psbl-listed",
            advice="Remove the IP yourself with PSBL's form, then stop mailing the addresses that bounce or were never "
            "opted in (trap hits come from old or scraped lists).",
        )
    },
    default=Listing("PSBL", "return code", Severity.WARNING, article="psbl-listed"),
    article="psbl-listed",
)
UCEPROTECT_1 = Blocklist(
    name="UCEPROTECT Level 1",
    zone="dnsbl-1.uceprotect.net",
    kind=TargetKind.IP,
    lookup_url="http://www.uceprotect.net/en/rblcheck.php",
    codes={
        "127.0.0.2": Listing(
            "UCEPROTECT-Level1",
            "this IP itself sent mail to UCEPROTECT's spam traps",
            Severity.WARNING,
            article="uceprotect-level1-listed",
            advice="Stop the trap hits (clean the list, check for a compromised account); Level 1 entries expire on "
            "their own about a week after the last hit.",
        )
    },
    default=Listing("UCEPROTECT-Level1", "return code", Severity.WARNING, article="uceprotect-level1-listed"),
    article="uceprotect-level1-listed",
)

_DBL = "spamhaus-dbl-listed"
DBL = Blocklist(
    name="Spamhaus DBL",
    zone="dbl.spamhaus.org",
    kind=TargetKind.DOMAIN,
    lookup_url=_SPAMHAUS_CHECK,
    codes={
        "127.0.1.2": Listing("spam", "a low-reputation domain seen in spam", article=_DBL),
        "127.0.1.4": Listing("phish", "a domain used for phishing", article=_DBL),
        "127.0.1.5": Listing("malware", "a domain used to spread malware", article=_DBL),
        "127.0.1.6": Listing("botnet C&C", "a domain used to control a botnet", article=_DBL),
        "127.0.1.102": Listing("abused-legit spam", "a legitimate domain that was abused to send spam", article=_DBL),
        "127.0.1.103": Listing("abused redirector", "a legitimate domain abused as a redirector or URL shortener", article=_DBL),
        "127.0.1.104": Listing("abused-legit phish", "a legitimate domain abused for phishing", article=_DBL),
        "127.0.1.105": Listing("abused-legit malware", "a legitimate domain abused to spread malware", article=_DBL),
        "127.0.1.106": Listing("abused-legit C&C", "a legitimate domain abused to control a botnet", article=_DBL),
    },
    errors={**_SPAMHAUS_ERRORS, "127.0.1.255": "127.0.1.255, an IP address was asked of a domain-only list"},
    error_prefix="127.255.255.",
    default=Listing("DBL", "return code", article=_DBL),
    article=_DBL,
)
SURBL = Blocklist(
    name="SURBL",
    zone="multi.surbl.org",
    kind=TargetKind.DOMAIN,
    lookup_url="https://www.surbl.org/surbl-analysis",
    bits={
        8: Listing("PH", "used in phishing", article="surbl-url-listed"),
        16: Listing("MW", "used to spread malware", article="surbl-url-listed"),
        64: Listing("ABUSE", "seen in spam and other abuse", article="surbl-url-listed"),
        128: Listing("CR", "a cracked (compromised) site", article="surbl-url-listed"),
    },
    refused_bit=True,
    default=Listing("SURBL", "return code", article="surbl-url-listed"),
    article="surbl-url-listed",
)
URIBL = Blocklist(
    name="URIBL",
    zone="multi.uribl.com",
    kind=TargetKind.DOMAIN,
    lookup_url="https://admin.uribl.com/?section=lookup",
    bits={
        2: Listing("black", "a domain used by spammers", article="uribl-url-listed"),
        4: Listing("grey", "a domain seen in bulk mail", Severity.WARNING, article="uribl-url-listed"),
        8: Listing("red", "a very new or privacy-protected domain active in mail", Severity.WARNING, article="uribl-url-listed"),
    },
    refused_bit=True,
    default=Listing("URIBL", "return code", article="uribl-url-listed"),
    article="uribl-url-listed",
)

IP_BLOCKLISTS: tuple[Blocklist, ...] = (ZEN, SPAMCOP, BARRACUDA, PSBL, UCEPROTECT_1)
DOMAIN_BLOCKLISTS: tuple[Blocklist, ...] = (DBL, SURBL, URIBL)


@dataclass(frozen=True, slots=True)
class BlocklistConfig:
    """Which lists to ask: IP lists for addresses, domain lists for domains."""

    ip_lists: tuple[Blocklist, ...] = IP_BLOCKLISTS
    domain_lists: tuple[Blocklist, ...] = DOMAIN_BLOCKLISTS

    def under(self, parent: str) -> BlocklistConfig:
        """The same lists with every zone moved under ``parent`` (``zen.spamhaus.org`` -> ``zen.spamhaus.org.<parent>``)."""
        parent = parent.strip(".").lower()
        return BlocklistConfig(
            tuple(replace(bl, zone=f"{bl.zone}.{parent}") for bl in self.ip_lists),
            tuple(replace(bl, zone=f"{bl.zone}.{parent}") for bl in self.domain_lists),
        )

    def only(self, *names: str) -> BlocklistConfig:
        """Keep the lists whose name or zone is given."""
        wanted = {n.lower() for n in names}
        return BlocklistConfig(
            tuple(bl for bl in self.ip_lists if bl.name.lower() in wanted or bl.zone in wanted),
            tuple(bl for bl in self.domain_lists if bl.name.lower() in wanted or bl.zone in wanted),
        )


# --- asking ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlocklistResult:
    """One target asked of one list."""

    target: str
    blocklist: Blocklist
    query: str
    outcome: Outcome
    answers: tuple[str, ...] = ()
    listings: tuple[Listing, ...] = ()
    reason: str = ""
    """The list's TXT text, when it publishes one."""
    error: str = ""
    """For refused, unexpected and failed outcomes: what happened."""

    @property
    def severity(self) -> Severity:
        return max((lst.severity for lst in self.listings), key=_SEVERITY_ORDER.__getitem__, default=Severity.OK)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "list": self.blocklist.name,
            "zone": self.blocklist.zone,
            "query": self.query,
            "outcome": self.outcome.value,
            "answers": list(self.answers),
            "listings": [{"label": lst.label, "meaning": lst.meaning, "severity": lst.severity.value} for lst in self.listings],
            "reason": self.reason,
            "error": self.error,
            "lookup_url": self.blocklist.url(self.target),
        }


async def query_blocklists(resolver: Resolver, questions: Sequence[tuple[str, Blocklist]]) -> list[BlocklistResult]:
    """Ask every (target, list) pair at once, then fetch the TXT reason of every listed or refused answer."""
    names = [bl.query_name(target) for target, bl in questions]
    answers = await resolver.lookup_many([(name, "A") for name in names])
    results: list[BlocklistResult] = []
    for (target, bl), name, answer in zip(questions, names, answers, strict=True):
        if answer.failed:
            results.append(BlocklistResult(target, bl, name, Outcome.FAILED, error=answer.status.value))
        elif answer.status is not LookupStatus.OK:
            results.append(BlocklistResult(target, bl, name, Outcome.CLEAN))
        else:
            outcome, listings, why = bl.interpret(answer.records)
            results.append(BlocklistResult(target, bl, name, outcome, answer.records, listings, error=why))
    wanting_reason = [i for i, r in enumerate(results) if r.outcome in (Outcome.LISTED, Outcome.REFUSED)]
    texts = await resolver.lookup_many([(results[i].query, "TXT") for i in wanting_reason])
    for i, txt in zip(wanting_reason, texts, strict=True):
        if txt.ok and txt.records:
            results[i] = replace(results[i], reason=" / ".join(txt.records))
    return results


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def normalise_domain(text: str) -> str | None:
    """A domain as DNS asks it (lower case, IDNA), or None when it is not a usable domain name."""
    domain = text.strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return None
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        return domain
    return None


def _listing_finding(section: Section, result: BlocklistResult, kind: TargetKind) -> None:
    bl = result.blocklist
    what = " and ".join(f"{lst.label} ({lst.meaning})" for lst in result.listings)
    subject = result.target if kind is TargetKind.IP else f"The domain {result.target}"
    message = f"{subject} is listed on {bl.name} as {what}."
    steps: list[str] = []
    advice = [lst.advice for lst in result.listings if lst.advice]
    steps.append(
        " ".join(dict.fromkeys(advice)) if advice else "Find and stop the mail that caused the listing, then request removal."
    )
    steps.append(f"See the listing at {bl.url(result.target)}")
    if bl.removal_url:
        steps[-1] += f" and request removal at {bl.removal_url}"
    steps[-1] += "."
    if result.reason:
        steps.append(f'The list says: "{result.reason}".')
    articles = dict.fromkeys(lst.article or bl.article for lst in result.listings)
    steps.append("Explained: " + ", ".join(f"/smtp-errors/{a}" for a in articles) + ".")
    code = "blocklists.ip-listed" if kind is TargetKind.IP else "blocklists.domain-listed"
    section.add(result.severity, code, message, " ".join(steps))


def _not_checked_finding(section: Section, result: BlocklistResult) -> None:
    bl = result.blocklist
    if result.outcome is Outcome.REFUSED:
        spamhaus = "spamhaus" in bl.name.lower()
        fix = (
            f"Nothing is known against {result.target}. For a real answer ask from a resolver of your own rather than a "
            "public DNS service (e.g. --nameserver pointing at a local unbound)"
            + (", or use Spamhaus's free Data Query Service (see /smtp-errors/spamhaus-query-refused)" if spamhaus else "")
            + f", or look it up at {bl.url(result.target)}."
        )
        section.add(
            Severity.INFO,
            "blocklists.query-refused",
            f"{bl.name} could not check {result.target} ({result.error}); this is not a listing.",
            fix,
        )
    elif result.outcome is Outcome.UNEXPECTED:
        section.add(
            Severity.INFO,
            "blocklists.unexpected-answer",
            f"{bl.name} answered {result.error} about {result.target}, which is not a blocklist return code, so the result "
            "is unknown.",
            "Your resolver probably rewrites unknown names to a filtering or advertising server; ask through one that does "
            f"not (--nameserver), or look it up at {bl.url(result.target)}.",
        )
    else:
        section.add(
            Severity.INFO,
            "blocklists.lookup-failed",
            f"The query to {bl.name} about {result.target} failed ({result.error}), so it could not be checked.",
            f"Try again later; if {bl.zone} keeps failing, the list may be down or blocking your resolver, so look it up "
            f"at {bl.url(result.target)}.",
        )


async def check_blocklists(
    resolver: Resolver,
    ips: Sequence[str],
    domains: Sequence[str] = (),
    lists: BlocklistConfig | None = None,
) -> Section:
    """The "blocklists" section: every IP against the IP lists, every domain against the domain lists."""
    config = lists or BlocklistConfig()
    section = Section(SECTION)
    targets: list[tuple[str, TargetKind]] = []
    questions: list[tuple[str, Blocklist]] = []
    skipped: list[dict[str, str]] = []
    for text in ips:
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            section.add(
                Severity.ERROR,
                "blocklists.invalid-target",
                f"{text!r} is not an IP address, so it was not checked against blocklists.",
                "Pass IPv4 addresses as 192.0.2.1 and IPv6 addresses as 2001:db8::1.",
            )
            continue
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        ip = str(address)
        if (ip, TargetKind.IP) in targets:
            continue
        targets.append((ip, TargetKind.IP))
        usable = [bl for bl in config.ip_lists if address.version == 4 or bl.ipv6]
        skipped += [
            {"target": ip, "list": bl.name, "why": "no IPv6"} for bl in config.ip_lists if address.version == 6 and not bl.ipv6
        ]
        if not usable:
            section.add(
                Severity.INFO,
                "blocklists.not-covered",
                f"None of the configured IP blocklists answers for IPv6 addresses, so {ip} was not checked.",
                "Add an IPv6-capable list (Spamhaus ZEN answers for IPv6) or check the IPv4 address you also send from.",
            )
        questions += [(ip, bl) for bl in usable]
    for text in domains:
        domain = normalise_domain(text)
        if domain is None:
            section.add(
                Severity.ERROR,
                "blocklists.invalid-target",
                f"{text!r} is not a domain name, so it was not checked against domain blocklists.",
                "Pass a domain such as example.com (IP addresses go with the IPs).",
            )
            continue
        if (domain, TargetKind.DOMAIN) in targets:
            continue
        targets.append((domain, TargetKind.DOMAIN))
        questions += [(domain, bl) for bl in config.domain_lists]
    if not targets and not section.findings:
        section.add(
            Severity.INFO,
            "blocklists.nothing-to-check",
            "No IP address or domain was given, so no blocklist was checked.",
            "Pass your sending IPs (--ip) and your sending domain.",
        )
        return section

    results = await query_blocklists(resolver, questions)
    for target, kind in targets:
        mine = [r for r in results if r.target == target and r.blocklist.kind is kind]
        for result in mine:
            section.records += [f"{result.query}. A {a}" for a in result.answers]
            if result.reason:
                section.records.append(f'{result.query}. TXT "{result.reason}"')
        for result in mine:
            if result.outcome is Outcome.LISTED:
                _listing_finding(section, result, kind)
        for result in mine:
            if result.outcome in (Outcome.REFUSED, Outcome.UNEXPECTED, Outcome.FAILED):
                _not_checked_finding(section, result)
        clean = [r for r in mine if r.outcome is Outcome.CLEAN]
        if clean and not any(r.outcome is Outcome.LISTED for r in mine):
            noun = "IP" if kind is TargetKind.IP else "domain"
            section.add(
                Severity.OK,
                "blocklists.clean",
                f"{target} is not listed on any of the {len(clean)} {noun} blocklists that answered "
                f"({', '.join(r.blocklist.name for r in clean)}).",
            )
    section.details = {
        "targets": [{"target": t, "kind": k.value} for t, k in targets],
        "results": [r.to_dict() for r in results],
        "skipped": skipped,
    }
    return section


async def lookup_blocklists(
    resolver: Resolver,
    target: str,
    lists: BlocklistConfig | None = None,
    *,
    mail_hosts: bool = True,
) -> Section:
    """``coldrelay dns blocklist TARGET``: an IP against the IP lists, or a domain against the domain lists.

    With ``mail_hosts`` a domain's MX addresses (or, without MX, its own addresses) are checked against the IP
    lists too, since those are the servers its mail comes from and goes to.
    """
    text = target.strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        section = await check_blocklists(resolver, [text], (), lists)
        section.details["target"] = text
        return section
    domain = normalise_domain(text)
    ips: list[str] = []
    if domain is not None and mail_hosts:
        ips = list((await lookup_mx(resolver, domain)).addresses)
    section = await check_blocklists(resolver, ips, [text], lists)
    section.details["target"] = domain or text
    section.details["mail_host_ips"] = ips
    return section
