"""SPF (RFC 7208): find the record, read the whole include/redirect tree, count lookups, evaluate for an IP.

Two public entry points:

- ``check_spf`` reads the domain's record and every record it includes or
  redirects to (even when parts of the tree are broken), counts the terms that
  cost a DNS lookup per RFC 7208 section 4.6.4, and turns what it sees into
  findings. The tree, with the lookups each term costs, goes to
  ``section.details["tree"]``.
- ``evaluate_spf`` is ``check_host()`` for one connecting IP: the answer a
  receiver would get (pass, fail, softfail, neutral, none, permerror,
  temperror). It asks every question through the shared async ``Resolver``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from coldrelay.dns.report import Section, Severity
from coldrelay.dns.resolver import Lookup, LookupStatus, Resolver, reverse_name

__all__ = [
    "LOOKUP_LIMIT",
    "MX_NAME_LIMIT",
    "VOID_LOOKUP_LIMIT",
    "MacroContext",
    "SpfRecord",
    "SpfResult",
    "SpfSyntaxError",
    "SpfTerm",
    "SpfVerdict",
    "check_spf",
    "evaluate_spf",
    "expand_macros",
    "parse_spf",
    "spf_records",
]

LOOKUP_LIMIT = 10
"""RFC 7208 4.6.4: at most 10 terms that query DNS (include, a, mx, ptr, exists, redirect) per check."""
MX_NAME_LIMIT = 10
"""RFC 7208 4.6.4: an ``mx`` term whose MX answer names more than 10 hosts is a permerror."""
PTR_NAME_LIMIT = 10
"""RFC 7208 4.6.4: only the first 10 PTR names are checked; the rest are ignored."""
VOID_LOOKUP_LIMIT = 2
"""RFC 7208 4.6.4: more than 2 terms whose lookup finds nothing (NXDOMAIN or an empty answer) is a permerror."""
NEAR_LIMIT = 9
"""From this many lookups on, the record is one or two new includes away from breaking."""
_MAX_TREE_NODES = 60
"""The analysis stops expanding past this many records (a tree that big is broken many times over)."""

_KB_SPF_FAILED = "/smtp-errors/generic-550-5-7-23"
_KB_SPF_NOT_PASS = "/smtp-errors/google-550-5-7-27-spf-did-not-pass"
_KB_SUSPICIOUS = "/smtp-errors/google-550-5-7-24-spf-suspicious-entries"

_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
_QUIET_MODIFIERS = frozenset({"ra", "rp", "rr"})
"""RFC 6652 reporting modifiers: known extensions, ignored without comment."""
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}

_MODIFIER_RE = re.compile(r"([A-Za-z][A-Za-z0-9_.\-]*)=(.*)", re.DOTALL)
_MECHANISM_RE = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9_.\-]*)(.*)", re.DOTALL)
_CIDR_RE = re.compile(r"(?P<spec>.*?)(?:/(?P<c4>[0-9]+))?(?://(?P<c6>[0-9]+))?", re.DOTALL)
_TOPLABEL_RE = re.compile(r"(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")
_MACRO_LETTERS = "slodiphcrtv"
_EXP_ONLY_LETTERS = "crt"


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# --------------------------------------------------------------------------- results


class SpfVerdict(StrEnum):
    """The seven results of RFC 7208 section 2.6."""

    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


@dataclass(frozen=True, slots=True)
class SpfResult:
    """What check_host() answered for one IP, and how it got there."""

    ip: str
    domain: str
    sender: str
    result: SpfVerdict
    mechanism: str = ""
    """The term of the domain's own record that decided ("" when nothing matched)."""
    path: tuple[str, ...] = ()
    """Every term that led to the answer, outermost first, as ``domain: term``."""
    reason: str = ""
    """Why the answer is none, permerror or temperror (or what matched)."""
    explanation: str = ""
    """The domain's ``exp=`` text on a fail, macros expanded."""
    lookups: int = 0
    void_lookups: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "domain": self.domain,
            "sender": self.sender,
            "result": self.result.value,
            "mechanism": self.mechanism,
            "path": list(self.path),
            "reason": self.reason,
            "explanation": self.explanation,
            "lookups": self.lookups,
            "void_lookups": self.void_lookups,
        }


# --------------------------------------------------------------------------- parsing


class SpfSyntaxError(ValueError):
    """A term (or macro string) that RFC 7208's grammar does not allow."""


@dataclass(frozen=True, slots=True)
class SpfTerm:
    """One mechanism or modifier of a record."""

    text: str
    name: str
    """Lower-case mechanism or modifier name: ``ip4``, ``include``, ``redirect``..."""
    qualifier: str = "+"
    """``+ - ~ ?`` for mechanisms (``+`` when none is written); ``""`` for modifiers."""
    value: str = ""
    """The domain-spec or macro-string; for ip4/ip6 the address as written."""
    cidr4: int | None = None
    cidr6: int | None = None
    network: IPNetwork | None = None

    @property
    def is_modifier(self) -> bool:
        return self.qualifier == ""

    @property
    def costs_lookup(self) -> bool:
        return self.name in _LOOKUP_TERMS


@dataclass(slots=True)
class SpfRecord:
    """A parsed ``v=spf1`` record: its valid terms in order and one message per term it could not read."""

    text: str
    terms: list[SpfTerm] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def mechanisms(self) -> list[SpfTerm]:
        return [t for t in self.terms if not t.is_modifier]

    def modifier(self, name: str) -> SpfTerm | None:
        return next((t for t in self.terms if t.is_modifier and t.name == name), None)

    @property
    def redirect(self) -> SpfTerm | None:
        return self.modifier("redirect")

    @property
    def exp(self) -> SpfTerm | None:
        return self.modifier("exp")

    @property
    def all_term(self) -> SpfTerm | None:
        return next((t for t in self.terms if t.name == "all"), None)

    @property
    def unknown_modifiers(self) -> list[SpfTerm]:
        return [t for t in self.terms if t.is_modifier and t.name not in ("redirect", "exp")]


