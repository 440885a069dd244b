"""SPF, DKIM and DMARC of inbound mail, and the ``Authentication-Results`` field (RFC 8601) that records them.

- SPF (RFC 7208) is ``coldrelay.dns.spf.evaluate_spf`` for the MAIL FROM identity, or for the HELO
  identity when MAIL FROM is the null path of a bounce (RFC 7208 2.4).
- DKIM (RFC 6376) is dkimpy, one verification per ``DKIM-Signature``. dkimpy asks DNS synchronously
  through a ``dnsfunc``; so the keys (``<s>._domainkey.<d>`` TXT) are first fetched with our async
  ``Resolver`` (the one place DNS is configured, and the loopback server in tests), and dkimpy gets a
  dict-backed ``dnsfunc`` that never touches the network. That also lets us tell a failed key lookup
  (temperror) and a missing key (permerror) from a bad signature (fail), which dkimpy folds into False.
- DMARC (RFC 7489): the From domain's record, else its organisational domain's (whose ``sp=`` then
  applies), and identifier alignment, relaxed or strict, of the SPF-passing MAIL FROM (or HELO)
  domain and of each DKIM-passing ``d=``. The disposition (none/quarantine/reject) is recorded, not
  enforced: refusing on DMARC reject is a later decision. ``pct=`` is recorded but not sampled.

The authentication step of the MX pipeline (``AuthenticationStep``) removes any incoming
``Authentication-Results`` that claims our hostname (RFC 8601 section 5) and puts ours on top.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from email.utils import getaddresses
from enum import StrEnum

import dkim
import dkim.util

from coldrelay.dns.dkim import parse_tag_list
from coldrelay.dns.dmarc import POLICIES, organizational_domain
from coldrelay.dns.resolver import Lookup, Resolver
from coldrelay.dns.spf import evaluate_spf
from coldrelay.mta.checks.headers import field_name, field_value, prepend_field, remove_authentication_results, split_header
from coldrelay.mta.store.message import InboundMessage

log = logging.getLogger(__name__)

_VALID_DMARC = re.compile(r"^\s*v\s*=\s*DMARC1\s*(?:;|$)")
# RFC 8601 pvalue: a token, or an address/domain; anything else is written as a quoted-string.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]+")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class Verdict(StrEnum):
    """Result values of RFC 8601 section 2.7 (the subset SPF, DKIM and DMARC use)."""

    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class Disposition(StrEnum):
    """What the From domain's DMARC policy asks for this message (RFC 7489 6.3 ``p=``/``sp=``)."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class SpfCheck:
    result: Verdict
    identity: str  # "mailfrom" or "helo" (RFC 8601 smtp.mailfrom / smtp.helo)
    value: str  # the MAIL FROM address, or the HELO name
    domain: str  # the domain SPF was evaluated for; DMARC aligns it with the From domain
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DkimCheck:
    result: Verdict
    domain: str = ""  # d=
    selector: str = ""  # s=
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DmarcCheck:
    result: Verdict
    from_domain: str = ""
    policy_domain: str = ""  # where the record was found: the From domain or its organisational domain
    policy: Disposition | None = None  # the p= (or sp=) that applies; None when there is no policy
    disposition: Disposition = Disposition.NONE
    spf_aligned: bool = False
    dkim_aligned: bool = False
    pct: int = 100
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AuthenticationResult:
    spf: SpfCheck
    dkim: tuple[DkimCheck, ...] = ()
    dmarc: DmarcCheck = field(default_factory=lambda: DmarcCheck(Verdict.NONE))


# --------------------------------------------------------------------------- SPF


async def check_spf(resolver: Resolver, *, client_ip: str, helo: str, mail_from: str) -> SpfCheck:
    sender = mail_from.strip().strip("<>")
    helo = helo.strip().rstrip(".").lower()
    if sender:
        identity, value, domain = "mailfrom", sender, sender.rpartition("@")[2].rstrip(".").lower()
    else:
        identity, value, domain = "helo", helo, helo
    if not domain:
        return SpfCheck(Verdict.NONE, identity, value, domain, "no domain to check")
    try:
        result = await evaluate_spf(resolver, domain, client_ip, sender or f"postmaster@{helo}", helo=helo or None)
    except ValueError:
        return SpfCheck(Verdict.NONE, identity, value, domain, f"no client address ({client_ip!r})")
    return SpfCheck(Verdict(result.result.value), identity, value, domain, result.reason)


# --------------------------------------------------------------------------- DKIM


def _key_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}".lower().rstrip(".")


def _signatures(signer: dkim.DKIM) -> list[tuple[str, str] | str]:
    """Per DKIM-Signature, in dkimpy's order: (d, s), or the reason it cannot be read."""
    found: list[tuple[str, str] | str] = []
    for name, value in signer.headers:
        if name.lower() != b"dkim-signature":
            continue
        try:
            tags = dkim.util.parse_tag_value(value)
        except dkim.util.InvalidTagValueList:
            found.append("signature syntax error")
            continue
        d = tags.get(b"d", b"").decode("ascii", errors="replace").strip().lower()
        s = tags.get(b"s", b"").decode("ascii", errors="replace").strip().lower()
        found.append((d, s) if d and s else "signature without d= or s=")
    return found


