"""Mailboxes in bulk: names and domains in, addresses planned, passwords generated and hashed, rows added.

Planning is a pure function over the set of addresses that already exist, so it can be shown
(``--dry-run``) and tested without a database. Creating is dominated by argon2id, which is slow
on purpose (about 0.15-0.3 s and 64 MiB per hash with argon2-cffi's defaults): a hundred
mailboxes one after another take half a minute, so the hashes are made in a small thread pool
(argon2-cffi releases the GIL) before the rows are added on the caller's thread and session.
"""

from __future__ import annotations

import enum
import os
import secrets
import string
import unicodedata
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from coldrelay.db.accounts import AccountError, create_mailbox_with_hash, existing_addresses, hash_password, normalize_domain
from coldrelay.db.models import Mailbox

PASSWORD_LENGTH = 20  # 20 characters of 62 symbols: about 119 bits, far beyond online guessing
_PASSWORD_ALPHABET = string.ascii_letters + string.digits  # no punctuation: it survives CSV, shells and web forms

MAX_PER_DOMAIN = 100
"""More mailboxes than this on one domain is almost always a typo; cold-email practice is a handful
per domain, because every mailbox on a domain shares its reputation."""

MAX_HASH_WORKERS = 4  # each argon2 hash holds 64 MiB while it runs; four at once stay near 256 MiB


class Pattern(enum.StrEnum):
    """How a person's name becomes a local part (Anna Berg -> anna, anna.berg, aberg, annab, a.berg)."""

    FIRST = "first"
    FIRST_DOT_LAST = "first.last"
    FLAST = "flast"
    FIRSTL = "firstl"
    F_DOT_LAST = "f.last"


DEFAULT_PATTERNS: tuple[Pattern, ...] = tuple(Pattern)


class NamesError(AccountError):
    """A names file that cannot be used; the message names the line."""


class PlanError(AccountError):
    """A bulk request that cannot be planned (no domains, a bad count, too few free addresses)."""


@dataclass(frozen=True, slots=True)
class PersonName:
    """One line of the names file: the first word is the first name, the rest the last name."""

    first: str
    last: str

    @property
    def display(self) -> str:
        return f"{self.first} {self.last}".strip()


@dataclass(frozen=True, slots=True)
class PlannedMailbox:
    """An address chosen for a person at a domain."""

    address: str
    name: PersonName


@dataclass(slots=True)
class BulkPlan:
    """What a bulk run will create, the existing addresses it stepped over, and any domain left short."""

    planned: list[PlannedMailbox] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    shortfall: dict[str, int] = field(default_factory=dict)  # domain -> mailboxes it could not get


@dataclass(frozen=True, slots=True)
class NewMailbox:
    """A mailbox this run created, with the clear-text password that exists only in this run's memory."""

    address: str
    display_name: str | None
    password: str
    daily_cap: int | None


# Letters that Unicode does not decompose into a base letter plus accents.
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def slug(text: str) -> str:
    """The ASCII letters and digits of a name part, accents removed: "Zoë-Ann" -> "zoeann"."""
    folded = unicodedata.normalize("NFKD", text.lower().translate(_FOLD))
    return "".join(char for char in folded if char in string.ascii_lowercase or char in string.digits)


def local_part(name: PersonName, pattern: Pattern) -> str | None:
    """The local part ``pattern`` makes of ``name``; ``None`` when it needs a last name the person lacks."""
    first, last = slug(name.first), slug(name.last)
    if pattern is Pattern.FIRST:
        return first
    if not last:
        return None
    return {
        Pattern.FIRST_DOT_LAST: f"{first}.{last}",
        Pattern.FLAST: f"{first[0]}{last}",
        Pattern.FIRSTL: f"{first}{last[0]}",
        Pattern.F_DOT_LAST: f"{first[0]}.{last}",
    }[pattern]


def parse_names(lines: Iterable[str]) -> list[PersonName]:
    """People from "First Last" lines: blank lines, ``#`` comments and repeats (any case) are skipped."""
    people: list[PersonName] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        name = PersonName(words[0], " ".join(words[1:]))
        if not slug(name.first):
            raise NamesError(
                f"line {number}: {raw.strip()!r} has no first name usable in an address "
                "(letters a-z or digits, accents are dropped)"
            )
        key = name.display.casefold()
        if key not in seen:
            seen.add(key)
            people.append(name)
    if not people:
        raise NamesError("the names file has no names; write one person per line, like: Anna Berg")
    return people


