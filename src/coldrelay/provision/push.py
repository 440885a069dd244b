"""Writing a record plan into a DNS provider's zone through dns-lexicon (any of its ~90 providers).

Each record is compared with what the provider lists before anything is written, so a push can be
repeated safely: equal records are left alone, a TXT record of the same kind (the SPF record, the
DMARC record, the key at a DKIM selector...) is *updated* rather than joined by a second one (two
SPF or DMARC records invalidate both), and stale addresses of the names coldrelay owns
(``box.<domain>``, ``mta-sts.<domain>``) are removed. Other records at the apex, such as a second
MX host, are left where they are: they may belong to someone else.

Credentials come the way lexicon reads them: ``--option KEY=VALUE`` first, then environment
variables ``LEXICON_<PROVIDER>_<OPTION>`` (``LEXICON_CLOUDFLARE_AUTH_TOKEN``).

Lexicon's ``Client`` guesses the zone with tldextract, which downloads the Public Suffix List on
first use (or asks the system resolver with ``resolve_zone_name``). We already know the zone (the
hosted domain, or ``zone=`` when it lives inside a parent zone), so the provider is built directly
from lexicon's provider registry with a ``ConfigResolver``: the same objects ``Client`` builds,
without a network fetch nobody asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from typing import Any, Protocol

from coldrelay.db import txt_strings
from coldrelay.provision.records import DnsRecord, RecordPlan
from coldrelay.provision.render import zone_rdata

__all__ = ["PushAction", "PushError", "PushOutcome", "PushReport", "available_providers", "push_plan"]

LOGGER = logging.getLogger(__name__)

_OWNED_PREFIXES = ("box.", "mta-sts.")
"""Names under the domain that exist only for coldrelay: records there that the plan lacks are stale."""
_ZONE_FILE_TXT = frozenset({"localzone"})
"""Providers that hand TXT content to a zone-file parser and so need it quoted (and split at 255 bytes)."""
_TXT_KINDS = ("v=spf1", "v=DKIM1", "v=DMARC1", "v=STSv1", "v=TLSRPTv1")


class PushError(Exception):
    """The push cannot start or the provider refused a change; the message is meant for the person."""


class PushOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class PushAction:
    """What happened (or, in a dry run, would happen) to one record."""

    record: DnsRecord
    outcome: PushOutcome
    detail: str = ""


@dataclass(slots=True)
class PushReport:
    provider: str
    zone: str
    dry_run: bool
    actions: list[PushAction] = field(default_factory=list)

    @property
    def changes(self) -> list[PushAction]:
        return [a for a in self.actions if a.outcome is not PushOutcome.UNCHANGED]


class _Operations(Protocol):
    """The four calls every lexicon provider implements (``lexicon.interfaces.Provider``)."""

    def create_record(self, rtype: str, name: str, content: str) -> bool: ...
    def list_records(
        self, rtype: str | None = None, name: str | None = None, content: str | None = None
    ) -> list[dict[str, Any]]: ...
    def update_record(
        self, identifier: str | None = None, rtype: str | None = None, name: str | None = None, content: str | None = None
    ) -> bool: ...
    def delete_record(
        self, identifier: str | None = None, rtype: str | None = None, name: str | None = None, content: str | None = None
    ) -> bool: ...


def available_providers() -> dict[str, bool]:
    """Lexicon's provider names, each with whether its extra dependencies are installed."""
    from lexicon._private.discovery import find_providers  # the registry Client itself uses (lexicon 3.x)

    return dict(find_providers())


def _provider(provider: str, zone: str, ttl: int, options: Mapping[str, str]) -> _Operations:
    from lexicon._private.discovery import load_provider_module
    from lexicon.config import ConfigResolver

    providers = available_providers()
    if provider not in providers:
        raise PushError(f"lexicon has no DNS provider named {provider!r}; known: {', '.join(sorted(providers))}")
    if not providers[provider]:
        raise PushError(f"the {provider} provider needs extra packages: pip install 'dns-lexicon[{provider}]'")
    config = ConfigResolver().with_dict(  # type: ignore[no-untyped-call]
        {"provider_name": provider, "domain": zone, "ttl": ttl, provider: dict(options)}
    )
    config.with_env()  # after the options: LEXICON_<PROVIDER>_<OPTION> fills in what --option did not give
    instance = load_provider_module(provider).Provider(config)
    instance.authenticate()
    ops: _Operations = instance
    return ops


def _content(record: DnsRecord, provider: str) -> str:
    """The content lexicon passes on: zone-file syntax for MX/CNAME targets; TXT raw, or quoted where the provider parses it."""
    if record.rtype == "TXT":
        return zone_rdata(record) if provider in _ZONE_FILE_TXT else record.value
    return zone_rdata(record)


def _txt_text(listed: str) -> str:
    """A listed TXT value as one string: providers differ in whether they keep the quotes of its strings."""
    text = listed.strip()
    if text.startswith('"') and text.endswith('"'):
        parts = text[1:-1].split('" "')
        return "".join(parts).replace('\\"', '"')
    return text


