"""DKIM: find the public keys a domain publishes and judge each one (RFC 6376, RFC 8301, RFC 8463).

A DKIM key lives at ``<selector>._domainkey.<domain>`` as a TXT tag list. The
selector is chosen by whoever signs the mail and appears only in the
``DKIM-Signature`` header, so without the user's selectors we can only try the
names providers commonly use. Every selector's TXT (and CNAME, to see keys
delegated to a provider) is asked in one concurrent batch.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from coldrelay.dns.report import Section, Severity
from coldrelay.dns.resolver import Resolver

COMMON_SELECTORS: tuple[str, ...] = (
    "default",
    "selector1",  # Microsoft 365
    "selector2",  # Microsoft 365
    "google",  # Google Workspace
    "k1",  # Mailchimp / Mandrill, Klaviyo
    "k2",
    "k3",
    "s1",  # SendGrid and many others
    "s2",
    "s1024",
    "s2048",
    "dkim",
    "mail",
    "smtp",
    "mx",
    "email",
    "key1",
    "key2",
    "sig1",  # iCloud custom domains
    "everlytickey1",  # Everlytic
    "everlytickey2",
    "mandrill",
    "mailjet",
    "zoho",  # Zoho Mail
    "zmail",
    "fm1",  # Fastmail
    "fm2",
    "fm3",
    "protonmail",  # Proton Mail
    "protonmail2",
    "protonmail3",
    "mxvault",
    "cm",  # Campaign Monitor
    "pic",  # Mailgun
    "krs",  # Mailgun
    "mg",
    "smtpapi",  # SendGrid (legacy)
    "amazonses",
    "hs1",  # HubSpot
    "hs2",
)
"""Selectors tried when the user names none: the defaults of common mail hosts and sending services."""

KB_DKIM = "/smtp-errors/google-550-5-7-30-dkim-did-not-pass"

_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?)*$")
_TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_LOOKS_LIKE_DKIM = re.compile(r"(?:^|;)\s*(?:v\s*=\s*DKIM1|p\s*=|k\s*=)", re.IGNORECASE)
_KEY_TYPES = ("rsa", "ed25519")


# --------------------------------------------------------------------------- tag lists (RFC 6376 section 3.2)


@dataclass(frozen=True, slots=True)
class TagList:
    """A parsed ``name=value; name=value`` list. ``names`` keeps the order (``v`` must come first)."""

    tags: dict[str, str]
    names: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_tag_list(text: str, *, fold_case: bool = False) -> TagList:
    """Split a DKIM-style tag list; whitespace around names and values is dropped.

    ``fold_case`` lower-cases tag names (DMARC treats them case-insensitively; DKIM does not).
    Problems (a part without ``=``, a bad tag name, a tag given twice, control characters) are
    collected in ``errors``: by RFC 6376 any of them makes the whole list invalid.
    """
    tags: dict[str, str] = {}
    names: list[str] = []
    errors: list[str] = []
    for raw in text.split(";"):
        part = raw.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        value = value.strip()
        if fold_case:
            name = name.lower()
        if not eq:
            errors.append(f"'{part}' is not a tag=value pair")
            continue
        if not _TAG_NAME.match(name):
            errors.append(f"'{name}' is not a valid tag name")
            continue
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value if ch not in "\t\r\n"):
            errors.append(f"the value of '{name}' contains control characters")
        if name in tags:
            errors.append(f"tag '{name}' appears more than once")
            continue
        tags[name] = value
        names.append(name)
    return TagList(tags, tuple(names), tuple(errors))


# --------------------------------------------------------------------------- keys


@dataclass(slots=True)
class DkimKey:
    """What one selector publishes, as far as it could be read."""

    selector: str
    name: str
    record: str
    cname: str | None = None
    key_type: str | None = None
    bits: int | None = None
    hash_algorithms: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    testing: bool = False
    revoked: bool = False
    usable: bool = False
    """True when a verifier following RFC 6376 and RFC 8301 could check signatures with this key."""
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(value: str) -> str:
    return re.sub(r"\s+", "", value)


def _list_value(value: str) -> list[str]:
    return [item.strip().lower() for item in value.split(":") if item.strip()]


def _decode_key(key_type: str, data: str) -> tuple[int | None, str | None]:
    """(RSA size in bits or None, problem or None) for the base64 in ``p=``."""
    try:
        der = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None, "the p= value is not valid base64"
    if key_type == "ed25519":
        if len(der) != 32:
            return None, f"an Ed25519 key must be the raw 32-byte public key, this one is {len(der)} bytes"
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(der)
        except (ValueError, UnsupportedAlgorithm):
            return None, "the p= value is not a valid Ed25519 public key"
        return None, None
    try:
        key = load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        return None, "the p= value does not decode to an RSA public key"
    if not isinstance(key, rsa.RSAPublicKey):
        return None, "the p= value holds a public key that is not RSA although the record says k=rsa"
    return key.key_size, None


def _example_record(domain: str, selector: str) -> str:
    return f'{selector}._domainkey.{domain} TXT "v=DKIM1; k=rsa; p=<the base64 public key from your sending service>"'


_Found = tuple[Severity, str, str, str]


def _judge(key: DkimKey, domain: str) -> list[_Found]:
    """Judge one DKIM record: fill in ``key`` and return its findings (severity, code, message, fix)."""
    sel, name = key.selector, key.name
    publish = _example_record(domain, sel)
    parsed = parse_tag_list(key.record)
    if not parsed.ok:
        key.problems.extend(parsed.errors)
        return [
            (
                Severity.ERROR,
                "dkim.syntax-error",
                f"The DKIM record at selector '{sel}' cannot be read: {'; '.join(parsed.errors)}.",
                f"Replace the TXT record at {name} with a clean tag list, for example {publish}.",
            )
        ]
    tags = parsed.tags
    version = tags.get("v")
    if version is not None and (parsed.names[0] != "v" or version != "DKIM1"):
        problem = "v= must be the first tag" if parsed.names[0] != "v" else f"v={version} is not DKIM1"
        key.problems.append(problem)
        return [
            (
                Severity.ERROR,
                "dkim.syntax-error",
                f"Receivers ignore the DKIM record at selector '{sel}' because {problem}.",
                f"Start the record with v=DKIM1 or leave v= out, for example {publish}.",
            )
        ]
    if "p" not in tags:
        key.problems.append("no p= tag")
        return [
            (
                Severity.ERROR,
                "dkim.syntax-error",
                f"The DKIM record at selector '{sel}' has no p= tag, so it holds no public key.",
                f"Publish the key itself: {publish}.",
            )
        ]
    key_type = tags.get("k", "rsa").strip().lower() or "rsa"
    key.key_type = key_type
    if key_type not in _KEY_TYPES:
        key.problems.append(f"unknown key type k={key_type}")
        return [
            (
                Severity.ERROR,
                "dkim.unknown-key-type",
                f"The DKIM key at selector '{sel}' has type k={key_type}, which receivers cannot use "
                "(only rsa and ed25519 exist).",
                f"Publish an RSA key (k=rsa, 2048 bits) or an Ed25519 key (k=ed25519) at {name}.",
            )
        ]
    data = _clean(tags["p"])
    if not data:
        key.revoked = True
        return [
            (
                Severity.ERROR,
                "dkim.revoked",
                f"The DKIM key at selector '{sel}' is revoked (empty p=), so mail signed with it fails DKIM.",
                f"If you still sign with selector '{sel}', publish its current public key: {publish}; "
                f"if you retired it, sign with another selector. See {KB_DKIM}.",
            )
        ]
    bits, key_problem = _decode_key(key_type, data)
    if key_problem is not None:
        key.problems.append(key_problem)
        return [
            (
                Severity.ERROR,
                "dkim.invalid-key",
                f"The DKIM key at selector '{sel}' is unusable: {key_problem}.",
                f"Copy the public key again from your sending service, in one piece without quotes or line breaks: {publish}.",
            )
        ]
    key.bits = bits
    key.usable = True
    key.hash_algorithms = _list_value(tags["h"]) if "h" in tags else []
    key.services = _list_value(tags["s"]) if "s" in tags else []
    key.flags = _list_value(tags["t"]) if "t" in tags else []
    key.testing = "y" in key.flags
    findings: list[_Found] = []
    if bits is not None and bits < 1024:
        key.usable = False
        findings.append(
            (
                Severity.ERROR,
                "dkim.rsa-too-short",
                f"The DKIM key at selector '{sel}' is only {bits} bits, and receivers reject signatures made with RSA keys "
                "under 1024 bits.",
                f"Generate a 2048-bit RSA key at your sending service and publish it: {publish}.",
            )
        )
    elif bits is not None and bits < 2048:
        findings.append(
            (
                Severity.WARNING,
                "dkim.rsa-short",
                f"The DKIM key at selector '{sel}' is {bits} bits; that still verifies, but 2048 bits "
                "is the expected minimum today.",
                f"Create a 2048-bit key under a new selector (e.g. {sel}2048._domainkey.{domain} TXT "
                '"v=DKIM1; k=rsa; p=<new key>"), switch signing to it, then revoke the old one.',
            )
        )
    if key.hash_algorithms and "sha256" not in key.hash_algorithms:
        key.usable = False
        findings.append(
            (
                Severity.ERROR,
                "dkim.no-sha256",
                f"The DKIM key at selector '{sel}' allows only h={':'.join(key.hash_algorithms)}, and receivers no longer "
                "accept SHA-1 signatures.",
                f"Remove the h= tag (or set h=sha256) in the record at {name} and sign with rsa-sha256.",
            )
        )
    if key.services and "*" not in key.services and "email" not in key.services:
        key.usable = False
        findings.append(
            (
                Severity.ERROR,
                "dkim.not-for-email",
                f"The DKIM key at selector '{sel}' is limited to s={':'.join(key.services)}, so it cannot verify email.",
                f"Remove the s= tag (or set s=email) in the record at {name}.",
            )
        )
    if key.testing:
        findings.append(
            (
                Severity.WARNING,
                "dkim.testing",
                f"The DKIM key at selector '{sel}' is in testing mode (t=y), so receivers may treat "
                "failed signatures as unsigned.",
                f"Once signing works, remove y from the t= tag in the record at {name}.",
            )
        )
    if key.usable:
        size = f"RSA {bits}-bit" if key_type == "rsa" else "Ed25519"
        findings.insert(0, (Severity.OK, "dkim.key-found", f"A valid {size} DKIM key is published at selector '{sel}'.", ""))
    return findings


def _normalise_selector(text: str) -> str:
    sel = text.strip().rstrip(".").lower()
    if sel.endswith("._domainkey"):
        sel = sel[: -len("._domainkey")]
    return sel


async def check_dkim(resolver: Resolver, domain: str, selectors: Sequence[str] = ()) -> Section:
    """The ``dkim`` section: the user's selectors, or else every name in ``COMMON_SELECTORS``."""
    section = Section("dkim")
    domain = domain.strip().rstrip(".").lower()
    user_given = bool(selectors)
    tried: list[str] = []
    for raw in selectors:
        sel = _normalise_selector(raw)
        if not _SELECTOR.match(sel):
            section.add(
                Severity.ERROR,
                "dkim.invalid-selector",
                f"'{raw}' is not a valid DKIM selector, so it was not looked up.",
                "Give the value of s= from the DKIM-Signature header of a message you sent, e.g. selector1.",
            )
            continue
        if sel not in tried:
            tried.append(sel)
    if not user_given:
        tried = list(COMMON_SELECTORS)
    section.details["selectors_tried"] = tried
    section.details["probed"] = not user_given
    if not tried:
        return section

    names = [f"{sel}._domainkey.{domain}" for sel in tried]
    answers = await resolver.lookup_many([(n, "TXT") for n in names] + [(n, "CNAME") for n in names])
    txts, cnames = answers[: len(names)], answers[len(names) :]

    judged: list[tuple[DkimKey, list[_Found]]] = []
    failed: list[str] = []
    ignored: list[str] = []
    missing: list[str] = []
    dangling: list[tuple[str, str, str]] = []
    for sel, name, txt, cname_lookup in zip(tried, names, txts, cnames, strict=True):
        cname = cname_lookup.records[0].rstrip(".").lower() if cname_lookup.ok and cname_lookup.records else None
        if txt.failed:
            failed.append(sel)
            continue
        if not txt.ok:
            if cname is not None:
                dangling.append((sel, name, cname))
            elif user_given:
                missing.append(sel)
            continue
        records = list(txt.records) if user_given else [r for r in txt.records if _LOOKS_LIKE_DKIM.search(r)]
        if not records:
            ignored.append(sel)
            continue
        section.records.extend(records)
        if len(records) > 1:
            key = DkimKey(sel, name, " | ".join(records), cname, problems=["several TXT records"])
            several: _Found = (
                Severity.ERROR,
                "dkim.multiple-records",
                f"Selector '{sel}' has {len(records)} TXT records, so receivers cannot tell which key to use.",
                f"Keep exactly one TXT record at {name}, e.g. {_example_record(domain, sel)}.",
            )
            judged.append((key, [several]))
        else:
            key = DkimKey(sel, name, records[0], cname)
            judged.append((key, _judge(key, domain)))
    keys = [key for key, _ in judged]

    usable_somewhere = any(key.usable for key in keys)
    for key, findings in judged:
        if key.cname is not None:
            section.add(
                Severity.INFO,
                "dkim.cname-delegated",
                f"Selector '{key.selector}' is a CNAME to {key.cname}, so your provider publishes and rotates this key.",
                f"Keep the CNAME {key.name} -> {key.cname} as your provider gave it.",
            )
        for severity, code, message, fix in findings:
            if code == "dkim.revoked" and usable_somewhere and not user_given:
                severity = Severity.INFO  # a retired selector, properly revoked, next to a working key
            section.add(severity, code, message, fix)

    for sel, name, target in dangling:
        section.add(
            Severity.ERROR,
            "dkim.cname-dangling",
            f"Selector '{sel}' is a CNAME to {target}, but no DKIM key is published there.",
            f"Finish the DKIM setup at your sending service so it publishes the key at {target}, "
            f"or remove the CNAME at {name} if you no longer use it.",
        )
    for sel in missing:
        name = f"{sel}._domainkey.{domain}"
        section.add(
            Severity.ERROR,
            "dkim.selector-missing",
            f"No DKIM key is published at selector '{sel}' ({name}).",
            f"Publish the public key from your sending service: {_example_record(domain, sel)}. See {KB_DKIM}.",
        )
    if failed:
        section.add(
            Severity.ERROR,
            "dkim.lookup-failed",
            f"The DNS lookup failed (no answer or SERVFAIL) for selector(s) {', '.join(failed)} of {domain}.",
            "Check that every nameserver of the domain answers for _domainkey names, then run the check again.",
        )
    if not user_given and not keys and not dangling and not failed:
        section.add(
            Severity.ERROR,
            "dkim.no-key-found",
            f"No DKIM key was found at any of the {len(tried)} common selectors tried ({', '.join(tried)}).",
            "If you already sign mail, rerun the check with your selector (the s= value in the DKIM-Signature header "
            f"of a message you sent); otherwise turn on DKIM at your sending service and publish its key, e.g. "
            f"{_example_record(domain, 'default')}. See {KB_DKIM}.",
        )
    usable = [k for k in keys if k.usable]
    if usable and all(k.key_type == "ed25519" for k in usable):
        section.add(
            Severity.WARNING,
            "dkim.ed25519-only",
            "Your only working DKIM keys are Ed25519, which many receivers cannot verify yet.",
            f"Also sign with a 2048-bit RSA key under a second selector, e.g. {_example_record(domain, 'rsa2048')}.",
        )
    section.details["keys"] = [k.to_dict() for k in keys]
    if ignored:
        section.details["ignored_selectors"] = ignored
    if dangling:
        section.details["dangling"] = [{"selector": s, "name": n, "target": t} for s, n, t in dangling]
    if failed:
        section.details["failed_selectors"] = failed
    if missing:
        section.details["missing_selectors"] = missing
    return section
