"""Validate knowledge-base entry files: ``python -m coldrelay.errors.check_entries [FILES]``.

Writers run it on the files they touch; the test suite runs the same checks on
the whole knowledge base. With ``--explain`` it also asks the diagnoser which
entry each example picks, which catches patterns that steal other entries'
replies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coldrelay.errors.entry import Entry, EntryError, content_problems, load_entry

ENTRIES_DIR = Path(__file__).parent / "entries"

PLANNED_GENERIC_SLUGS = frozenset(
    "generic-" + code
    for code in [
        "421",
        "450",
        "451",
        "452",
        "500",
        "501",
        "502",
        "503",
        "504",
        "521",
        "530",
        "535",
        "550",
        "551",
        "552",
        "553",
        "554",
        "555",
        "556",
        "550-5-1-1",
        "550-5-1-2",
        "550-5-2-1",
        "552-5-2-2",
        "552-5-3-4",
        "550-5-7-1",
        "530-5-7-0",
        "535-5-7-8",
        "451-4-7-1",
        "421-4-7-0",
        "4-4-7",
        "550-5-7-23",
        "550-5-7-25",
        "550-5-7-26",
        "550-5-7-27",
        "556-5-1-10",
        "454-4-7-0",
        "4-4-1",
        "5-4-4",
    ]
)
"""Generic slugs other entries may link to before those files exist; checked in full by the tests."""


def main(argv: list[str] | None = None) -> int:
    """Print every problem found and return 1 when there is any."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="entry files (default: all)")
    parser.add_argument("--explain", action="store_true", help="also check that explain() picks each entry for its examples")
    args = parser.parse_args(argv)
    all_paths = sorted(ENTRIES_DIR.glob("*.md"))
    paths = args.files or all_paths
    known_slugs = {path.stem for path in all_paths} | (PLANNED_GENERIC_SLUGS if args.files else set())
    failures = 0
    entries: list[Entry] = []
    for path in paths:
        problems: list[str] = []
        try:
            entry = load_entry(path)
        except EntryError as exc:
            problems = exc.problems
        else:
            entries.append(entry)
            problems = content_problems(entry)
            problems += [f"related slug {slug!r} does not exist" for slug in entry.related if slug not in known_slugs]
        if problems:
            failures += 1
            print(f"{path.name}:")
            for problem in problems:
                print(f"  - {problem}")
    if args.explain:
        from coldrelay.errors.explain import explain

        for entry in entries:
            for example in entry.examples:
                got = explain(example)
                if got.entry is None or got.entry.slug != entry.slug:
                    failures += 1
                    picked = got.entry.slug if got.entry else None
                    print(f"{entry.slug}: example {example[:70]!r} picks {picked}")
    print(f"{len(paths)} files checked, {failures} with problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
