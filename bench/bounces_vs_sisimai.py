"""Throughput of coldrelay's bounce parser against Sisimai on the same files.

Set-up (once): ``apt-get install libsisimai-perl`` (Debian's Sisimai, the
best-known open bounce parser). Then:

    .venv/bin/python bench/bounces_vs_sisimai.py [--rounds 5] [DIR]

Both parsers run in their own process, read each file from disk inside the
timed loop, get one warm-up pass first, and are timed over the same rounds.
coldrelay's caches (replies, headers, addresses) are emptied before every round
so repeated files do not flatter it. Prints messages/s for both and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from coldrelay.bounces import parse
from coldrelay.bounces.core import clear_caches

DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "bounces" / "maildir" / "bsd"

PERL = r"""
use strict; use warnings; use Sisimai; use Time::HiRes qw(time);
my ($rounds, @files) = @ARGV;
Sisimai->make($_) for @files;                      # warm-up
my $start = time; my $count = 0;
for (1 .. $rounds) { for my $file (@files) { my $records = Sisimai->make($file); $count++; } }
printf "%d %.6f\n", $count, time - $start;
"""


def time_coldrelay(files: list[Path], rounds: int) -> float:
    for file in files:  # warm-up
        parse(file.read_bytes())
    elapsed = 0.0
    for _ in range(rounds):
        clear_caches()
        start = time.perf_counter()
        for file in files:
            parse(file.read_bytes())
        elapsed += time.perf_counter() - start
    return len(files) * rounds / elapsed


def time_sisimai(files: list[Path], rounds: int) -> float | None:
    if shutil.which("perl") is None:
        return None
    done = subprocess.run(["perl", "-e", PERL, str(rounds), *map(str, files)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"Sisimai did not run (install libsisimai-perl): {done.stderr.strip()[:200]}", file=sys.stderr)
        return None
    count, seconds = done.stdout.split()
    return int(count) / float(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    files = sorted(p for p in args.directory.rglob("*") if p.is_file())
    if not files:
        print(f"no files under {args.directory}", file=sys.stderr)
        return 2
    ours = time_coldrelay(files, args.rounds)
    theirs = time_sisimai(files, args.rounds)
    print(f"{len(files)} files x {args.rounds} rounds")
    print(f"coldrelay: {ours:10,.0f} messages/s")
    if theirs is None:
        print("sisimai:   not installed (apt-get install libsisimai-perl)")
        return 1
    print(f"sisimai:   {theirs:10,.0f} messages/s")
    print(f"ratio:     {ours / theirs:10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
