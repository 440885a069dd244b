"""Templates and Markdown rendering shared by the pages."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from coldrelay.errors import PROVIDER_BY_SLUG, REASON_INFO, WHO_ACTS_MEANING, Reason, WhoActs

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


_SITE_PATH_CODE = re.compile(r"<code>(/(?:smtp-errors|diagnose|tools)[^<\s]*)</code>")


def markdown(text: str) -> Markup:
    """Render an entry's Markdown; raw HTML in entries is escaped, never passed through.

    Articles name our own pages and tools as code (`/tools/mx-lookup?domain=...`); those become links.
    """
    return Markup(_SITE_PATH_CODE.sub(r'<a href="\1"><code>\1</code></a>', _markdown.render(text)))


_BARE_SITE_PATH = re.compile(r"(?<![\w\"'/=>])(/(?:smtp-errors|tools)/[A-Za-z0-9?=&;._%/-]*[A-Za-z0-9])")


def fix_text(text: str) -> Markup:
    """A finding's fix: Markdown, with our own paths ("see /smtp-errors/...") made into links."""
    return Markup(_BARE_SITE_PATH.sub(r'<a href="\1">\1</a>', str(markdown(text))))


def provider_name(slug: str | None) -> str:
    """Human name of a provider slug ('generic' when none)."""
    if slug is None:
        return "Any server (generic)"
    provider = PROVIDER_BY_SLUG.get(slug)
    return provider.name if provider else slug


def reason_meaning(reason: Reason | str) -> str:
    return REASON_INFO[Reason(reason)].meaning


def who_acts_meaning(who: WhoActs | str) -> str:
    return WHO_ACTS_MEANING[WhoActs(who)]


templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["markdown"] = markdown
templates.env.filters["fix_text"] = fix_text
templates.env.globals.update(provider_name=provider_name, reason_meaning=reason_meaning, who_acts_meaning=who_acts_meaning)