def _verify_one(signer: dkim.DKIM, index: int, lookup: Lookup | None, keys: dict[str, bytes]) -> tuple[Verdict, str]:
    """One signature against its already-fetched key (blocking: RSA and the body hash)."""
    if lookup is None or lookup.failed:
        return Verdict.TEMPERROR, "key lookup failed"
    if not lookup.records:
        return Verdict.PERMERROR, "no key for signature"
    name = lookup.name.encode("ascii", errors="replace")
    try:
        dkim.evaluate_pk(name, keys[lookup.name])  # dkimpy would report a bad key as a plain False
    except dkim.DKIMException as exc:
        return Verdict.PERMERROR, f"bad key: {exc}"[:80]

    def dnsfunc(qname: bytes, timeout: float = 5) -> bytes | None:
        return keys.get(qname.decode("ascii", errors="replace").rstrip(".").lower())

    try:
        verified = signer.verify(idx=index, dnsfunc=dnsfunc)
    except dkim.ValidationError as exc:
        text = str(exc)
        if "body hash mismatch" in text:
            return Verdict.FAIL, "body hash did not verify"
        return Verdict.FAIL, text[:80]
    except dkim.DKIMException as exc:  # MessageFormatError, KeyFormatError (key too small), ParameterError, ...
        return Verdict.PERMERROR, str(exc)[:80]
    return (Verdict.PASS, "") if verified else (Verdict.FAIL, "signature did not verify")


async def check_dkim(message: bytes, resolver: Resolver) -> tuple[DkimCheck, ...]:
    """One result per DKIM-Signature, top first; no signature at all is one ``none``."""
    try:
        signer = dkim.DKIM(message)
    except dkim.DKIMException as exc:
        return (DkimCheck(Verdict.PERMERROR, reason=str(exc)[:80]),)
    signatures = _signatures(signer)
    if not signatures:
        return (DkimCheck(Verdict.NONE),)
    names = sorted({_key_name(s[1], s[0]) for s in signatures if isinstance(s, tuple)})
    lookups = dict(zip(names, await resolver.lookup_many([(n, "TXT") for n in names]), strict=True))
    keys = {n: lk.records[0].encode("utf-8") for n, lk in lookups.items() if lk.ok and lk.records}

    def verify_all() -> tuple[DkimCheck, ...]:
        checks: list[DkimCheck] = []
        for index, signature in enumerate(signatures):
            if isinstance(signature, str):
                checks.append(DkimCheck(Verdict.PERMERROR, reason=signature))
                continue
            domain, selector = signature
            verdict, reason = _verify_one(signer, index, lookups.get(_key_name(selector, domain)), keys)
            checks.append(DkimCheck(verdict, domain, selector, reason))
        return tuple(checks)

    return await asyncio.to_thread(verify_all)


# --------------------------------------------------------------------------- DMARC


@dataclass(frozen=True, slots=True)
class _Policy:
    domain: str
    p: Disposition
    sp: Disposition
    adkim: str
    aspf: str
    pct: int


def from_domain(message: bytes) -> str | None:
    """The domain of the one author address in the one From field; None when there is not exactly one."""
    fields, _ = split_header(message)
    froms = [field_value(f) for f in fields if field_name(f) == "from"]
    if len(froms) != 1:
        return None
    addresses = [address for _, address in getaddresses(froms) if address]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    domain = addresses[0].rpartition("@")[2].strip().rstrip(".").lower()
    return domain or None


def _parse_policy(domain: str, record: str) -> _Policy | None:
    """RFC 7489 6.3 and 6.6.3: an invalid p= makes the record void, unless rua= is there (then p=none)."""
    tags = parse_tag_list(record, fold_case=True).tags
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        if "rua" not in tags:
            return None
        p = "none"
    sp = tags.get("sp", "").lower()
    pct_text = tags.get("pct", "100")
    pct = int(pct_text) if pct_text.isdigit() and int(pct_text) <= 100 else 100
    return _Policy(
        domain,
        Disposition(p),
        Disposition(sp) if sp in POLICIES else Disposition(p),
        "s" if tags.get("adkim", "r").lower() == "s" else "r",
        "s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct,
    )


async def _discover(resolver: Resolver, domain: str) -> _Policy | Verdict:
    """The policy record for ``domain`` (RFC 7489 6.6.3), or TEMPERROR, or NONE when there is none to apply."""
    org = organizational_domain(domain)
    for name in dict.fromkeys((domain, org)):
        lookup = await resolver.lookup(f"_dmarc.{name}", "TXT")
        if lookup.failed:
            return Verdict.TEMPERROR
        valid = [r for r in lookup.records if _VALID_DMARC.match(r)]
        if len(valid) > 1:
            return Verdict.NONE  # several records: discovery ends with no policy
        if valid:
            policy = _parse_policy(name, valid[0])
            return policy if policy is not None else Verdict.NONE
    return Verdict.NONE


