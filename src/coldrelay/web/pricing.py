"""``/pricing`` (a form that works without JavaScript) and ``/api/v1/pricing`` (the same quote as JSON).

The prices come from ``app.state.pricing`` when the app was given the operator's settings, else
the defaults; both routes parse their parameters themselves, so a typo in the form gives a
sentence on the page (422), not FastAPI's generic validation list.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from coldrelay.config import PricingSettings
from coldrelay.pricing import (
    GOOGLE_WORKSPACE_PLAN,
    MICROSOFT_365_PLAN,
    SEAT_PRICES_CHECKED,
    SENDING_DAYS_PER_MONTH,
    PricingError,
    Quote,
    cents,
    parse_count,
    quote,
)
from coldrelay.web.rendering import templates

_NUMBER = "A whole number; empty means not given."


def _settings(request: Request) -> PricingSettings:
    settings = getattr(request.app.state, "pricing", None)
    return settings if isinstance(settings, PricingSettings) else PricingSettings()


def _quote(settings: PricingSettings, emails_per_day: str, mailboxes: str, per_mailbox: str, per_domain: str) -> Quote:
    return quote(
        emails_per_day=parse_count("Emails per day", emails_per_day),
        mailboxes=parse_count("Mailboxes", mailboxes),
        emails_per_mailbox=parse_count("Emails per mailbox", per_mailbox),
        mailboxes_per_domain=parse_count("Mailboxes per domain", per_domain),
        settings=settings,
    )


def pricing_router() -> APIRouter:
    """The page and the API route; mount with ``app.include_router(pricing_router())``."""
    router = APIRouter()

    @router.get("/pricing", response_class=HTMLResponse, include_in_schema=False)
    async def pricing_page(
        request: Request, emails_per_day: str = "", mailboxes: str = "", per_mailbox: str = "", per_domain: str = ""
    ) -> Response:
        settings = _settings(request)
        result = None
        error = None
        if any(value.strip() for value in (emails_per_day, mailboxes, per_mailbox, per_domain)):
            try:
                result = _quote(settings, emails_per_day, mailboxes, per_mailbox, per_domain)
            except PricingError as exc:
                error = str(exc)
        context = {
            "form": {
                "emails_per_day": emails_per_day,
                "mailboxes": mailboxes,
                "per_mailbox": per_mailbox,
                "per_domain": per_domain,
            },
            "quote": result,
            "error": error,
            "settings": settings,
            "tiers": sorted(settings.tiers, key=lambda tier: tier.min_mailboxes),
            "checked": SEAT_PRICES_CHECKED,
            "google_plan": GOOGLE_WORKSPACE_PLAN,
            "microsoft_plan": MICROSOFT_365_PLAN,
            "sending_days": f"{float(SENDING_DAYS_PER_MONTH):.1f}",
            "cents": cents,
        }
        return templates.TemplateResponse(request, "pricing.html", context, status_code=422 if error else 200)

    @router.get("/api/v1/pricing", tags=["Pricing"], summary="Price a sending volume")
    async def pricing_api(
        request: Request,
        emails_per_day: str = Query("", description="Cold emails per day. " + _NUMBER),
        mailboxes: str = Query("", description="Or the number of mailboxes. " + _NUMBER),
        per_mailbox: str = Query("", description="Emails per mailbox per day. " + _NUMBER),
        per_domain: str = Query("", description="Mailboxes per domain. " + _NUMBER),
    ) -> dict[str, Any]:
        """Mailboxes, domains, monthly price, cost per 1,000 emails, and the Google Workspace and Microsoft 365 comparison."""
        try:
            return _quote(_settings(request), emails_per_day, mailboxes, per_mailbox, per_domain).to_dict()
        except PricingError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None

    return router
