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


def main(argv: list[str] | None = None) -> int:
    """Print every problem found and return 1 when there is any."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="entry files (default: all)")
    parser.add_argument("--explain", action="store_true", help="also check that explain() picks each entry for its examples")
    args = parser.parse_args(argv)
    all_paths = sorted(ENTRIES_DIR.glob("*.md"))
    paths = args.files or all_paths
    known_slugs = {path.stem for path in all_paths}
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