def aligned(identifier: str, author: str, mode: str) -> bool:
    """RFC 7489 3.1: strict needs the same domain; relaxed the same organisational domain."""
    identifier, author = identifier.lower().rstrip("."), author.lower().rstrip(".")
    if not identifier or not author:
        return False
    if mode == "s":
        return identifier == author
    return organizational_domain(identifier) == organizational_domain(author)


async def check_dmarc(message: bytes, resolver: Resolver, spf: SpfCheck, dkim_checks: tuple[DkimCheck, ...]) -> DmarcCheck:
    author = from_domain(message)
    if author is None:
        return DmarcCheck(Verdict.PERMERROR, reason="not exactly one From address")
    found = await _discover(resolver, author)
    if isinstance(found, Verdict):
        return DmarcCheck(found, author)
    policy = found.p if found.domain == author else found.sp
    spf_aligned = spf.result is Verdict.PASS and aligned(spf.domain, author, found.aspf)
    dkim_aligned = any(c.result is Verdict.PASS and aligned(c.domain, author, found.adkim) for c in dkim_checks)
    passed = spf_aligned or dkim_aligned
    return DmarcCheck(
        Verdict.PASS if passed else Verdict.FAIL,
        author,
        found.domain,
        policy,
        Disposition.NONE if passed else policy,
        spf_aligned,
        dkim_aligned,
        found.pct,
    )


# --------------------------------------------------------------------------- together


async def authenticate(message: bytes, *, client_ip: str, helo: str, mail_from: str, resolver: Resolver) -> AuthenticationResult:
    """SPF, DKIM and DMARC of one received message; DNS trouble is a temperror, never an exception."""
    spf, dkim_checks = await asyncio.gather(
        check_spf(resolver, client_ip=client_ip, helo=helo, mail_from=mail_from),
        check_dkim(message, resolver),
    )
    dmarc_check = await check_dmarc(message, resolver, spf, dkim_checks)
    return AuthenticationResult(spf, dkim_checks, dmarc_check)


def _pvalue(text: str) -> str:
    if _PLAIN_VALUE.fullmatch(text):
        return text
    cleaned = _UNPRINTABLE.sub("?", text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{cleaned}"'


def _comment(text: str) -> str:
    cleaned = _UNPRINTABLE.sub("?", text).replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f" ({cleaned})" if cleaned else ""


def authentication_results_header(hostname: str, result: AuthenticationResult) -> str:
    """The ``Authentication-Results:`` field (RFC 8601), one method per folded line, without a final CRLF.

    Hand-written rather than with ``authheaders`` (PyPI): that package is not a dependency here, and the
    grammar we need is small: ``authserv-id; method=result (comment) ptype.property=value; ...``.
    """
    spf = result.spf
    spf_comment = _comment(spf.reason) if spf.result in (Verdict.NONE, Verdict.TEMPERROR, Verdict.PERMERROR) else ""
    clauses = [f"spf={spf.result.value}{spf_comment} smtp.{spf.identity}={_pvalue(spf.value)}"]
    for check in result.dkim:
        clause = f"dkim={check.result.value}{_comment(check.reason)}"
        if check.domain:
            clause += f" header.d={_pvalue(check.domain)} header.s={_pvalue(check.selector)}"
        clauses.append(clause)
    dmarc_check = result.dmarc
    clause = f"dmarc={dmarc_check.result.value}"
    if dmarc_check.policy is not None:
        clause += f" (p={dmarc_check.policy.value} dis={dmarc_check.disposition.value})"
    elif dmarc_check.reason:
        clause += _comment(dmarc_check.reason)
    if dmarc_check.from_domain:
        clause += f" header.from={_pvalue(dmarc_check.from_domain)}"
    clauses.append(clause)
    return f"Authentication-Results: {hostname};\r\n\t" + ";\r\n\t".join(clauses)


class AuthenticationStep:
    """The MX pipeline step: check the message, drop forged results for our hostname, put ours on top."""

    def __init__(self, resolver: Resolver, hostname: str) -> None:
        self.resolver = resolver
        self.hostname = hostname

    async def __call__(self, content: bytes, message: InboundMessage) -> bytes:
        try:
            result = await authenticate(
                content, client_ip=message.peer_ip, helo=message.helo, mail_from=message.sender, resolver=self.resolver
            )
            header = authentication_results_header(self.hostname, result)
        except Exception:  # a checker bug must not cost the message: say no result was obtained
            log.exception("authentication checks failed for %s", message.queue_id)
            result, header = None, f"Authentication-Results: {self.hostname}; none"
        content, removed = remove_authentication_results(content, self.hostname)
        if removed:
            log.warning("removed %d forged Authentication-Results for %s from %s", removed, self.hostname, message.queue_id)
        if result is not None:
            log.info(
                "%s spf=%s dkim=%s dmarc=%s disposition=%s",
                message.queue_id,
                result.spf.result,
                ",".join(c.result for c in result.dkim),
                result.dmarc.result,
                result.dmarc.disposition,
            )
        return prepend_field(content, header)