def spf_records(txt_records: Sequence[str]) -> list[str]:
    """The TXT strings that are SPF records: ``v=spf1`` followed by a space or nothing (RFC 7208 4.5)."""
    return [r for r in txt_records if r[:6].lower() == "v=spf1" and (len(r) == 6 or r[6] == " ")]


def parse_spf(text: str) -> SpfRecord:
    """Parse a record; syntax problems are collected per term, never raised."""
    record = SpfRecord(text)
    words = text.split()
    if not words or words[0].lower() != "v=spf1":
        record.errors.append("the record does not start with 'v=spf1'")
        return record
    seen_modifiers: set[str] = set()
    for word in words[1:]:
        try:
            term = _parse_term(word)
        except SpfSyntaxError as exc:
            record.errors.append(str(exc))
            continue
        if term.is_modifier and term.name in ("redirect", "exp"):
            if term.name in seen_modifiers:
                record.errors.append(f"'{term.name}=' appears more than once; it may appear only once")
                continue
            seen_modifiers.add(term.name)
        record.terms.append(term)
    return record


def _parse_term(word: str) -> SpfTerm:
    modifier = _MODIFIER_RE.fullmatch(word)
    if modifier:
        name, value = modifier.group(1).lower(), modifier.group(2)
        if name in ("redirect", "exp"):
            if not value:
                raise SpfSyntaxError(f"'{word}' needs a domain after '='")
            _check_domain_spec(value, word)
        else:
            _check_macro_string(value, word, exp=False)
        return SpfTerm(word, name, "", value)
    mechanism = _MECHANISM_RE.fullmatch(word)
    if not mechanism:
        raise SpfSyntaxError(f"'{word}' is neither a mechanism nor a modifier")
    qualifier, name, rest = mechanism.group(1) or "+", mechanism.group(2).lower(), mechanism.group(3)
    if name not in _MECHANISMS:
        raise SpfSyntaxError(f"'{word}' uses the unknown mechanism '{mechanism.group(2)}'")
    if name == "all":
        if rest:
            raise SpfSyntaxError(f"'{word}': 'all' takes no argument")
        return SpfTerm(word, name, qualifier)
    if name in ("include", "exists"):
        if not rest.startswith(":") or len(rest) == 1:
            raise SpfSyntaxError(f"'{word}': '{name}' needs a domain ({name}:example.com)")
        _check_domain_spec(rest[1:], word)
        return SpfTerm(word, name, qualifier, rest[1:])
    if name == "ptr":
        if rest and (not rest.startswith(":") or len(rest) == 1):
            raise SpfSyntaxError(f"'{word}': 'ptr' takes only an optional ':domain'")
        if rest:
            _check_domain_spec(rest[1:], word)
        return SpfTerm(word, name, qualifier, rest[1:])
    if name in ("a", "mx"):
        return _parse_a_mx(word, name, qualifier, rest)
    return _parse_ip(word, name, qualifier, rest)


def _cidr(text: str | None, limit: int, word: str) -> int | None:
    if text is None:
        return None
    if (len(text) > 1 and text[0] == "0") or int(text) > limit:
        raise SpfSyntaxError(f"'{word}': prefix length /{text} is not between /0 and /{limit}")
    return int(text)


def _parse_a_mx(word: str, name: str, qualifier: str, rest: str) -> SpfTerm:
    match = _CIDR_RE.fullmatch(rest)
    assert match is not None  # every string matches: the spec part can be anything
    spec = match.group("spec")
    if spec and (not spec.startswith(":") or len(spec) == 1):
        raise SpfSyntaxError(f"'{word}': expected '{name}', '{name}:domain' and optional '/prefix' or '//prefix6'")
    cidr4 = _cidr(match.group("c4"), 32, word)
    cidr6 = _cidr(match.group("c6"), 128, word)
    if spec:
        _check_domain_spec(spec[1:], word)
    return SpfTerm(word, name, qualifier, spec[1:], cidr4, cidr6)


def _parse_ip(word: str, name: str, qualifier: str, rest: str) -> SpfTerm:
    if not rest.startswith(":") or len(rest) == 1:
        raise SpfSyntaxError(f"'{word}': '{name}' needs an address ({name}:{'192.0.2.1' if name == 'ip4' else '2001:db8::1'})")
    address, slash, prefix = rest[1:].partition("/")
    limit = 32 if name == "ip4" else 128
    kind = ipaddress.IPv4Address if name == "ip4" else ipaddress.IPv6Address
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        parsed = None
    if not isinstance(parsed, kind):
        version = "IPv4" if name == "ip4" else "IPv6"
        raise SpfSyntaxError(f"'{word}': '{address}' is not a valid {version} address")
    if slash and not re.fullmatch("[0-9]+", prefix):
        raise SpfSyntaxError(f"'{word}': '/{prefix}' is not a prefix length")
    length = _cidr(prefix, limit, word) if slash else limit
    network = ipaddress.ip_network(f"{parsed}/{length}", strict=False)
    return SpfTerm(word, name, qualifier, address, network=network)


# --------------------------------------------------------------------------- macros


@dataclass(frozen=True, slots=True)
class _Macro:
    letter: str
    digits: int | None
    reverse: bool
    delimiters: str
    upper: bool


