"""HTML pages: home, the error index, one article per entry, and the diagnoser."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from coldrelay.bounces import parse as parse_bounce
from coldrelay.errors import Entry, KnowledgeBase, diagnose
from coldrelay.errors.entry import SECTION_TITLES
from coldrelay.web.api import MAX_BOUNCE_BYTES, MAX_REPLY_CHARS, looks_like_email
from coldrelay.web.rendering import templates

pages_router = APIRouter(include_in_schema=False)

CLASS_TITLES = {
    2: "2xx: success and information",
    4: "4xx: temporary failures (the sender retries)",
    5: "5xx: permanent failures (the message bounces)",
}

EXAMPLE_REPLIES = (
    "550 5.7.1 Unable to relay",
    "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address. - gsmtp",
    "550 5.1.1 The email account that you tried to reach does not exist. - gsmtp",
    "421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints",
)


def _kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = request.app.state.knowledge_base
    return kb


def _entry_class(entry: Entry) -> int:
    if entry.basic_code:
        return entry.basic_code // 100
    return int(entry.enhanced_code[0]) if entry.enhanced_code else 5


@pages_router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    kb = _kb(request)
    return templates.TemplateResponse(
        request, "home.html", {"count": len(kb), "providers": kb.providers(), "examples": EXAMPLE_REPLIES}
    )


@pages_router.get("/smtp-errors", response_class=HTMLResponse)
def errors_index(request: Request, q: str = "", provider: str = "") -> Response:
    kb = _kb(request)
    entries = kb.search(q) if q.strip() else list(kb)
    if provider:
        wanted = None if provider == "generic" else provider
        entries = [e for e in entries if e.provider == wanted]
    by_class: dict[int, list[Entry]] = defaultdict(list)
    by_provider: dict[str, list[Entry]] = defaultdict(list)
    for entry in sorted(entries, key=lambda e: (e.basic_code or 0, e.enhanced_code or "", e.slug)):
        by_class[_entry_class(entry)].append(entry)
        by_provider[entry.provider or "generic"].append(entry)
    provider_order = [p for p in [*kb.providers(), "generic"] if p in by_provider]
    return templates.TemplateResponse(
        request,
        "errors_index.html",
        {
            "q": q,
            "provider": provider,
            "total": len(kb),
            "shown": len(entries),
            "by_class": [(CLASS_TITLES[c], by_class[c]) for c in sorted(by_class)],
            "by_provider": [(p, by_provider[p]) for p in provider_order],
            "all_providers": kb.providers(),
        },
    )


@pages_router.get("/smtp-errors/{slug}", response_class=HTMLResponse)
def article(slug: str, request: Request) -> Response:
    kb = _kb(request)
    entry = kb.get(slug)
    if entry is None:
        raise HTTPException(status_code=404, detail=f"There is no article called '{slug}'.")
    related = [kb.by_slug[s] for s in entry.related if s in kb.by_slug]
    sections = [(title, entry.sections[title]) for title in SECTION_TITLES if title in entry.sections]
    return templates.TemplateResponse(request, "article.html", {"entry": entry, "sections": sections, "related": related})


@pages_router.get("/diagnose", response_class=HTMLResponse)
def diagnose_form(request: Request, text: str = "", remote_host: str = "") -> Response:
    result = None
    if text.strip():
        result = diagnose(text[:MAX_REPLY_CHARS], remote_host=remote_host or None, knowledge_base=_kb(request))
    return templates.TemplateResponse(
        request,
        "diagnose.html",
        {"text": text, "remote_host": remote_host, "result": result, "records": None, "examples": EXAMPLE_REPLIES, "error": None},
    )


@pages_router.post("/diagnose", response_class=HTMLResponse)
async def diagnose_submit(
    request: Request,
    text: Annotated[str, Form()] = "",
    remote_host: Annotated[str, Form()] = "",
    bounce_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """A pasted reply gets a diagnosis; a pasted or uploaded bounce email gets one per recipient."""
    error = None
    result = None
    records = None
    raw = await bounce_file.read(MAX_BOUNCE_BYTES + 1) if bounce_file is not None and bounce_file.filename else b""
    if len(raw) > MAX_BOUNCE_BYTES:
        error = f"That file is larger than {MAX_BOUNCE_BYTES // 1_000_000} MB; upload one bounce message."
    elif raw or looks_like_email(text):
        records = parse_bounce(raw or text.encode("utf-8", errors="replace"))
        if not records:
            error = "No bounce found in that message: it carries no delivery report, failed recipient or feedback report."
    elif not text.strip():
        error = "Paste an SMTP reply or a whole bounce email first, for example: 550 5.7.1 Unable to relay"
    elif len(text) > MAX_REPLY_CHARS:
        error = f"That is {len(text):,} characters; paste the reply line (at most {MAX_REPLY_CHARS:,} characters)."
    else:
        result = diagnose(text, remote_host=remote_host.strip() or None, knowledge_base=_kb(request))
    kb = _kb(request)
    articles = {r.article: kb.by_slug[r.article] for r in records or [] if r.article and r.article in kb.by_slug}
    return templates.TemplateResponse(
        request,
        "diagnose.html",
        {
            "text": text if not raw else "",
            "remote_host": remote_host,
            "result": result,
            "records": records,
            "articles": articles,
            "examples": EXAMPLE_REPLIES,
            "error": error,
        },
        status_code=422 if error else 200,
    )
