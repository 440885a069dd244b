"""How many SMTP replies a second ``explain`` diagnoses, in one process.

The mix is every real reply in tests/data/real_replies.jsonl plus every example
reply in the knowledge base. Two figures: uncached (each reply diagnosed from
scratch, the floor the product promises) and cached (``explain``'s LRU cache, as
a delivery log that repeats replies sees it).

    .venv/bin/python bench/explain.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from coldrelay.errors import default_knowledge_base, diagnose, explain

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "real_replies.jsonl"


def load_mix() -> list[tuple[str, str | None]]:
    kb = default_knowledge_base()
    mix = [(example, None) for entry in kb for example in entry.examples]
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.strip():
            case = json.loads(line)
            mix.append((case["reply"], case.get("remote_host")))
    return mix


def rate(label: str, mix: list[tuple[str, str | None]], seconds: float, cached: bool) -> float:
    kb = default_knowledge_base()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for text, host in mix:
            if cached:
                explain(text, remote_host=host)
            else:
                diagnose(text, remote_host=host, knowledge_base=kb)
        done += len(mix)
    elapsed = time.perf_counter() - start
    per_second = done / elapsed
    print(f"{label:>9}: {per_second:>10,.0f} replies/s  ({done:,} replies in {elapsed:.2f} s)")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each measurement runs")
    args = parser.parse_args()
    mix = load_mix()
    kb = default_knowledge_base()
    print(f"{len(mix)} distinct replies, {len(kb)} entries, prefilter {kb.pattern_index.stats}")
    for text, host in mix[:200]:  # warm up regex compilation caches
        diagnose(text, remote_host=host, knowledge_base=kb)
    rate("uncached", mix, args.seconds, cached=False)
    rate("cached", mix, args.seconds, cached=True)


if __name__ == "__main__":
    main()