def _macro_tokens(text: str, word: str, *, exp: bool) -> Iterator[str | _Macro]:
    """Literal strings and macros, in order; raises ``SpfSyntaxError`` on anything malformed."""
    i = 0
    literal: list[str] = []
    while i < len(text):
        char = text[i]
        if char != "%":
            if not (0x21 <= ord(char) <= 0x7E or (exp and char == " ")):
                raise SpfSyntaxError(f"'{word}': the character {char!r} is not allowed here")
            literal.append(char)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in ("%", "_", "-"):
            literal.append({"%": "%", "_": " ", "-": "%20"}[nxt])
            i += 2
            continue
        if nxt != "{":
            raise SpfSyntaxError(f"'{word}': a '%' must be followed by '{{', '%', '_' or '-'")
        end = text.find("}", i)
        if end < 0:
            raise SpfSyntaxError(f"'{word}': a macro '%{{' is not closed with '}}'")
        body = text[i + 2 : end]
        found = re.fullmatch(r"([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)", body)
        if not found or found.group(1).lower() not in _MACRO_LETTERS:
            raise SpfSyntaxError(f"'{word}': '%{{{body}}}' is not a valid macro")
        letter = found.group(1)
        if letter.lower() in _EXP_ONLY_LETTERS and not exp:
            raise SpfSyntaxError(f"'{word}': the macro letter '{letter}' is only allowed in explanation text")
        digits = int(found.group(2)) if found.group(2) else None
        if digits == 0:
            raise SpfSyntaxError(f"'{word}': '%{{{body}}}' keeps zero labels")
        if literal:
            yield "".join(literal)
            literal = []
        yield _Macro(letter.lower(), digits, bool(found.group(3)), found.group(4), letter.isupper())
        i = end + 1
    if literal:
        yield "".join(literal)


def _check_macro_string(text: str, word: str, *, exp: bool) -> None:
    for _token in _macro_tokens(text, word, exp=exp):
        pass


def _check_domain_spec(spec: str, word: str) -> None:
    tokens = list(_macro_tokens(spec, word, exp=False))
    if not tokens:
        raise SpfSyntaxError(f"'{word}': the domain is empty")
    last = tokens[-1]
    if isinstance(last, _Macro) or (last == "." and len(tokens) > 1 and isinstance(tokens[-2], _Macro)):
        return
    tail = last[:-1] if last.endswith(".") else last
    head, dot, top = tail.rpartition(".")
    if not dot or not _TOPLABEL_RE.fullmatch(top) or (not head and len(tokens) == 1):
        raise SpfSyntaxError(f"'{word}': '{spec}' is not a domain name (it must end in a label such as '.com')")


@dataclass(frozen=True, slots=True)
class MacroContext:
    """The values macros expand to (RFC 7208 section 7.2)."""

    sender: str
    domain: str
    ip: IPAddress | None = None
    helo: str = ""

    @property
    def local_part(self) -> str:
        return self.sender.rpartition("@")[0] or "postmaster"

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]


def _macro_value(letter: str, ctx: MacroContext) -> str:
    ip = ctx.ip
    if letter == "s":
        return ctx.sender
    if letter == "l":
        return ctx.local_part
    if letter == "o":
        return ctx.sender_domain
    if letter == "d":
        return ctx.domain
    if letter == "h":
        return ctx.helo or ctx.domain
    if letter == "v":
        return "ip6" if isinstance(ip, ipaddress.IPv6Address) else "in-addr"
    if letter == "i":
        if isinstance(ip, ipaddress.IPv6Address):
            return ".".join(ip.exploded.replace(":", ""))
        return str(ip) if ip is not None else ""
    if letter == "c":
        return str(ip) if ip is not None else ""
    if letter == "t":
        return str(int(time.time()))
    return "unknown"  # p (validated name: not looked up, as RFC 7208 advises against it) and r (receiver)


def expand_macros(text: str, ctx: MacroContext, *, exp: bool = False) -> str:
    """Expand a macro-string; for domain-specs (``exp=False``) the result is cut to 253 characters by dropping left labels."""
    out: list[str] = []
    for token in _macro_tokens(text, text, exp=exp):
        if isinstance(token, str):
            out.append(token)
            continue
        value = _macro_value(token.letter, ctx)
        parts = re.split("[" + re.escape(token.delimiters or ".") + "]", value)
        if token.reverse:
            parts.reverse()
        if token.digits is not None:
            parts = parts[-token.digits :]
        value = ".".join(parts)
        out.append(quote(value, safe="") if token.upper else value)
    result = "".join(out)
    if not exp:
        while len(result.rstrip(".")) > 253 and "." in result:
            result = result.partition(".")[2]
    return result


def _has_macros(spec: str) -> bool:
    return "%{" in spec


def _valid_domain(name: str) -> bool:
    """A multi-label name with labels of 1 to 63 characters, 253 in all (RFC 7208 4.3)."""
    name = name[:-1] if name.endswith(".") else name
    labels = name.split(".")
    return 0 < len(name) <= 253 and len(labels) > 1 and all(0 < len(label) <= 63 for label in labels)


# --------------------------------------------------------------------------- evaluation


