"""The JSON API (``/api/v1``), described by the OpenAPI document at ``/api/openapi.json``."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from coldrelay.bounces import parse as parse_bounce
from coldrelay.errors import Entry, KnowledgeBase, diagnose
from coldrelay.errors.entry import SECTION_TITLES

api_router = APIRouter(prefix="/api/v1", tags=["SMTP errors"])

MAX_REPLY_CHARS = 20_000
MAX_BOUNCE_BYTES = 10_000_000
_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:[ \t]", re.MULTILINE)


def looks_like_email(text: str) -> bool:
    """Pasted text that starts with mail headers (or carries DSN fields) is a whole message, not a reply."""
    head = text.lstrip()[:4000]
    if re.search(r"^(?:Final-Recipient|Diagnostic-Code|Original-Recipient|Feedback-Type):", head, re.IGNORECASE | re.MULTILINE):
        return True
    return bool(re.match(r"(?:From \S|[A-Za-z][A-Za-z0-9-]*:[ \t])", head)) and len(_HEADER_LINE.findall(head)) >= 3


class ExplainRequest(BaseModel):
    """An SMTP reply to diagnose."""

    text: str = Field(min_length=1, max_length=MAX_REPLY_CHARS, examples=["550 5.7.1 Unable to relay"])
    remote_host: str | None = Field(default=None, max_length=255, examples=["example-com.mail.protection.outlook.com"])


def _kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = request.app.state.knowledge_base
    return kb


def entry_to_dict(entry: Entry, *, full: bool = False) -> dict[str, Any]:
    """An entry as JSON; ``full`` adds the article's sections and references."""
    data: dict[str, Any] = {
        "slug": entry.slug,
        "title": entry.title,
        "url": entry.url,
        "basic_code": entry.basic_code,
        "enhanced_code": entry.enhanced_code,
        "provider": entry.provider,
        "origin": entry.origin,
        "reason": entry.reason.value,
        "permanent": entry.permanent,
        "hard_bounce": entry.hard_bounce,
        "who_acts": entry.who_acts.value,
        "summary": entry.summary,
    }
    if full:
        data.update(
            examples=list(entry.examples),
            sections={title: entry.sections[title] for title in SECTION_TITLES if title in entry.sections},
            fix_steps=[{"title": s.title, "instructions": s.instructions} for s in entry.fix_steps],
            faq=[{"question": q.question, "answer": q.answer} for q in entry.faq],
            references=[{"title": r.title, "url": r.url} for r in entry.references],
            related=list(entry.related),
            reviewed=entry.reviewed.isoformat(),
        )
    return data


@api_router.post("/explain", summary="Diagnose an SMTP reply")
def explain_reply(body: ExplainRequest, request: Request) -> dict[str, Any]:
    """Who sent the reply, the reason, whether it is permanent, who must act, and the matching article."""
    return diagnose(body.text, remote_host=body.remote_host, knowledge_base=_kb(request)).to_dict()


@api_router.get("/errors", summary="List knowledge-base entries")
def list_errors(request: Request, provider: str | None = None, q: str | None = None) -> list[dict[str, Any]]:
    """All entries, optionally one provider's ('generic' for generic ones) or those matching a search."""
    entries = _kb(request).search(q) if q else list(_kb(request))
    if provider:
        wanted = None if provider == "generic" else provider
        entries = [e for e in entries if e.provider == wanted]
    return [entry_to_dict(e) for e in entries]


@api_router.get("/errors/{slug}", summary="One knowledge-base entry")
def get_error(slug: str, request: Request) -> dict[str, Any]:
    """The whole article as structured data."""
    entry = _kb(request).get(slug)
    if entry is None:
        raise HTTPException(status_code=404, detail=f"No entry {slug!r}")
    return entry_to_dict(entry, full=True)


@api_router.post(
    "/bounces",
    summary="Parse a bounce email",
    tags=["Bounces"],
    openapi_extra={"requestBody": {"required": True, "content": {"message/rfc822": {"schema": {"type": "string"}}}}},
)
async def parse_bounce_message(request: Request) -> dict[str, Any]:
    """Send the raw message (any content type) as the request body; get one record per reported recipient."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BOUNCE_BYTES:
            raise HTTPException(status_code=413, detail=f"The message is larger than {MAX_BOUNCE_BYTES:,} bytes")
    if not body.strip():
        raise HTTPException(status_code=422, detail="The request body must be the raw bounce message")
    records = parse_bounce(body)
    return {"records": [record.to_dict() for record in records], "count": len(records)}
