"""One knowledge-base entry, read from its Markdown file.

The same file feeds ``explain`` (front matter: codes, patterns, reason) and the
article page (body sections), so both always say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from coldrelay.errors.reasons import Reason, WhoActs

SECTION_TITLES: tuple[str, ...] = (
    "Summary",
    "What it means",
    "Who you will see it from",
    "Why it happens",
    "How to fix it",
    "In cold email",
    "FAQ",
)
"""Body sections every entry carries, in this order."""

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ENHANCED_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_FRONT_MATTER_RE = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.DOTALL)
_SECTION_RE = re.compile(r"^## +(.+?)\s*$", re.MULTILINE)
_STEP_RE = re.compile(r"^\d+\.\s+\*\*(.+?)\*\*\s*(.*?)(?=^\d+\.\s+\*\*|\Z)", re.MULTILINE | re.DOTALL)
_FAQ_RE = re.compile(r"^\*\*(.+?\?)\*\*\s*(.*?)(?=^\*\*.+?\?\*\*|\Z)", re.MULTILINE | re.DOTALL)


class EntryError(ValueError):
    """An entry file breaks the knowledge-base format; the message says where and how."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Reference:
    """A link to the provider's own documentation or the standard behind a code."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class FixStep:
    """One numbered fix step: a short title and the exact instructions (Markdown)."""

    title: str
    instructions: str


@dataclass(frozen=True, slots=True)
class Question:
    """One FAQ item."""

    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One error variant: how to recognise it and what to do about it."""

    slug: str
    title: str
    basic_code: int | None
    enhanced_code: str | None
    provider: str | None
    origin: str | None
    reason: Reason
    permanent: bool
    hard_bounce: bool
    who_acts: WhoActs
    match: tuple[str, ...]
    examples: tuple[str, ...]
    related: tuple[str, ...]
    references: tuple[Reference, ...]
    reviewed: date
    sections: dict[str, str]
    fix_steps: tuple[FixStep, ...]
    faq: tuple[Question, ...]
    patterns: tuple[re.Pattern[str], ...] = field(repr=False)

    @property
    def url(self) -> str:
        """Where the article is published on the reference site."""
        return f"/smtp-errors/{self.slug}"

    @property
    def summary(self) -> str:
        """The one-line summary, as plain text."""
        return " ".join(self.sections.get("Summary", "").split())

    @property
    def is_generic(self) -> bool:
        """Generic entries describe a code, not one provider's or program's wording."""
        return self.provider is None and self.origin is None

    @property
    def short_title(self) -> str:
        """The title without the leading codes, for lists that show the codes beside it."""
        title = self.title
        for code in (str(self.basic_code or ""), self.enhanced_code or ""):
            if code and title.startswith(code):
                title = title[len(code) :].lstrip(" -:")
        return title or self.title

    @property
    def codes_label(self) -> str:
        """``550 5.7.1`` style label for lists."""
        return " ".join(part for part in (str(self.basic_code or ""), self.enhanced_code or "") if part)


def _as_str_tuple(value: Any, key: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"'{key}' must be a list of strings")
        return ()
    return tuple(value)