class _Stop(Exception):
    """check_host() ends here with a permerror or temperror."""

    def __init__(self, verdict: SpfVerdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


@dataclass(slots=True)
class _Outcome:
    verdict: SpfVerdict
    path: list[str]
    reason: str = ""
    exp: tuple[SpfTerm, str] | None = None
    """The exp= modifier that applies to a fail, with the domain it belongs to."""


class _Evaluator:
    def __init__(self, resolver: Resolver, ip: IPAddress, sender: str, helo: str) -> None:
        self.resolver = resolver
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.lookups = 0
        self.voids = 0

    def _ctx(self, domain: str) -> MacroContext:
        return MacroContext(self.sender, domain, self.ip, self.helo)

    def _count(self, term: SpfTerm, domain: str) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise _Stop(
                SpfVerdict.PERMERROR,
                f"more than {LOOKUP_LIMIT} DNS lookups: '{term.text}' in {domain} would be number {self.lookups}",
            )

    def _void(self, term: SpfTerm, domain: str) -> None:
        self.voids += 1
        if self.voids > VOID_LOOKUP_LIMIT:
            raise _Stop(
                SpfVerdict.PERMERROR,
                f"more than {VOID_LOOKUP_LIMIT} lookups found nothing: '{term.text}' in {domain} was void number {self.voids}",
            )

    def _address_type(self) -> str:
        return "AAAA" if isinstance(self.ip, ipaddress.IPv6Address) else "A"

    def _target(self, term: SpfTerm, domain: str) -> str:
        if not term.value:
            return domain
        return expand_macros(term.value, self._ctx(domain)).rstrip(".").lower()

    async def check_host(self, domain: str) -> _Outcome:
        domain = domain.rstrip(".").lower()
        if not _valid_domain(domain):
            return _Outcome(SpfVerdict.NONE, [], f"'{domain}' is not a valid domain name")
        lookup = await self.resolver.lookup(domain, "TXT")
        if lookup.failed:
            raise _Stop(SpfVerdict.TEMPERROR, f"the TXT lookup for {domain} failed ({lookup.status.value})")
        texts = spf_records(lookup.records)
        if not texts:
            return _Outcome(SpfVerdict.NONE, [], f"{domain} has no SPF record")
        if len(texts) > 1:
            raise _Stop(SpfVerdict.PERMERROR, f"{domain} has {len(texts)} SPF records; only one is allowed")
        record = parse_spf(texts[0])
        if record.errors:
            raise _Stop(SpfVerdict.PERMERROR, f"syntax error in the SPF record of {domain}: {record.errors[0]}")
        for term in record.mechanisms:
            matched, inner = await self._matches(term, domain)
            if matched:
                verdict = SpfVerdict(_QUALIFIERS[term.qualifier])
                exp = (record.exp, domain) if record.exp is not None else None
                return _Outcome(verdict, [f"{domain}: {term.text}", *inner], exp=exp)
        redirect = record.redirect
        if redirect is not None and record.all_term is None:
            self._count(redirect, domain)
            target = self._target(redirect, domain)
            outcome = await self.check_host(target)
            if outcome.verdict is SpfVerdict.NONE:
                raise _Stop(SpfVerdict.PERMERROR, f"'{redirect.text}' in {domain}: {outcome.reason}")
            outcome.path.insert(0, f"{domain}: {redirect.text}")
            return outcome
        return _Outcome(SpfVerdict.NEUTRAL, [], f"no mechanism of {domain} matched; the default is neutral")

    async def _matches(self, term: SpfTerm, domain: str) -> tuple[bool, list[str]]:
        name = term.name
        if name == "all":
            return True, []
        if name in ("ip4", "ip6"):
            return term.network is not None and self.ip.version == term.network.version and self.ip in term.network, []
        self._count(term, domain)
        target = self._target(term, domain)
        if name == "include":
            outcome = await self.check_host(target)
            if outcome.verdict is SpfVerdict.NONE:
                raise _Stop(SpfVerdict.PERMERROR, f"'{term.text}' in {domain}: {outcome.reason}")
            return outcome.verdict is SpfVerdict.PASS, outcome.path
        if not _valid_domain(target):
            return False, []
        if name == "a":
            return await self._match_a(term, domain, target), []
        if name == "mx":
            return await self._match_mx(term, domain, target), []
        if name == "ptr":
            return await self._match_ptr(target), []
        lookup = await self.resolver.lookup(target, "A")  # exists: always an A query, whatever the IP version
        self._check_lookup(lookup, term, domain)
        return bool(lookup.records), []

    def _check_lookup(self, lookup: Lookup, term: SpfTerm, domain: str) -> None:
        if lookup.failed:
            raise _Stop(SpfVerdict.TEMPERROR, _failure(term, domain, lookup))
        if not lookup.records:
            self._void(term, domain)

    def _in_range(self, addresses: Sequence[str], term: SpfTerm) -> bool:
        prefix = term.cidr6 if isinstance(self.ip, ipaddress.IPv6Address) else term.cidr4
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if address.version != self.ip.version:
                continue
            length = prefix if prefix is not None else address.max_prefixlen
            if self.ip in ipaddress.ip_network(f"{address}/{length}", strict=False):
                return True
        return False

    async def _match_a(self, term: SpfTerm, domain: str, target: str) -> bool:
        lookup = await self.resolver.lookup(target, self._address_type())
        self._check_lookup(lookup, term, domain)
        return self._in_range(lookup.records, term)

    async def _match_mx(self, term: SpfTerm, domain: str, target: str) -> bool:
        lookup = await self.resolver.lookup(target, "MX")
        self._check_lookup(lookup, term, domain)
        hosts = _mx_hosts(lookup.records)
        if len(hosts) > MX_NAME_LIMIT:
            reason = f"'{term.text}' in {domain}: {target} has {len(hosts)} MX hosts, more than {MX_NAME_LIMIT}"
            raise _Stop(SpfVerdict.PERMERROR, reason)
        answers = await self.resolver.lookup_many([(host, self._address_type()) for host in hosts if host])
        if any(self._in_range(answer.records, term) for answer in answers):
            return True
        failed = next((answer for answer in answers if answer.failed), None)
        if failed is not None:
            raise _Stop(SpfVerdict.TEMPERROR, _failure(term, domain, failed))
        return False

    async def _match_ptr(self, target: str) -> bool:
        names = await _validated_names(self.resolver, self.ip)
        return any(name == target or name.endswith("." + target) for name in names)

    async def explanation(self, term: SpfTerm, domain: str) -> str:
        """The exp= text (RFC 7208 6.2); any problem just means no explanation."""
        try:
            target = expand_macros(term.value, self._ctx(domain)).rstrip(".")
            if not _valid_domain(target):
                return ""
            lookup = await self.resolver.lookup(target, "TXT")
            if len(lookup.records) != 1:
                return ""
            return expand_macros(lookup.records[0], self._ctx(domain), exp=True)
        except SpfSyntaxError:
            return ""


def _failure(term: SpfTerm, domain: str, lookup: Lookup) -> str:
    return f"'{term.text}' in {domain}: the lookup of {lookup.name} failed ({lookup.status.value})"


def _mx_hosts(records: Sequence[str]) -> list[str]:
    hosts = []
    for record in records:
        parts = record.split()
        if parts:
            hosts.append(parts[-1].rstrip(".").lower())
    return hosts


async def _validated_names(resolver: Resolver, ip: IPAddress) -> list[str]:
    """PTR names of the IP whose own addresses include the IP (RFC 7208 5.5); DNS errors just drop names."""
    ptr = await resolver.lookup(reverse_name(str(ip)), "PTR")
    names = [name.rstrip(".").lower() for name in ptr.records[:PTR_NAME_LIMIT]]
    rdtype = "AAAA" if isinstance(ip, ipaddress.IPv6Address) else "A"
    answers = await resolver.lookup_many([(name, rdtype) for name in names if _valid_domain(name)])
    valid = []
    for answer in answers:
        for text in answer.records:
            try:
                if ipaddress.ip_address(text) == ip:
                    valid.append(answer.name)
                    break
            except ValueError:
                continue
    return valid


def _parse_ip_arg(ip: str) -> IPAddress:
    address = ipaddress.ip_address(ip.strip().strip("[]"))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # RFC 7208 5: an IPv4-mapped IPv6 connection is checked as IPv4
    return address


async def evaluate_spf(
    resolver: Resolver,
    domain: str,
    ip: str,
    sender: str | None = None,
    *,
    helo: str | None = None,
) -> SpfResult:
    """RFC 7208 check_host() for ``ip`` sending as ``sender`` (default ``postmaster@domain``).

    Raises ``ValueError`` only when ``ip`` is not an IP address; DNS trouble is a temperror result.
    """
    address = _parse_ip_arg(ip)
    domain = domain.strip().rstrip(".").lower()
    if sender is None or not sender.strip():
        sender = f"postmaster@{domain}"
    elif "@" not in sender:
        sender = f"postmaster@{sender}"
    elif sender.startswith("@"):
        sender = "postmaster" + sender
    evaluator = _Evaluator(resolver, address, sender.strip(), helo or domain)
    explanation = ""
    try:
        outcome = await evaluator.check_host(domain)
    except _Stop as stop:
        outcome = _Outcome(stop.verdict, [], stop.reason)
    if outcome.verdict is SpfVerdict.FAIL and outcome.exp is not None:
        explanation = await evaluator.explanation(*outcome.exp)
    reason = outcome.reason
    if not reason and outcome.path:
        reason = f"matched '{outcome.path[-1]}'"
    mechanism = outcome.path[0].partition(": ")[2] if outcome.path else ""
    return SpfResult(
        ip=str(address),
        domain=domain,
        sender=evaluator.sender,
        result=outcome.verdict,
        mechanism=mechanism,
        path=tuple(outcome.path),
        reason=reason,
        explanation=explanation,
        lookups=min(evaluator.lookups, LOOKUP_LIMIT + 1),
        void_lookups=evaluator.voids,
    )


# --------------------------------------------------------------------------- the tree


class _Tree:
    """Reads every record reachable by include/redirect, whatever fails, and records per term what it costs."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.nodes = 0

    async def node(self, domain: str, via: str, ancestors: tuple[str, ...]) -> dict[str, Any]:
        node: dict[str, Any] = {
            "domain": domain,
            "via": via,
            "status": "ok",
            "record": None,
            "errors": [],
            "mechanisms": [],
            "lookups": 0,
            "void_lookups": 0,
        }
        if domain in ancestors:
            node["status"] = "loop"
            return node
        if not _valid_domain(domain):
            node["status"] = "invalid-domain"
            return node
        self.nodes += 1
        if self.nodes > _MAX_TREE_NODES:
            node["status"] = "not-expanded"
            return node
        lookup = await self.resolver.lookup(domain, "TXT")
        node["dns"] = lookup.status.value
        if lookup.failed:
            node["status"] = "lookup-failed"
            return node
        texts = spf_records(lookup.records)
        if not texts:
            node["status"] = "no-record"
            return node
        if len(texts) > 1:
            node["status"] = "multiple-records"
            node["records"] = texts
            return node
        record = parse_spf(texts[0])
        node["record"] = texts[0]
        node["errors"] = list(record.errors)
        if record.errors:
            node["status"] = "syntax-error"
        has_all = record.all_term is not None
        path = (*ancestors, domain)
        entries = await asyncio.gather(*(self.term(term, domain, has_all, path) for term in record.terms))
        node["mechanisms"] = list(entries)
        node["lookups"] = sum(entry["lookups"] for entry in entries)
        node["void_lookups"] = sum(entry["void_lookups"] for entry in entries)
        return node

    async def term(self, term: SpfTerm, domain: str, has_all: bool, path: tuple[str, ...]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "term": term.text,
            "type": term.name,
            "qualifier": term.qualifier,
            "modifier": term.is_modifier,
            "lookups": 1 if term.costs_lookup else 0,
            "void": False,
            "void_lookups": 0,
        }
        if term.name == "redirect" and has_all:
            entry["lookups"] = 0
            entry["ignored"] = True
            return entry
        if not term.costs_lookup:
            return entry
        spec = term.value or domain
        if _has_macros(spec) and re.search(r"%\{[^dD]", spec):
            entry["dynamic"] = True  # depends on the sender or IP: nothing to read before a real message
            return entry
        target = expand_macros(spec, MacroContext(f"postmaster@{domain}", domain)).rstrip(".").lower()
        entry["target"] = target
        if term.name in ("include", "redirect"):
            child = await self.node(target, term.name, path)
            entry["child"] = child
            entry["lookups"] += child["lookups"]
            entry["void_lookups"] = child["void_lookups"]
            return entry
        if term.name == "ptr" or not _valid_domain(target):
            return entry  # ptr reads the connecting IP's reverse zone: nothing to read without one
        if term.name == "a":
            answers = await self.resolver.lookup_many([(target, "A"), (target, "AAAA")])
        elif term.name == "mx":
            answers = [await self.resolver.lookup(target, "MX")]
            entry["mx_names"] = len(_mx_hosts(answers[0].records))
        else:
            answers = [await self.resolver.lookup(target, "A")]
        failed = next((answer for answer in answers if answer.failed), None)
        if failed is not None:
            entry["dns"] = failed.status.value
        elif not any(answer.records for answer in answers):
            entry["dns"] = answers[0].status.value
            entry["void"] = True
            entry["void_lookups"] = 1
        else:
            entry["dns"] = LookupStatus.OK.value
        return entry


def _walk(node: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Every node of the tree, depth first, with the entry (term) that led to it."""
    stack: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(node, None)]
    while stack:
        current, via = stack.pop()
        yield current, via
        children = [(entry["child"], entry) for entry in current["mechanisms"] if "child" in entry]
        stack.extend(reversed(children))


