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

import ahocorasick

Needle = frozenset[str]
"""Lowercase substrings of which any match of a pattern contains at least one."""


def _literal_runs(sequence: Sequence[tuple[Any, Any]]) -> list[str]:
    """Top-level runs of literal characters: each must occur in any match, as written."""
    runs: list[str] = []
    current: list[str] = []
    for op, arg in sequence:
        if str(op) == "LITERAL":
            current.append(chr(arg))
            continue
        if current:
            runs.append("".join(current).lower())
            current = []
    if current:
        runs.append("".join(current).lower())
    return runs


def _strength(needle: Needle) -> tuple[int, int]:
    """Longer shortest option first (fewer false candidates), then fewer options."""
    return (min(len(option) for option in needle), -len(needle))


def _needle(parsed: Sequence[tuple[Any, Any]]) -> Needle | None:
    """What any match of the parsed pattern must contain, or None when nothing is certain.

    A top-level alternation needs a needle from every branch. A sequence offers
    its literal runs and its required groups; the most selective one stands for
    the whole pattern.
    """
    items = list(parsed)
    if len(items) == 1 and str(items[0][0]) == "BRANCH":
        options: set[str] = set()
        for branch in items[0][1][1]:
            found = _needle(branch)
            if found is None:
                return None
            options |= found
        return frozenset(options)
    choices: list[Needle] = [frozenset({run}) for run in _literal_runs(items) if run.strip()]
    for op, arg in items:
        if str(op) == "SUBPATTERN":
            inner = _needle(arg[-1])
        elif str(op) == "BRANCH":
            inner = _needle([(op, arg)])
        else:
            continue
        if inner:
            choices.append(inner)
    return max(choices, key=_strength) if choices else None


def needle_for(pattern: re.Pattern[str]) -> Needle | None:
    """What a compiled pattern's matches must contain (None: always run it)."""
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:
        return None
    found = _needle(list(parsed))
    return found if found and _strength(found)[0] >= 2 else None


class PatternIndex:
    """Maps reply text to the (owner, pattern) pairs worth running.

    Every needle goes into one Aho-Corasick automaton, so finding all the needles
    a reply contains is a single pass in C however many patterns there are. A
    needle found where the pattern does not match only adds a candidate; the
    regex itself still decides, so the index can never hide a match.
    """

    def __init__(self, owned_patterns: Iterable[tuple[int, re.Pattern[str]]]) -> None:
        self._by_needle: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        self._always: list[tuple[int, re.Pattern[str]]] = []
        self._counts = {"indexed": 0, "always": 0}
        for owner, pattern in owned_patterns:
            needle = needle_for(pattern)
            if needle is None:
                self._always.append((owner, pattern))
                self._counts["always"] += 1
                continue
            self._counts["indexed"] += 1
            for text in needle:
                self._by_needle.setdefault(text, []).append((owner, pattern))
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        for text in self._by_needle:
            self._automaton.add_word(text, text)
        if self._by_needle:
            self._automaton.make_automaton()

    @property
    def stats(self) -> dict[str, int]:
        """How many patterns are keyed on a substring, and how many run for every text."""
        return dict(self._counts)

    def candidates(self, text: str) -> list[tuple[int, re.Pattern[str]]]:
        """Patterns that might match ``text``, each (owner, pattern) pair listed once."""
        picked: list[tuple[int, re.Pattern[str]]] = []
        if self._by_needle:
            found = {needle for _end, needle in self._automaton.iter(text.lower())}
            seen: set[tuple[int, int]] = set()
            for needle in found:
                for owned in self._by_needle[needle]:
                    # Identical pattern strings compile to one shared object, so a
                    # pattern is only "seen" together with the entry that owns it.
                    key = (owned[0], id(owned[1]))
                    if key not in seen:
                        seen.add(key)
                        picked.append(owned)
        picked.extend(self._always)
        return picked
