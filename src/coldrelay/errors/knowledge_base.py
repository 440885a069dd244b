"""All entries, loaded once, with the indexes ``explain`` and the site need."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from coldrelay.errors.entry import Entry, EntryError, content_problems, load_entry
from coldrelay.errors.prefilter import PatternIndex
from coldrelay.errors.providers import PROVIDER_BY_SLUG
from coldrelay.errors.reasons import Reason

ENTRIES_DIR = Path(__file__).parent / "entries"


class KnowledgeBase:
    """The SMTP error reference: entries by slug, by code, by provider, by pattern."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries: tuple[Entry, ...] = tuple(sorted(entries, key=lambda e: e.slug))
        self.by_slug: dict[str, Entry] = {}
        self.position: dict[str, int] = {entry.slug: index for index, entry in enumerate(self.entries)}
        duplicates: list[str] = []
        for entry in self.entries:
            if entry.slug in self.by_slug:
                duplicates.append(entry.slug)
            self.by_slug[entry.slug] = entry
        if duplicates:
            raise EntryError("knowledge base", [f"duplicate slugs: {', '.join(sorted(set(duplicates)))}"])
        self.pattern_index = PatternIndex(
            (position, pattern) for position, entry in enumerate(self.entries) for pattern in entry.patterns
        )
        by_codes: dict[tuple[int | None, str | None], list[Entry]] = defaultdict(list)
        for entry in self.entries:
            by_codes[(entry.basic_code, entry.enhanced_code)].append(entry)
        self._by_codes = dict(by_codes)
        self._generic_by_codes = {
            codes: next(e for e in found if e.is_generic) for codes, found in by_codes.items() if any(e.is_generic for e in found)
        }
        self._generic_by_reason: dict[Reason, list[Entry]] = defaultdict(list)
        for entry in self.entries:
            if entry.is_generic:
                self._generic_by_reason[entry.reason].append(entry)
        self._generic_by_enhanced: dict[str, Entry] = {}
        for entry in self.entries:
            if entry.is_generic and entry.enhanced_code:
                self._generic_by_enhanced.setdefault(entry.enhanced_code, entry)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def get(self, slug: str) -> Entry | None:
        """The entry with this slug, if any."""
        return self.by_slug.get(slug)

    def with_codes(self, basic_code: int | None, enhanced_code: str | None) -> list[Entry]:
        """Entries written for exactly this pair of codes."""
        return self._by_codes.get((basic_code, enhanced_code), [])

    def generic_for(self, basic_code: int | None, enhanced_code: str | None) -> Entry | None:
        """The most specific generic entry for a reply's codes.

        Tries the exact pair, then the enhanced code alone (as seen in DSNs), then
        the basic code alone, so ``550 5.1.1`` finds ``generic-550-5-1-1`` and
        ``421 4.4.2`` falls back to ``generic-421``.
        """
        for key in ((basic_code, enhanced_code), (None, enhanced_code), (basic_code, None)):
            if key == (None, None):
                continue
            found = self._generic_by_codes.get(key)
            if found is not None:
                return found
        return self._generic_by_enhanced.get(enhanced_code) if enhanced_code else None

    def generic_for_reason(self, reason: Reason, basic_code: int | None, enhanced_code: str | None = None) -> Entry | None:
        """A generic article about this reason, preferring one for the same codes, then the same class."""
        found = self._generic_by_reason.get(reason, [])
        if not found:
            return None
        reply_class = basic_code // 100 if basic_code else int(enhanced_code[0]) if enhanced_code else None

        def closeness(entry: Entry) -> tuple[bool, bool, bool, bool]:
            entry_class = (
                entry.basic_code // 100 if entry.basic_code else int(entry.enhanced_code[0]) if entry.enhanced_code else None
            )
            return (
                enhanced_code is not None and entry.enhanced_code == enhanced_code,
                entry.basic_code is not None and entry.basic_code == basic_code,
                entry_class == reply_class,
                entry.enhanced_code is None,  # a code-level article reads better than another code's
            )

        return max(found, key=closeness)

    def for_provider(self, provider: str | None) -> list[Entry]:
        """Entries of one provider (None: the generic and program-default ones)."""
        return [e for e in self.entries if e.provider == provider]

    def providers(self) -> list[str]:
        """Provider slugs that have entries, in the order of the provider table."""
        present = {e.provider for e in self.entries if e.provider}
        return [slug for slug in PROVIDER_BY_SLUG if slug in present] + sorted(present - set(PROVIDER_BY_SLUG))

    def search(self, query: str) -> list[Entry]:
        """Entries whose codes, title, summary or examples contain every word of the query."""
        terms = query.lower().split()
        if not terms:
            return list(self.entries)
        hits = []
        for entry in self.entries:
            haystack = " ".join(
                (
                    entry.slug,
                    entry.title,
                    entry.codes_label,
                    entry.summary,
                    entry.provider or "",
                    entry.origin or "",
                    *entry.examples,
                )
            ).lower()
            if all(term in haystack for term in terms):
                hits.append(entry)
        return hits

    def problems(self) -> dict[str, list[str]]:
        """Every content and cross-reference problem, by slug (empty when sound)."""
        found: dict[str, list[str]] = {}
        for entry in self.entries:
            issues = content_problems(entry)
            issues += [f"related slug {slug!r} does not exist" for slug in entry.related if slug not in self.by_slug]
            if entry.provider is not None and entry.provider not in PROVIDER_BY_SLUG:
                issues.append(f"unknown provider {entry.provider!r}")
            if issues:
                found[entry.slug] = issues
        return found


def load_knowledge_base(directory: Path = ENTRIES_DIR) -> KnowledgeBase:
    """Read every entry file in ``directory``; any broken file stops the load with its reasons."""
    entries: list[Entry] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.md")):
        try:
            entries.append(load_entry(path))
        except EntryError as exc:
            errors.append(str(exc))
    if errors:
        raise EntryError(directory, errors)
    return KnowledgeBase(entries)


@functools.cache
def default_knowledge_base() -> KnowledgeBase:
    """The knowledge base shipped with coldrelay, loaded on first use."""
    return load_knowledge_base()