def read_names_file(path: Path) -> list[PersonName]:
    """``parse_names`` over a UTF-8 file (a byte-order mark from a spreadsheet export is fine)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NamesError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise NamesError(f"{path}: not UTF-8 text; save the names file as UTF-8") from None
    except OSError as exc:
        raise NamesError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        return parse_names(text.splitlines())
    except NamesError as exc:
        raise NamesError(f"{path}: {exc}") from None


def candidates(name: PersonName, domain: str, patterns: Sequence[Pattern]) -> list[str]:
    """The addresses ``patterns`` give for ``name`` at ``domain``, in order, without repeats."""
    addresses: list[str] = []
    for pattern in patterns:
        local = local_part(name, pattern)
        if local and len(local) <= 64:  # RFC 5321's limit on a local part
            address = f"{local}@{domain}"
            if address not in addresses:
                addresses.append(address)
    return addresses


def plan_bulk(
    domains: Sequence[str],
    names: Sequence[PersonName],
    per_domain: int,
    patterns: Sequence[Pattern],
    existing: set[str],
) -> BulkPlan:
    """Choose ``per_domain`` new addresses at each domain.

    Names are dealt in file order across the domains, going back to the top when the list runs
    out, so 100 names over 5 domains of 20 give every person one mailbox, while 20 names over
    the same domains give each person one mailbox per domain. For each name the patterns are
    tried in order until an address is free; addresses that exist already are stepped over and
    listed in ``skipped_existing``. A domain that runs out of free addresses gets a shortfall.
    """
    if not domains:
        raise PlanError("give at least one domain")
    if not 1 <= per_domain <= MAX_PER_DOMAIN:
        raise PlanError(f"the number of mailboxes per domain must be 1 to {MAX_PER_DOMAIN}, got {per_domain}")
    if not patterns:
        raise PlanError("give at least one address pattern")
    plan = BulkPlan()
    taken: set[str] = set()
    skipped: set[str] = set()
    cursor = 0
    for domain in domains:
        made = misses = 0
        while made < per_domain and misses < len(names):
            name = names[cursor % len(names)]
            cursor += 1
            chosen = None
            for address in candidates(name, domain, patterns):
                if address in existing:
                    if address not in skipped:
                        skipped.add(address)
                        plan.skipped_existing.append(address)
                elif address not in taken:
                    chosen = address
                    break
            if chosen is None:
                misses += 1
                continue
            taken.add(chosen)
            plan.planned.append(PlannedMailbox(chosen, name))
            made += 1
            misses = 0
        if made < per_domain:
            plan.shortfall[domain] = per_domain - made
    return plan


def all_candidates(domains: Sequence[str], names: Sequence[PersonName], patterns: Sequence[Pattern]) -> list[str]:
    """Every address a plan could use: what to look up in the database before planning."""
    return [address for domain in domains for name in names for address in candidates(name, domain, patterns)]


def normalize_domains(raw: Iterable[str]) -> list[str]:
    """Stored forms of the given domain names, in order, without repeats (``InvalidName`` for a bad one)."""
    domains: list[str] = []
    for item in raw:
        if item.strip():
            domain = normalize_domain(item)
            if domain not in domains:
                domains.append(domain)
    return domains


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password from the OS's CSPRNG with at least one lower-case letter, upper-case letter and digit.

    The mix is there because some sending platforms' forms reject passwords without it; letters
    and digits only, so nothing needs quoting in a CSV cell, a shell or a web form.
    """
    while True:
        password = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))
        if any(c.islower() for c in password) and any(c.isupper() for c in password) and any(c.isdigit() for c in password):
            return password


def hash_workers() -> int:
    """Threads for hashing: the CPU count, at most ``MAX_HASH_WORKERS`` (memory, not CPU, is the limit)."""
    return max(1, min(MAX_HASH_WORKERS, os.cpu_count() or 1))


def hash_passwords(passwords: Sequence[str], workers: int | None = None) -> list[str]:
    """argon2id hashes of ``passwords``, in order, made concurrently."""
    if len(passwords) <= 1:
        return [hash_password(password) for password in passwords]
    with ThreadPoolExecutor(max_workers=workers or hash_workers(), thread_name_prefix="argon2") as pool:
        return list(pool.map(hash_password, passwords))


def create_planned(session: Session, plan: BulkPlan, daily_cap: int | None = None) -> list[NewMailbox]:
    """Add the plan's mailboxes with fresh random passwords; the caller's commit makes them real.

    The clear-text passwords are returned so the caller can write them to an export before it
    commits; they are not kept anywhere else.
    """
    passwords = [generate_password() for _ in plan.planned]
    hashes = hash_passwords(passwords)
    created: list[NewMailbox] = []
    for item, password, password_hash in zip(plan.planned, passwords, hashes, strict=True):
        mailbox = create_mailbox_with_hash(session, item.address, password_hash, item.name.display, daily_cap)
        created.append(NewMailbox(mailbox.address, mailbox.display_name, password, mailbox.daily_cap))
    return created


def plan_for_session(
    session: Session,
    domains: Sequence[str],
    names: Sequence[PersonName],
    per_domain: int,
    patterns: Sequence[Pattern],
) -> BulkPlan:
    """``plan_bulk`` against the mailboxes in the database (one lookup for every candidate address)."""
    existing = existing_addresses(session, all_candidates(domains, names, patterns))
    return plan_bulk(domains, names, per_domain, patterns, existing)


def reset_passwords(mailboxes: Sequence[Mailbox]) -> list[NewMailbox]:
    """Give each mailbox a fresh random password (hashed concurrently); the caller's commit makes them real.

    The old passwords stop working at that commit, so a platform still logged in with one will
    fail until the new export is imported.
    """
    passwords = [generate_password() for _ in mailboxes]
    hashes = hash_passwords(passwords)
    reset: list[NewMailbox] = []
    for mailbox, password, password_hash in zip(mailboxes, passwords, hashes, strict=True):
        mailbox.password_hash = password_hash
        reset.append(NewMailbox(mailbox.address, mailbox.display_name, password, mailbox.daily_cap))
    return reset
