"""Assembling the dashboard: its routes, the ops pages, and the answers to auth failures.

``create_app()`` alone has no dashboard (the public reference site runs without a database);
``install_admin`` adds it to an app together with the state it needs.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from coldrelay.web.admin.accounts_pages import accounts_router
from coldrelay.web.admin.api import admin_api_router
from coldrelay.web.admin.auth import LOGIN_PATH, ApiAuthRequired, CsrfRejected, LoginRequired, is_api_request
from coldrelay.web.admin.home_page import home_router
from coldrelay.web.admin.login_pages import login_router
from coldrelay.web.admin.ops import ops_router
from coldrelay.web.admin.state import AdminState
from coldrelay.web.admin.tokens_pages import tokens_router
from coldrelay.web.rendering import templates


def admin_router() -> APIRouter:
    """Every admin route: login, home, domains, mailboxes, tokens, the JSON API and the ops pages."""
    router = APIRouter(include_in_schema=False)
    for part in (login_router, home_router, accounts_router, tokens_router, admin_api_router):
        router.include_router(part)
    router.include_router(ops_router)
    return router


def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(exc.next_url, safe='/')}", status_code=303)


def _api_auth_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiAuthRequired)
    return JSONResponse({"detail": exc.detail}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="coldrelay admin"'})


def _csrf_rejected(request: Request, exc: Exception) -> Response:
    detail = "The form's security token is missing or stale. Go back, reload the page and try again."
    if is_api_request(request):
        return JSONResponse({"detail": detail}, status_code=403)
    context = {"status": 403, "title": "Request refused", "detail": detail, "principal": None, "flashes": []}
    response: HTMLResponse = templates.TemplateResponse(request, "admin/error.html", context, status_code=403)
    return response


def install_admin(app: FastAPI, state: AdminState) -> None:
    """Serve the dashboard under /admin on ``app``, using ``state`` for the database, settings and DNS."""
    app.state.admin = state
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ApiAuthRequired, _api_auth_required)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
    app.include_router(admin_router())
