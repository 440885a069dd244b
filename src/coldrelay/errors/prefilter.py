"""Skip the regular expressions that cannot match a reply.

Running hundreds of patterns against every reply costs hundreds of microseconds.
Nearly every pattern, though, contains a literal word that must appear in any
text it matches ("relay" in ``unable\\s+to\\s+relay``). We index patterns by one
such word; a reply then only runs the patterns whose word it contains. Patterns
without a safe word (all character classes, say) are always run, so the filter
never changes a result, it only saves time.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # the regex parser, read-only
from collections.abc import Iterable, Sequence
from typing import Any

_WORD = re.compile(r"[^\W_]+")


def _is_space_or_boundary(item: tuple[Any, Any] | None) -> bool:
    """True when a parsed item guarantees a word edge next to a literal."""
    if item is None:
        return False
    op, arg = item
    name = str(op)
    if name == "AT":
        return str(arg) in {"AT_BOUNDARY", "AT_BEGINNING", "AT_END", "AT_BEGINNING_STRING", "AT_END_STRING"}
    if name in {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}:
        low, _high, inner = arg
        return bool(low >= 1 and len(inner) == 1 and _is_space_or_boundary(inner[0]))
    if name == "IN":
        return all(str(o) == "CATEGORY" and str(a) in {"CATEGORY_SPACE", "CATEGORY_NOT_WORD"} for o, a in arg)
    return False


def _literal_runs(sequence: Sequence[tuple[Any, Any]]) -> list[tuple[str, bool, bool]]:
    """Top-level runs of literal characters, with whether a word edge bounds each side."""
    runs: list[tuple[str, bool, bool]] = []
    index = 0
    while index < len(sequence):
        if str(sequence[index][0]) != "LITERAL":
            index += 1
            continue
        start = index
        while index < len(sequence) and str(sequence[index][0]) == "LITERAL":
            index += 1
        run = "".join(chr(code) for _op, code in sequence[start:index]).lower()
        left_edge = start > 0 and _is_space_or_boundary(sequence[start - 1])
        right_edge = index < len(sequence) and _is_space_or_boundary(sequence[index])
        runs.append((run, left_edge, right_edge))
    return runs


def _safe_words(runs: list[tuple[str, bool, bool]]) -> list[str]:
    """Whole words that any match must contain: bounded by a word edge on both sides."""
    found: list[str] = []
    for run, left_edge, right_edge in runs:
        for word in _WORD.finditer(run):
            bounded_left = word.start() > 0 or left_edge
            bounded_right = word.end() < len(run) or right_edge
            if bounded_left and bounded_right and len(word.group()) >= 2:
                found.append(word.group())
    return found


Needle = tuple[str, frozenset[str]]
"""("word", words) when one of the whole words must occur; ("text", substrings) for substrings."""


def _needle(parsed: Sequence[tuple[Any, Any]]) -> Needle | None:
    """What any match must contain, or None when nothing certain can be said.

    A top-level alternation needs a needle from every branch; otherwise the
    longest safe word of the sequence (or failing that its longest literal run)
    stands for the whole pattern.
    """
    items = list(parsed)
    if len(items) == 1 and str(items[0][0]) == "BRANCH":
        branch_needles = [_needle(branch) for branch in items[0][1][1]]
        if any(n is None for n in branch_needles):
            return None
        kinds = {n[0] for n in branch_needles if n is not None}
        values = frozenset().union(*(n[1] for n in branch_needles if n is not None))
        if kinds == {"word"}:
            return ("word", values)
        # Mixed kinds: a word is also a substring, so test everything as text.
        return ("text", values)
    if len(items) == 1 and str(items[0][0]) == "SUBPATTERN":
        return _needle(items[0][1][-1])
    runs = _literal_runs(items)
    candidates = _safe_words(runs)
    if candidates:
        return ("word", frozenset({max(candidates, key=len)}))
    longest = max((run for run, _l, _r in runs), key=len, default="")
    if len(longest.strip()) >= 3:
        return ("text", frozenset({longest}))
    return None


def needle_for(pattern: re.Pattern[str]) -> Needle | None:
    """What a compiled pattern's matches must contain (None: always run it)."""
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:
        return None
    return _needle(list(parsed))


class PatternIndex:
    """Maps reply text to the (owner, pattern) pairs worth running."""

    def __init__(self, owned_patterns: Iterable[tuple[int, re.Pattern[str]]]) -> None:
        self._by_word: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        self._by_text: list[tuple[frozenset[str], int, re.Pattern[str]]] = []
        self._always: list[tuple[int, re.Pattern[str]]] = []
        for owner, pattern in owned_patterns:
            needle = needle_for(pattern)
            if needle is None:
                self._always.append((owner, pattern))
            elif needle[0] == "word":
                for word in needle[1]:
                    self._by_word.setdefault(word, []).append((owner, pattern))
            else:
                self._by_text.append((needle[1], owner, pattern))

    @property
    def stats(self) -> dict[str, int]:
        """How patterns are filtered: by word (cheapest), by substring, or always run."""
        return {
            "by_word": sum(len(v) for v in self._by_word.values()),
            "by_substring": len(self._by_text),
            "always": len(self._always),
        }

    def candidates(self, text: str) -> list[tuple[int, re.Pattern[str]]]:
        """Patterns that might match ``text``, each listed once."""
        lowered = text.lower()
        # Identical pattern strings compile to one shared object, so a pattern is
        # only "seen" together with the entry that owns it.
        seen: set[tuple[int, int]] = set()
        picked: list[tuple[int, re.Pattern[str]]] = []
        for word in set(_WORD.findall(lowered)):
            for owned in self._by_word.get(word, ()):
                key = (owned[0], id(owned[1]))
                if key not in seen:
                    seen.add(key)
                    picked.append(owned)
        for substrings, owner, pattern in self._by_text:
            for substring in substrings:
                if substring in lowered:
                    picked.append((owner, pattern))
                    break
        picked.extend(self._always)
        return picked