def _terms(root: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for node, _via in _walk(root):
        for entry in node["mechanisms"]:
            yield node, entry


# --------------------------------------------------------------------------- findings


def _with_term(record: str, term: str) -> str:
    """The record with ``term`` added right after ``v=spf1``."""
    words = record.split()
    return " ".join([words[0], term, *words[1:]]) if words else f"v=spf1 {term} ~all"


def _with_all(record: str, qualifier: str) -> str:
    words = [w for w in record.split() if not re.fullmatch(r"[+\-~?]?all", w, re.IGNORECASE)]
    words = [w for w in words if not w.lower().startswith("redirect=")] if qualifier else words
    return " ".join([*words, f"{qualifier}all"])


def _ip_term(ip: str) -> str:
    return f"ip6:{ip}" if ":" in ip else f"ip4:{ip}"


def _merged(records: Sequence[str]) -> str:
    """One record holding the terms of several (first ``all`` kept, duplicates dropped)."""
    terms: list[str] = []
    final = ""
    for text in records:
        for word in text.split()[1:]:
            if re.fullmatch(r"[+\-~?]?all", word, re.IGNORECASE):
                final = final or word
            elif word.lower() not in (t.lower() for t in terms):
                terms.append(word)
    return " ".join(["v=spf1", *terms, final or "~all"])


class _Report:
    def __init__(self, section: Section, domain: str, ips: Sequence[str]) -> None:
        self.section = section
        self.domain = domain
        self.ips = ips
        self._seen: set[tuple[str, str]] = set()

    def add(self, severity: Severity, code: str, message: str, fix: str) -> None:
        if (code, message) not in self._seen:
            self._seen.add((code, message))
            self.section.add(severity, code, message, fix)

    def example_record(self) -> str:
        senders = " ".join(_ip_term(ip) for ip in self.ips) or "ip4:<your server's IP> include:<your email provider's SPF domain>"
        return f"v=spf1 {senders} ~all"

    def root(self, node: dict[str, Any]) -> bool:
        """Findings about the domain's own record; False when there is no single record to read further."""
        domain, status = self.domain, node["status"]
        if status == "lookup-failed":
            self.add(
                Severity.ERROR,
                "spf.lookup-failed",
                f"The TXT lookup for {domain} failed ({node.get('dns', 'error')}), so receivers get a temporary SPF error "
                "and may defer your mail.",
                f"Make sure the nameservers of {domain} answer TXT queries, then check again.",
            )
            return False
        if status in ("no-record", "invalid-domain"):
            self.add(
                Severity.ERROR,
                "spf.missing",
                f"{domain} has no SPF record, so receivers cannot tell which servers may send its mail.",
                f'Publish one TXT record at {domain}: "{self.example_record()}" (see {_KB_SPF_FAILED}).',
            )
            return False
        if status == "multiple-records":
            records = node.get("records", [])
            self.add(
                Severity.ERROR,
                "spf.multiple-records",
                f"{domain} has {len(records)} SPF records; receivers treat that as a permanent error, so SPF never passes.",
                f'Delete all but one and publish a single TXT record, for example "{_merged(records)}" (see {_KB_SPF_FAILED}).',
            )
            return False
        self.add(Severity.OK, "spf.found", f"{domain} publishes one SPF record: {node['record']}", "")
        return True

    def tree(self, root: dict[str, Any]) -> None:
        for node, via in _walk(root):
            if via is not None:
                self.child(node, via)
            if node["errors"]:
                for error in node["errors"]:
                    self.add(
                        Severity.ERROR,
                        "spf.syntax-error",
                        f"The SPF record of {node['domain']} has a syntax error: {error}; receivers return a permanent error.",
                        f"Correct or remove that term in the TXT record of {node['domain']} (see {_KB_SPF_NOT_PASS}).",
                    )
        for node, entry in _terms(root):
            self.term(node, entry)

    def child(self, node: dict[str, Any], via: dict[str, Any]) -> None:
        parent_term, target, status = via["term"], node["domain"], node["status"]
        if status == "loop":
            self.add(
                Severity.ERROR,
                "spf.include-loop",
                f"'{parent_term}' leads back to {target}, which is already being evaluated; the loop ends in a permanent error.",
                f"Remove '{parent_term}' or the include that points back to it.",
            )
        elif status in ("no-record", "invalid-domain"):
            kind = "redirect-missing" if via["type"] == "redirect" else "include-missing"
            self.add(
                Severity.ERROR,
                f"spf.{kind}",
                f"'{parent_term}' points at {target}, which has no SPF record; receivers return a permanent error.",
                f"Remove '{parent_term}' or correct the domain to the one your provider documents (see {_KB_SPF_NOT_PASS}).",
            )
        elif status == "lookup-failed":
            self.add(
                Severity.ERROR,
                "spf.include-lookup-failed",
                f"The TXT lookup for {target} (from '{parent_term}') failed ({node.get('dns', 'error')}); "
                "receivers get a temporary error.",
                f"Check that {target} is spelled right and its nameservers answer; "
                f"remove '{parent_term}' if the service is gone.",
            )
        elif status == "multiple-records":
            self.add(
                Severity.ERROR,
                "spf.multiple-records",
                f"{target} (from '{parent_term}') has {len(node.get('records', []))} SPF records; "
                "receivers return a permanent error.",
                f"Ask the owner of {target} to publish a single record, or replace '{parent_term}' with the addresses you need.",
            )

    def term(self, node: dict[str, Any], entry: dict[str, Any]) -> None:
        owner, text, kind = node["domain"], entry["term"], entry["type"]
        if kind == "all" and entry["qualifier"] == "+":
            where = "" if owner == self.domain else f" (in {owner}, which you include)"
            self.add(
                Severity.ERROR,
                "spf.all-pass",
                f"'{text}'{where} lets every server on the internet pass SPF for {self.domain}.",
                f'Replace it with "~all" or "-all": "{_with_all(node["record"], "~")}" (see {_KB_SUSPICIOUS}).'
                if owner == self.domain
                else f"Remove the include of {owner} or ask its owner to end the record with ~all or -all "
                f"(see {_KB_SUSPICIOUS}).",
            )
        elif kind == "ptr":
            self.add(
                Severity.WARNING,
                "spf.ptr-used",
                f"'{text}' in {owner} uses the deprecated ptr mechanism: slow, unreliable and ignored by some receivers.",
                f"Replace '{text}' with ip4:/ip6: terms for your servers (see {_KB_SUSPICIOUS}).",
            )
        elif kind == "redirect" and entry.get("ignored"):
            self.add(
                Severity.WARNING,
                "spf.redirect-ignored",
                f"'{text}' in {owner} is ignored because the record also has an 'all' term.",
                f"Remove '{text}', or remove the 'all' term if the redirect is what you want.",
            )
        elif entry.get("dns") in ("servfail", "timeout", "error"):
            self.add(
                Severity.ERROR,
                "spf.target-lookup-failed",
                f"The lookup for '{text}' in {owner} failed ({entry['dns']}); receivers reaching it get a temporary error.",
                f"Check that {entry.get('target', owner)} is spelled right and its nameservers answer.",
            )
        if kind == "mx" and entry.get("mx_names", 0) > MX_NAME_LIMIT:
            self.add(
                Severity.ERROR,
                "spf.mx-too-many-names",
                f"'{text}' in {owner} reads {entry['mx_names']} MX hosts of {entry['target']}; "
                f"more than {MX_NAME_LIMIT} is a permanent error.",
                f"Replace '{text}' with ip4:/ip6: terms for the hosts that really send mail.",
            )
        if entry["modifier"] and kind not in ("redirect", "exp", *_QUIET_MODIFIERS):
            self.add(
                Severity.WARNING,
                "spf.unknown-modifier",
                f"'{text}' in {owner} is not a modifier receivers know, so they ignore it.",
                "Remove it, or correct the spelling (the known modifiers are redirect= and exp=).",
            )

    def policy(self, root: dict[str, Any]) -> None:
        """The final all term: in the record, or in the record a redirect hands over to."""
        node, hops = root, []
        while True:
            entries = node["mechanisms"]
            final = next((e for e in entries if e["type"] == "all"), None)
            redirect = next((e for e in entries if e["type"] == "redirect" and not e.get("ignored")), None)
            if final is not None or redirect is None or "child" not in redirect:
                break
            if redirect["child"]["status"] not in ("ok", "syntax-error"):
                return  # a broken redirect has its own finding
            hops.append(redirect["child"]["domain"])
            node = redirect["child"]
        where = f" (through redirect to {hops[-1]})" if hops else ""
        record = node["record"]
        if final is None:
            if redirect is not None:
                return  # dynamic redirect: nothing to judge
            self.add(
                Severity.WARNING,
                "spf.all-missing",
                f"The SPF record of {self.domain}{where} has no 'all' term, "
                "so servers it does not list get 'neutral' instead of a failure.",
                f'End the record with "~all" or "-all": "{_with_all(record, "~")}".',
            )
            return
        qualifier = final["qualifier"]
        if qualifier == "?":
            self.add(
                Severity.WARNING,
                "spf.all-neutral",
                f"The SPF record of {self.domain}{where} ends in '?all', which says nothing about servers it does not list.",
                f'End it with "~all" or "-all": "{_with_all(record, "~")}" (see {_KB_SUSPICIOUS}).',
            )
        elif qualifier == "~":
            self.add(
                Severity.INFO,
                "spf.all-softfail",
                f"The SPF record of {self.domain}{where} ends in '~all': "
                "unlisted servers soft-fail (usually spam folder, not rejection).",
                f'Once every sender is listed you can tighten it to "-all": "{_with_all(record, "-")}".',
            )
        elif qualifier == "-":
            self.add(
                Severity.OK,
                "spf.all-fail",
                f"The SPF record of {self.domain}{where} ends in '-all': servers it does not list fail SPF.",
                "",
            )

    def counts(self, root: dict[str, Any]) -> None:
        total = root["lookups"]
        heavy = sorted(
            (e for e in root["mechanisms"] if e["lookups"] > 1),
            key=lambda e: -int(e["lookups"]),
        )
        costly = ", ".join(f"{e['term']} ({e['lookups']})" for e in heavy[:4])
        detail = f" The biggest: {costly}." if costly else ""
        if total > LOOKUP_LIMIT:
            self.add(
                Severity.ERROR,
                "spf.too-many-lookups",
                f"The SPF record of {self.domain} needs {total} DNS lookups; "
                f"above {LOOKUP_LIMIT} receivers return a permanent error.{detail}",
                "Remove includes of services you no longer use, and replace a, mx and nested includes with the ip4:/ip6: "
                f"ranges they stand for, to get to {LOOKUP_LIMIT} or fewer (see {_KB_SPF_NOT_PASS}).",
            )
        elif total >= NEAR_LIMIT:
            self.add(
                Severity.WARNING,
                "spf.lookups-near-limit",
                f"The SPF record of {self.domain} needs {total} of the {LOOKUP_LIMIT} DNS lookups allowed; "
                f"one more include can break it.{detail}",
                "Replace a and mx terms with ip4:/ip6: for your own servers and drop includes you no longer use.",
            )
        else:
            self.add(
                Severity.OK,
                "spf.lookup-count",
                f"The SPF record of {self.domain} needs {total} of the {LOOKUP_LIMIT} DNS lookups allowed.",
                "",
            )
        voids = [(node, e) for node, e in _terms(root) if e["void"]]
        if len(voids) > VOID_LOOKUP_LIMIT:
            names = ", ".join(f"'{e['term']}' in {node['domain']}" for node, e in voids)
            self.add(
                Severity.ERROR,
                "spf.too-many-void-lookups",
                f"{len(voids)} terms look up names that do not exist or have no records ({names}); above "
                f"{VOID_LOOKUP_LIMIT} receivers return a permanent error.",
                "Remove those terms or point them at names that exist.",
            )
        else:
            for node, e in voids:
                self.add(
                    Severity.WARNING,
                    "spf.void-lookup",
                    f"'{e['term']}' in {node['domain']} looks up {e.get('target', node['domain'])}, which has no records; "
                    f"more than {VOID_LOOKUP_LIMIT} such terms is a permanent error.",
                    f"Remove '{e['term']}' or point it at a name with records.",
                )

    def result(self, result: SpfResult, record: str | None) -> None:
        ip, verdict = result.ip, result.result
        add_ip = _with_term(record, _ip_term(ip)) if record else f"v=spf1 {_ip_term(ip)} ~all"
        if verdict is SpfVerdict.PASS:
            self.add(
                Severity.OK,
                "spf.ip-pass",
                f"{ip} passes SPF for {self.domain} ({result.reason}).",
                "",
            )
        elif verdict in (SpfVerdict.FAIL, SpfVerdict.SOFTFAIL, SpfVerdict.NEUTRAL):
            self.add(
                Severity.ERROR,
                f"spf.ip-{verdict.value}",
                f"{ip} is not authorised by the SPF record of {self.domain}: the result is {verdict.value} ({result.reason}).",
                f'If {ip} sends your mail, add it: "{add_ip}" (see {_KB_SPF_FAILED}).',
            )
        elif verdict is SpfVerdict.NONE:
            self.add(
                Severity.ERROR,
                "spf.ip-none",
                f"{ip} gets no SPF result for {self.domain} because there is no SPF record.",
                f'Publish "v=spf1 {_ip_term(ip)} ~all" at {self.domain} (see {_KB_SPF_FAILED}).',
            )
        else:
            self.add(
                Severity.ERROR,
                f"spf.ip-{verdict.value}",
                f"Checking {ip} against the SPF record of {self.domain} ends in {verdict.value}: {result.reason}.",
                (
                    "Make sure every domain the record names answers DNS queries (the failing name is in the message), "
                    "then check again; receivers defer mail meanwhile."
                    if verdict is SpfVerdict.TEMPERROR
                    else "Correct the record as the other SPF findings say (lookup count, syntax, includes); "
                    f"until then SPF cannot pass for any server (see {_KB_SPF_NOT_PASS})."
                ),
            )


async def check_spf(resolver: Resolver, domain: str, ips: Sequence[str] = ()) -> Section:
    """The ``spf`` section: the record, its include/redirect tree and lookup counts, and the result for each IP."""
    section = Section("spf")
    domain = domain.strip().rstrip(".").lower()
    valid: list[str] = []
    invalid: list[str] = []
    for ip in ips:
        try:
            valid.append(str(_parse_ip_arg(ip)))
        except ValueError:
            invalid.append(ip)
    tree = _Tree(resolver)
    root, *results = await asyncio.gather(
        tree.node(domain, "root", ()),
        *(evaluate_spf(resolver, domain, ip) for ip in valid),
    )
    assert isinstance(root, dict)
    outcomes = [r for r in results if isinstance(r, SpfResult)]
    section.records = list(root.get("records") or ([root["record"]] if root["record"] else []))
    report = _Report(section, domain, valid)
    if report.root(root):
        report.tree(root)
        report.policy(root)
        report.counts(root)
    for result in outcomes:
        report.result(result, root["record"])
    for ip in invalid:
        report.add(
            Severity.INFO,
            "spf.ip-invalid",
            f"'{ip}' is not an IP address, so SPF was not evaluated for it.",
            "Give the sending server's IPv4 or IPv6 address, e.g. 203.0.113.25.",
        )
    section.details = {
        "lookups": root["lookups"],
        "lookup_limit": LOOKUP_LIMIT,
        "void_lookups": sum(1 for _node, e in _terms(root) if e["void"]),
        "void_lookup_limit": VOID_LOOKUP_LIMIT,
        "tree": root,
        "results": [r.to_dict() for r in outcomes],
    }
    return section