def _same(record: DnsRecord, listed: str, zone: str) -> bool:
    """Whether a listed record's content is the planned one, across the forms providers list content in."""
    if record.rtype == "TXT":
        text = _txt_text(listed)
        # localzone lists a multi-string TXT with its quotes removed, leaving a space between the strings.
        return text in (record.value, " ".join(txt_strings(record.value)))
    want = zone_rdata(record).rstrip(".").lower()
    have = listed.strip().rstrip(".").lower()
    if have == want:
        return True
    # Zone-file based providers list targets relative to the zone ("10 box" for "10 box.example.com").
    return not listed.strip().endswith(".") and f"{have}.{zone}" == want


def _kind(text: str) -> str:
    value = _txt_text(text)
    return next((k for k in _TXT_KINDS if value.startswith(k)), "")


def _sync_name(ops: _Operations, provider: str, zone: str, wanted: Sequence[DnsRecord], dry_run: bool) -> list[PushAction]:
    """Make the records of one (name, type) match the plan's; returns what was (or would be) done."""
    name, rtype = wanted[0].name, wanted[0].rtype
    existing = ops.list_records(rtype, name)
    actions: list[PushAction] = []
    matched: set[str] = set()
    for record in wanted:
        hit = next((e for e in existing if _same(record, str(e.get("content", "")), zone)), None)
        if hit is not None:
            matched.add(str(hit.get("id")))
            actions.append(PushAction(record, PushOutcome.UNCHANGED))
            continue
        same_kind = [
            e for e in existing if rtype in ("TXT", "CNAME") and str(e.get("id")) not in matched and _kind_matches(record, e)
        ]
        if same_kind:
            old = same_kind[0]
            matched.add(str(old.get("id")))
            if not dry_run:
                ops.update_record(old.get("id"), rtype, name, _content(record, provider))
            actions.append(PushAction(record, PushOutcome.UPDATED, f"was {_txt_text(str(old.get('content', '')))[:60]}"))
            continue
        if not dry_run:
            ops.create_record(rtype, name, _content(record, provider))
        actions.append(PushAction(record, PushOutcome.CREATED))
    stale = [e for e in existing if str(e.get("id")) not in matched and _removable(wanted[0], e)]
    for entry in stale:
        if not dry_run:
            ops.delete_record(entry.get("id"), rtype, name, None)
        actions.append(
            PushAction(wanted[0], PushOutcome.DELETED, f"removed {rtype} {_txt_text(str(entry.get('content', '')))[:60]}")
        )
    return actions


def _kind_matches(record: DnsRecord, entry: Mapping[str, Any]) -> bool:
    """An existing record this planned one replaces: the CNAME itself, or a TXT of the same kind at that name."""
    if record.rtype == "CNAME":
        return True
    return _kind(str(entry.get("content", ""))) == _kind(record.value) != ""


def _removable(record: DnsRecord, entry: Mapping[str, Any]) -> bool:
    """Left-over records the plan no longer has: extra addresses of our own names, and duplicate TXT of one kind."""
    if record.rtype in ("A", "AAAA"):
        return record.name.startswith(_OWNED_PREFIXES)
    if record.rtype == "TXT":
        return _kind_matches(record, entry)
    return False


def push_plan(
    plan: RecordPlan,
    provider: str,
    *,
    dry_run: bool,
    provider_options: Mapping[str, str],
    zone: str | None = None,
    on_action: Callable[[PushAction], None] | None = None,
) -> PushReport:
    """Create or update every record of the plan at ``provider``; PTRs are not part of any zone and are skipped.

    ``provider_options`` are lexicon's provider options without the ``auth_``-style prefix rules
    changed (``auth_token``, ``filename``...). ``zone`` is the provider's zone when the hosted domain
    is a subdomain of it. A dry run lists the zone (read-only calls) and reports what would change.
    Raises ``PushError`` with the provider's own message when it refuses.
    """
    zone_name = (zone or plan.domain).strip().rstrip(".").lower()
    if plan.domain != zone_name and not plan.domain.endswith("." + zone_name):
        raise PushError(f"{plan.domain} is not inside the zone {zone_name}")
    report = PushReport(provider, zone_name, dry_run)
    options = {key.strip().lower().replace("-", "_"): value for key, value in provider_options.items()}
    ordered = sorted(plan.records, key=lambda r: r.ttl)
    try:
        for ttl, same_ttl in groupby(ordered, key=lambda r: r.ttl):
            ops = _provider(provider, zone_name, ttl, options)  # lexicon sets the TTL per provider instance
            records = sorted(same_ttl, key=lambda r: (r.name, r.rtype))
            for _key, group in groupby(records, key=lambda r: (r.name, r.rtype)):
                for action in _sync_name(ops, provider, zone_name, list(group), dry_run):
                    report.actions.append(action)
                    if on_action is not None:
                        on_action(action)
    except PushError:
        raise
    except Exception as exc:  # lexicon providers raise anything (HTTP errors, their own, KeyError on a bad zone)
        LOGGER.debug("push to %s failed", provider, exc_info=True)
        raise PushError(f"{provider}: {exc.__class__.__name__}: {exc}") from exc
    return report
