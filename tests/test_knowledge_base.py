"""The knowledge base is complete, consistent, and every entry recognises its own replies."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from coldrelay.errors import PROVIDER_BY_SLUG, KnowledgeBase, Reason, diagnose, is_hard_bounce, load_knowledge_base
from coldrelay.errors.entry import SECTION_TITLES, EntryError, parse_entry
from coldrelay.errors.knowledge_base import ENTRIES_DIR


def test_at_least_200_entries(kb: KnowledgeBase) -> None:
    assert len(kb) >= 200


def test_every_entry_is_sound(kb: KnowledgeBase) -> None:
    assert kb.problems() == {}


def test_slugs_are_unique_and_match_file_names(kb: KnowledgeBase) -> None:
    files = sorted(path.stem for path in ENTRIES_DIR.glob("*.md"))
    assert [entry.slug for entry in kb] == files


def test_every_section_present_in_order(kb: KnowledgeBase) -> None:
    for entry in kb:
        assert list(entry.sections) == list(SECTION_TITLES), entry.slug
        assert len(entry.faq) >= 3, entry.slug
        assert entry.fix_steps, entry.slug


def test_reasons_and_providers_are_known(kb: KnowledgeBase) -> None:
    for entry in kb:
        assert isinstance(entry.reason, Reason)
        assert entry.provider is None or entry.provider in PROVIDER_BY_SLUG, entry.slug


def test_slug_prefix_names_provider_or_origin(kb: KnowledgeBase) -> None:
    for entry in kb:
        prefix = entry.slug.split("-")[0]
        if entry.provider is None and entry.origin is None:
            assert prefix == "generic", entry.slug


def test_generic_entries_cover_every_generic_code(kb: KnowledgeBase) -> None:
    generic_basic = {e.basic_code for e in kb if e.is_generic and e.enhanced_code is None}
    for code in (421, 450, 451, 452, 500, 501, 502, 503, 504, 521, 530, 535, 550, 551, 552, 553, 554, 555, 556):
        assert code in generic_basic, code


def _has(kb: KnowledgeBase, provider: str | None, enhanced: str | None = None, text: str | None = None) -> bool:
    for entry in kb:
        if provider is not None and entry.provider != provider and entry.origin != provider:
            continue
        if enhanced is not None and entry.enhanced_code != enhanced:
            continue
        if text is not None and not any(re.search(text, example, re.IGNORECASE) for example in entry.examples):
            continue
        return True
    return False


@pytest.mark.parametrize(
    ("provider", "enhanced", "text"),
    [
        ("microsoft", "5.7.1", "unable to relay"),
        ("microsoft", "5.1.10", None),
        ("microsoft", "5.4.1", None),
        ("microsoft", None, r"5\.7\.6[0-4]\d|banned sending ip"),
        ("microsoft", "5.7.708", None),
        ("microsoft", "5.7.750", None),
        ("microsoft", None, r"4\.7\.[56]\d\d"),
        ("microsoft", None, "S3150"),
        ("microsoft", None, r"\bRP-00\d"),
        ("microsoft", None, r"\bSC-00\d"),
        ("microsoft", None, r"\bOU-00\d"),
        ("google", "5.7.26", None),
        ("google", "5.7.25", None),
        ("google", "4.7.28", None),
        ("google", "5.1.1", None),
        ("google", "5.2.2", None),
        ("yahoo", None, "TSS04"),
        ("yahoo", None, "TSS09"),
        ("apple", None, None),
        ("zoho", None, None),
        ("proton", None, None),
        ("gmx", None, None),
        ("comcast", None, None),
        ("cox", None, None),
        ("att", None, None),
        ("mimecast", None, None),
        ("proofpoint", None, None),
        ("barracuda", None, None),
        ("cisco", None, None),
        ("spamhaus", None, None),
        ("spamcop", None, None),
        ("barracuda-brbl", None, None),
        ("postfix", None, None),
        ("exim", None, None),
        ("sendmail", None, None),
    ],
)
def test_required_coverage(kb: KnowledgeBase, provider: str, enhanced: str | None, text: str | None) -> None:
    assert _has(kb, provider, enhanced, text)


def test_each_entry_is_chosen_for_its_own_examples(kb: KnowledgeBase) -> None:
    wrong = []
    for entry in kb:
        for example in entry.examples:
            got = diagnose(example, knowledge_base=kb)
            if got.entry is None or got.entry.slug != entry.slug:
                wrong.append((entry.slug, example[:60], got.entry.slug if got.entry else None))
    assert wrong == []


def test_no_provider_is_a_catch_all(kb: KnowledgeBase) -> None:
    """A provider's patterns must be about that provider's wording, not swallow other providers' replies."""
    stolen: Counter[str] = Counter()
    for entry in kb:
        if entry.provider is None:
            continue
        for pattern in entry.patterns:
            for other in kb:
                if other.slug != entry.slug and other.provider not in (None, entry.provider):
                    stolen[entry.slug] += sum(1 for example in other.examples if pattern.search(example))
    assert [slug for slug, count in stolen.items() if count > 3] == []


def test_broken_entries_are_refused_with_reasons(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bad-entry.md").write_text("---\nslug: Bad Slug\nreason: nonsense\n---\n## Summary\nx\n", encoding="utf-8")
    with pytest.raises(EntryError) as caught:
        load_knowledge_base(tmp_path)
    message = str(caught.value)
    assert "slug" in message and "unknown reason 'nonsense'" in message


def test_entry_without_front_matter_is_refused() -> None:
    with pytest.raises(EntryError, match="no YAML front matter"):
        parse_entry("## Summary\nNo front matter here.\n")


def test_hard_bounce_flags_follow_the_one_rule(kb: KnowledgeBase) -> None:
    """Articles, explain() and the bounce parser call the same addresses hard."""
    assert [e.slug for e in kb if e.hard_bounce != is_hard_bounce(e.reason, e.permanent)] == []
