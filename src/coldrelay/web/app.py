"""The FastAPI app: reference pages, the diagnoser and the JSON API.

Pages are rendered on the server from the same entries ``explain`` uses; there
is no JavaScript build step, and every page works without JavaScript.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from coldrelay.config import PricingSettings
from coldrelay.errors import KnowledgeBase, default_knowledge_base
from coldrelay.web.api import api_router
from coldrelay.web.mta_sts import mta_sts_router
from coldrelay.web.pages import pages_router
from coldrelay.web.pricing import pricing_router
from coldrelay.web.rendering import templates
from coldrelay.web.tools import ToolSettings, tools_api, tools_router

STATIC_DIR = Path(__file__).parent / "static"


def create_app(
    knowledge_base: KnowledgeBase | None = None,
    tools: ToolSettings | None = None,
    *,
    pricing: PricingSettings | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> FastAPI:
    """Build the app; the knowledge base is loaded now so a broken entry fails at start, not on a request.

    ``pricing`` is the operator's price table (default: the shipped one); ``sessions`` (the mail
    host's database) turns on what needs it: the MTA-STS policy of each hosted domain. The public
    reference site runs without a database.
    """
    app = FastAPI(
        title="coldrelay",
        summary="SMTP error reference and diagnosis for cold-email senders.",
        version="0.1.0",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.knowledge_base = knowledge_base or default_knowledge_base()
    app.state.tools = tools or ToolSettings()
    app.state.pricing = pricing or PricingSettings()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages_router)
    app.include_router(api_router)
    app.include_router(tools_router)
    app.include_router(tools_api)
    app.include_router(pricing_router())
    if sessions is not None:
        app.include_router(mta_sts_router(sessions))

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> HTMLResponse | JSONResponse:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return templates.TemplateResponse(
            request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status_code=exc.status_code
        )

    return app
