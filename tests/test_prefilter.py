"""The pattern prefilter only saves time: it must never hide a pattern that matches."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from coldrelay.errors import KnowledgeBase
from coldrelay.errors.prefilter import PatternIndex, needle_for

DATA = Path(__file__).parent / "data" / "real_replies.jsonl"


def _texts(kb: KnowledgeBase) -> list[str]:
    texts = [example for entry in kb for example in entry.examples]
    texts += [json.loads(line)["reply"] for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def test_candidates_include_every_matching_pattern(kb: KnowledgeBase) -> None:
    for text in _texts(kb):
        candidates = {(owner, id(pattern)) for owner, pattern in kb.pattern_index.candidates(text)}
        for position, entry in enumerate(kb.entries):
            for pattern in entry.patterns:
                if pattern.search(text):
                    assert (position, id(pattern)) in candidates, (entry.slug, pattern.pattern, text[:60])


def test_most_patterns_are_indexed(kb: KnowledgeBase) -> None:
    stats = kb.pattern_index.stats
    assert stats["always"] <= 0.02 * sum(stats.values()), stats


def test_needles() -> None:
    assert needle_for(re.compile(r"unable\s+to relay\b", re.I)) == frozenset({"to relay"})
    assert needle_for(re.compile(r"\bTSS04\b", re.I)) == frozenset({"tss04"})
    assert needle_for(re.compile(r"User Unknown", re.I)) == frozenset({"user unknown"})
    assert needle_for(re.compile(r"(?:mailbox|account) (?:is )?disabled", re.I)) == frozenset({"disabled"})
    assert needle_for(re.compile(r"(?:over quota|quota exceeded)", re.I)) == frozenset({"over quota", "quota exceeded"})
    assert needle_for(re.compile(r"[a-z]+\d", re.I)) is None


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(["relay", "unable", "to", "user", "unknown", "tss04", "over", "quota", "x"]), max_size=8),
    glue=st.sampled_from([" ", "-", "_", ".", "", "  "]),
)
def test_random_texts_agree(words: list[str], glue: str) -> None:
    patterns = [re.compile(p, re.I) for p in (r"unable\s+to relay\b", r"user (?:unknown|not found)", r"\bTSS04\b", r"over quota")]
    index = PatternIndex(enumerate(patterns))
    text = glue.join(words)
    candidates = {(owner, id(p)) for owner, p in index.candidates(text)}
    for owner, pattern in enumerate(patterns):
        if pattern.search(text):
            assert (owner, id(pattern)) in candidates


def test_two_entries_sharing_one_pattern_are_both_candidates() -> None:
    shared = re.compile(r"over quota", re.I)
    index = PatternIndex([(0, shared), (1, re.compile(r"over quota", re.I))])
    assert sorted(owner for owner, _p in index.candidates("452 4.2.2 over quota")) == [0, 1]
