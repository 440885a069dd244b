"""``coldrelay bounce parse``: bounce emails, mboxes and Maildirs into records."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from coldrelay.bounces import BounceRecord, iter_messages, parse

bounce_app = typer.Typer(help="Parse bounce emails (DSNs, MTA notices, feedback reports, auto-replies).", no_args_is_help=True)
err = Console(stderr=True)

COLUMNS = [f.name for f in fields(BounceRecord)]


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _sources(paths: list[str]) -> Iterator[tuple[str, bytes]]:
    for raw in paths:
        if raw == "-":
            yield "<stdin>", sys.stdin.buffer.read()
            continue
        yield from iter_messages(Path(raw))


def _parse_one(item: tuple[str, bytes]) -> tuple[str, list[BounceRecord]]:
    return item[0], parse(item[1])


def _count(paths: list[str]) -> int | None:
    """How many files lie under the paths, for the progress bar (mboxes count as one)."""
    total = 0
    for raw in paths:
        path = Path(raw)
        if raw == "-":
            total += 1
        elif path.is_dir():
            total += sum(1 for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            return None
    return total


def _records(paths: list[str], workers: int, show_progress: bool) -> tuple[list[BounceRecord], int, int]:
    records: list[BounceRecord] = []
    messages = 0
    empty = 0
    total = _count(paths)
    progress = Progress(
        TextColumn("[bold]parsing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True
    )
    with progress:
        task = progress.add_task("parse", total=total) if show_progress else None
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results: Iterator[tuple[str, list[BounceRecord]]] = pool.map(_parse_one, _sources(paths), chunksize=16)
                for _source, found in results:
                    messages += 1
                    empty += not found
                    records.extend(found)
                    if task is not None:
                        progress.advance(task)
        else:
            for item in _sources(paths):
                _source, found = _parse_one(item)
                messages += 1
                empty += not found
                records.extend(found)
                if task is not None:
                    progress.advance(task)
    return records, messages, empty


def _print_summary(records: list[BounceRecord], messages: int, empty: int) -> None:
    err.print(f"[bold]{messages}[/bold] messages, [bold]{len(records)}[/bold] records, {empty} messages without a bounce")
    if not records:
        return
    grid = Table.grid(padding=(0, 4))
    tables = []
    for title, counter in (
        ("reason", Counter(r.reason.value for r in records)),
        ("provider", Counter(r.provider or "unknown" for r in records)),
        ("mta", Counter(r.mta for r in records)),
    ):
        table = Table(title=f"by {title}", show_edge=False)
        table.add_column(title)
        table.add_column("count", justify="right")
        for name, count in counter.most_common(12):
            table.add_row(name, str(count))
        tables.append(table)
    grid.add_row(*tables)
    err.print(grid)


def _write(records: list[BounceRecord], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, ensure_ascii=False))
    elif output is OutputFormat.jsonl:
        for record in records:
            print(json.dumps(record.to_dict(), ensure_ascii=False))
    elif output is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow(record.to_dict())
    else:
        table = Table(show_lines=False)
        for column in ("recipient", "action", "status", "reason", "hard", "provider", "mta"):
            table.add_column(column, no_wrap=True)
        table.add_column("diagnostic", no_wrap=True, overflow="ellipsis", max_width=70)
        for r in records:
            table.add_row(
                r.recipient, r.action, r.status, r.reason.value, "yes" if r.hard_bounce else "no", r.provider or "", r.mta,
                r.diagnostic[:120],
            )  # fmt: skip
        Console().print(table)


@bounce_app.command("parse")
def parse_command(
    paths: Annotated[
        list[str], typer.Argument(help="Files (.eml or mbox), Maildirs or directories; '-' reads one message from stdin.")
    ],
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes for large mailboxes.")] = 1,
    summary: Annotated[bool, typer.Option(help="Print counts by reason, provider and MTA to stderr.")] = True,
) -> None:
    """Parse bounces into one record per reported recipient."""
    missing = [p for p in paths if p != "-" and not Path(p).exists()]
    if missing:
        err.print(f"[red]No such file or directory:[/red] {', '.join(missing)}")
        raise typer.Exit(2)
    records, messages, empty = _records(paths, workers, show_progress=sys.stderr.isatty())
    _write(records, output)
    if summary:
        _print_summary(records, messages, empty)
