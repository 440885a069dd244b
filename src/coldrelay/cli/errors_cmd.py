"""``coldrelay explain`` and ``coldrelay errors``: the knowledge base from a terminal."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from coldrelay.errors import (
    PROVIDER_BY_SLUG,
    REASON_INFO,
    WHO_ACTS_MEANING,
    Diagnosis,
    Entry,
    KnowledgeBase,
    default_knowledge_base,
    explain,
)
from coldrelay.errors.entry import SECTION_TITLES, EntryError

console = Console()
errors_app = typer.Typer(help="Browse the SMTP error knowledge base.", no_args_is_help=True)


def _knowledge_base() -> KnowledgeBase:
    try:
        return default_knowledge_base()
    except EntryError as exc:
        console.print(f"[red]The knowledge base did not load:[/red] {exc}")
        raise typer.Exit(1) from None


def _print_diagnosis(diagnosis: Diagnosis) -> None:
    entry = diagnosis.entry
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Reply", diagnosis.text)
    table.add_row("Codes", diagnosis.meaning)
    provider = PROVIDER_BY_SLUG.get(diagnosis.provider or "")
    table.add_row("Provider", f"{provider.name} ({provider.slug})" if provider else diagnosis.provider or "not recognised")
    table.add_row("Reason", f"{diagnosis.reason.value}: {REASON_INFO[diagnosis.reason].meaning}")
    table.add_row("Who must act", f"{diagnosis.who_acts.value}: {WHO_ACTS_MEANING[diagnosis.who_acts]}")
    table.add_row("Permanent", "yes, retrying will not help" if diagnosis.permanent else "no, a later retry may succeed")
    table.add_row("Hard bounce", "yes, remove the address from your list" if diagnosis.hard_bounce else "no")
    table.add_row("Confidence", f"{diagnosis.confidence:.0%} (matched by {diagnosis.matched_by})")
    console.print(Panel(table, title=entry.title if entry else "No article matched", expand=False))
    if entry is None:
        return
    console.print(f"[bold]{entry.summary}[/bold]")
    console.print("\n[bold]How to fix it[/bold]")
    for number, step in enumerate(entry.fix_steps, 1):
        console.print(f"[bold cyan]{number}. {step.title}.[/bold cyan]")
        console.print(Markdown(step.instructions))
    console.print(f"\nFull article: coldrelay errors show {entry.slug}  (web: {entry.url})")


def explain_command(
    text: Annotated[str, typer.Argument(help="The SMTP reply, e.g. '550 5.7.1 Unable to relay'; '-' reads stdin.")],
    remote_host: Annotated[str | None, typer.Option("--remote-host", help="The server that sent the reply.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diagnosis as JSON.")] = False,
) -> None:
    """Explain an SMTP reply: who sent it, why, and the exact fix steps."""
    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        console.print("[red]Give the reply text to explain, for example:[/red] coldrelay explain '550 5.7.1 Unable to relay'")
        raise typer.Exit(2)
    _knowledge_base()
    diagnosis = explain(text, remote_host=remote_host)
    if as_json:
        print(json.dumps(diagnosis.to_dict(), indent=2))
    else:
        _print_diagnosis(diagnosis)


def _entry_summary(entry: Entry) -> dict[str, object]:
    return {
        "slug": entry.slug,
        "title": entry.title,
        "basic_code": entry.basic_code,
        "enhanced_code": entry.enhanced_code,
        "provider": entry.provider,
        "origin": entry.origin,
        "reason": entry.reason.value,
        "permanent": entry.permanent,
        "hard_bounce": entry.hard_bounce,
        "who_acts": entry.who_acts.value,
        "url": entry.url,
    }


@errors_app.command("list")
def list_command(
    provider: Annotated[str | None, typer.Option(help="Only this provider's entries ('generic' for generic ones).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the knowledge-base entries."""
    kb = _knowledge_base()
    entries = list(kb)
    if provider:
        wanted = None if provider in ("generic", "none") else provider.lower()
        entries = [e for e in entries if e.provider == wanted]
        if not entries:
            known = ", ".join(["generic", *kb.providers()])
            console.print(f"[red]No entries for provider {provider!r}.[/red] Known: {known}")
            raise typer.Exit(1)
    if as_json:
        print(json.dumps([_entry_summary(e) for e in entries], indent=2))
        return
    table = Table(title=f"{len(entries)} SMTP error entries")
    for column in ("Codes", "Provider", "Reason", "Slug"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry.codes_label, entry.provider or entry.origin or "generic", entry.reason.value, entry.slug)
    console.print(table)


@errors_app.command("show")
def show_command(slug: Annotated[str, typer.Argument(help="The entry's slug, as listed by 'coldrelay errors list'.")]) -> None:
    """Print one entry's full article."""
    kb = _knowledge_base()
    entry = kb.get(slug)
    if entry is None:
        close = kb.search(slug.replace("-", " "))[:5]
        hint = f" Did you mean: {', '.join(e.slug for e in close)}?" if close else ""
        console.print(f"[red]No entry {slug!r}.[/red]{hint}")
        raise typer.Exit(1)
    console.print(
        Panel(f"[bold]{entry.title}[/bold]\n{entry.codes_label} · {entry.provider or 'generic'} · {entry.reason.value}")
    )
    body = "\n\n".join(f"## {title}\n\n{entry.sections[title]}" for title in SECTION_TITLES if title in entry.sections)
    refs = "\n".join(f"- [{r.title}]({r.url})" for r in entry.references)
    related = "\n".join(f"- {slug}" for slug in entry.related)
    console.print(Markdown(f"{body}\n\n## References\n\n{refs}\n\n## Related errors\n\n{related}"))
