"""Accuracy on real replies from the providers' published references and real bounces.

The acceptance floor: the reason agrees for at least 90% of the set, and the
provider is named for at least 90% of the replies from the large providers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coldrelay.errors import KnowledgeBase, diagnose

DATA = Path(__file__).parent / "data" / "real_replies.jsonl"
LARGE_PROVIDERS = {"google", "microsoft", "yahoo", "apple"}


@pytest.fixture(scope="module")
def cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_set_is_large_enough(cases: list[dict[str, Any]]) -> None:
    assert len(cases) >= 300
    assert len({case["reply"] for case in cases}) == len(cases)


def test_reason_accuracy(cases: list[dict[str, Any]], kb: KnowledgeBase) -> None:
    misses = []
    for case in cases:
        got = diagnose(case["reply"], remote_host=case.get("remote_host"), knowledge_base=kb)
        if got.reason.value != case["reason"]:
            misses.append((case["reason"], got.reason.value, case["reply"][:90]))
    accuracy = 1 - len(misses) / len(cases)
    print(f"reason accuracy {accuracy:.1%} over {len(cases)} replies")
    assert accuracy >= 0.90, misses


def test_provider_accuracy_for_large_providers(cases: list[dict[str, Any]], kb: KnowledgeBase) -> None:
    large = [case for case in cases if case["provider"] in LARGE_PROVIDERS]
    assert len(large) >= 150
    misses = []
    for case in large:
        got = diagnose(case["reply"], remote_host=case.get("remote_host"), knowledge_base=kb)
        if got.provider != case["provider"]:
            misses.append((case["provider"], got.provider, case["reply"][:90]))
    accuracy = 1 - len(misses) / len(large)
    print(f"provider accuracy {accuracy:.1%} over {len(large)} replies from large providers")
    assert accuracy >= 0.90, misses