def _split_sections(body: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    headings = list(_SECTION_RE.finditer(body))
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(body)
        sections[heading.group(1).strip()] = body[heading.end() : end].strip()
    return sections


def parse_entry(text: str, path: Path | str = "<entry>") -> Entry:
    """Read one entry file's text, collecting every format problem before failing."""
    problems: list[str] = []
    found = _FRONT_MATTER_RE.match(text.replace("\r\n", "\n"))
    if not found:
        raise EntryError(path, ["no YAML front matter between '---' lines"])
    try:
        meta = yaml.load(found.group(1), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise EntryError(path, [f"front matter is not valid YAML: {exc}"]) from None
    if not isinstance(meta, dict):
        raise EntryError(path, ["front matter must be a mapping"])
    body = found.group(2)

    slug = meta.get("slug")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        problems.append("'slug' must be lowercase letters, digits and dashes")
        slug = str(slug)
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append("'title' is required")
        title = str(title)
    basic_code = meta.get("basic_code")
    if basic_code is not None and (not isinstance(basic_code, int) or not 200 <= basic_code <= 599):
        problems.append("'basic_code' must be a three-digit reply code or null")
        basic_code = None
    enhanced_code = meta.get("enhanced_code")
    if enhanced_code is not None and (not isinstance(enhanced_code, str) or not ENHANCED_RE.match(enhanced_code)):
        problems.append("'enhanced_code' must look like '5.7.1' or be null")
        enhanced_code = None
    if basic_code is None and enhanced_code is None:
        problems.append("an entry needs a basic or an enhanced code")
    provider = meta.get("provider")
    if provider is not None and not isinstance(provider, str):
        problems.append("'provider' must be a slug or null")
        provider = None
    origin = meta.get("origin")
    if origin is not None and not isinstance(origin, str):
        problems.append("'origin' must be a string or null")
        origin = None
    try:
        reason = Reason(str(meta.get("reason")))
    except ValueError:
        problems.append(f"unknown reason {meta.get('reason')!r}")
        reason = Reason.UNDEFINED
    try:
        who_acts = WhoActs(str(meta.get("who_acts")))
    except ValueError:
        problems.append(f"'who_acts' must be one of {[w.value for w in WhoActs]}")
        who_acts = WhoActs.SENDER
    permanent = meta.get("permanent")
    hard_bounce = meta.get("hard_bounce")
    for key, flag in (("permanent", permanent), ("hard_bounce", hard_bounce)):
        if not isinstance(flag, bool):
            problems.append(f"'{key}' must be true or false")

    match = _as_str_tuple(meta.get("match"), "match", problems)
    patterns: list[re.Pattern[str]] = []
    for source in match:
        try:
            patterns.append(re.compile(source, re.IGNORECASE))
        except re.error as exc:
            problems.append(f"pattern {source!r} does not compile: {exc}")
    examples = _as_str_tuple(meta.get("examples"), "examples", problems)
    related = _as_str_tuple(meta.get("related"), "related", problems)

    references: list[Reference] = []
    raw_refs = meta.get("references") or []
    if not isinstance(raw_refs, list):
        problems.append("'references' must be a list")
        raw_refs = []
    for ref in raw_refs:
        if isinstance(ref, dict) and isinstance(ref.get("title"), str) and isinstance(ref.get("url"), str):
            references.append(Reference(ref["title"], ref["url"]))
        else:
            problems.append("each reference needs a 'title' and a 'url'")
    reviewed = meta.get("reviewed")
    if not isinstance(reviewed, date):
        problems.append("'reviewed' must be a date (YYYY-MM-DD)")
        reviewed = date(1970, 1, 1)

    sections = _split_sections(body)
    fix_steps = tuple(
        FixStep(m.group(1).strip().rstrip("."), m.group(2).strip()) for m in _STEP_RE.finditer(sections.get("How to fix it", ""))
    )
    faq = tuple(Question(m.group(1).strip(), m.group(2).strip()) for m in _FAQ_RE.finditer(sections.get("FAQ", "")))

    if problems:
        raise EntryError(path, problems)
    return Entry(
        slug=slug,
        title=title,
        basic_code=basic_code,
        enhanced_code=enhanced_code,
        provider=provider,
        origin=origin,
        reason=reason,
        permanent=bool(permanent),
        hard_bounce=bool(hard_bounce),
        who_acts=who_acts,
        match=match,
        examples=examples,
        related=related,
        references=tuple(references),
        reviewed=reviewed,
        sections=sections,
        fix_steps=fix_steps,
        faq=faq,
        patterns=tuple(patterns),
    )


def content_problems(entry: Entry) -> list[str]:
    """Checks on an entry that parsed: sections, steps, FAQ, patterns against examples."""
    problems: list[str] = []
    present = [title for title in entry.sections if title in SECTION_TITLES]
    missing = [title for title in SECTION_TITLES if title not in entry.sections]
    if missing:
        problems.append(f"missing sections: {', '.join(missing)}")
    elif present != list(SECTION_TITLES):
        problems.append(f"sections out of order: {', '.join(present)}")
    extra = [title for title in entry.sections if title not in SECTION_TITLES]
    if extra:
        problems.append(f"unexpected sections: {', '.join(extra)}")
    for title in SECTION_TITLES:
        if title in entry.sections and not entry.sections[title].strip():
            problems.append(f"section '{title}' is empty")
    if len(entry.fix_steps) < 1:
        problems.append("'How to fix it' needs numbered steps starting '1. **Title.**'")
    if len(entry.faq) < 3:
        problems.append(f"FAQ needs at least three '**Question?**' items, found {len(entry.faq)}")
    if not entry.examples:
        problems.append("at least one example reply is required")
    if not entry.references:
        problems.append("at least one reference is required")
    if not entry.related:
        problems.append("at least one related slug is required")
    if not entry.patterns and not entry.is_generic:
        problems.append("only generic entries may have no match patterns")
    for example in entry.examples:
        if entry.patterns and not any(p.search(example) for p in entry.patterns):
            problems.append(f"no pattern matches example {example[:70]!r}")
    return problems


def load_entry(path: Path) -> Entry:
    """Read and parse one entry file; the slug must equal the file name."""
    entry = parse_entry(path.read_text(encoding="utf-8"), path)
    if entry.slug != path.stem:
        raise EntryError(path, [f"slug {entry.slug!r} differs from the file name {path.stem!r}"])
    return entry
