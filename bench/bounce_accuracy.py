"""Agreement of ``coldrelay.bounces`` with the bounce corpus's expected results.

    .venv/bin/python bench/bounce_accuracy.py [--only PREFIX] [--show N]

Prints the share of corpus rows where the recipient, the reason and hard/soft
agree, then the disagreements (file, recipient, expected vs got). The corpus
lives in ../shared/corpus/bounces beside the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from coldrelay.bounces import BounceRecord, iter_messages, parse

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "bounces"


@dataclass
class Comparison:
    file: str
    expected: dict[str, object]
    got: BounceRecord | None


def expected_rows(corpus: Path = CORPUS) -> dict[str, list[list[dict[str, object]]]]:
    """file -> messages -> recipient rows, in the order the corpus lists them."""
    by_file: dict[str, list[list[dict[str, object]]]] = {}
    for line in (corpus / "expected.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        messages = by_file.setdefault(row["file"], [])
        if not messages or row["recipient_index"] == 1:
            messages.append([])
        messages[-1].append(row)
    return by_file


def compare(corpus: Path = CORPUS, only: str = "") -> list[Comparison]:
    """Pair every expected row with the record our parser gives for it (or None)."""
    pairs: list[Comparison] = []
    for file, messages in expected_rows(corpus).items():
        if only and not Path(file).name.startswith(only):
            continue
        parsed = [parse(data) for _source, data in iter_messages(corpus / file)]
        for index, rows in enumerate(messages):
            records = parsed[index] if index < len(parsed) else []
            for position, row in enumerate(rows):
                pairs.append(Comparison(file, row, records[position] if position < len(records) else None))
    return pairs


def scores(pairs: list[Comparison]) -> dict[str, float]:
    """Share of rows whose recipient, reason and hard/soft agree."""
    total = len(pairs) or 1
    recipient = sum(1 for p in pairs if p.got and p.got.recipient == str(p.expected["recipient_from_v5_run"]).lower())
    reason = sum(1 for p in pairs if p.got and p.got.reason.value == p.expected["reason"])
    hard = sum(1 for p in pairs if p.got and int(p.got.hard_bounce) == p.expected["hardbounce"])
    return {"rows": len(pairs), "recipient": recipient / total, "reason": reason / total, "hardbounce": hard / total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="only files whose name starts with this (e.g. lhost-postfix)")
    parser.add_argument("--show", type=int, default=40, help="how many disagreements to list")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    pairs = compare(only=args.only)
    result = scores(pairs)
    print(
        f"{result['rows']} rows: recipient {result['recipient']:.1%}, reason {result['reason']:.1%}, "
        f"hard/soft {result['hardbounce']:.1%}"
    )
    wrong = [p for p in pairs if p.got is None or p.got.reason.value != p.expected["reason"]
             or p.got.recipient != str(p.expected["recipient_from_v5_run"]).lower()]  # fmt: skip
    confusion = Counter((str(p.expected["reason"]), p.got.reason.value if p.got else "-") for p in wrong)
    print("most common disagreements (expected -> got):", ", ".join(f"{a}->{b} x{n}" for (a, b), n in confusion.most_common(8)))
    for p in wrong[: args.show]:
        got = f"{p.got.recipient} {p.got.reason.value} [{p.got.mta}] {p.got.diagnostic[:90]!r}" if p.got else "no record"
        print(f"{Path(p.file).name}: expected {p.expected['recipient_from_v5_run']} {p.expected['reason']}; got {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
