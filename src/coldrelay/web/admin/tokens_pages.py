"""/admin/tokens: API tokens for scripts, listed, created (shown once) and revoked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from coldrelay.db import AccountError
from coldrelay.db.models import AdminUser
from coldrelay.web.admin.auth import AdminPrincipal, admin_context, admin_state, flash, require_admin, require_csrf, see_other
from coldrelay.web.admin.tokens import create_api_token, list_api_tokens, revoke_api_token
from coldrelay.web.rendering import templates

tokens_router = APIRouter(include_in_schema=False)


def _page(
    request: Request, principal: AdminPrincipal, *, new_token: str | None = None, error: str | None = None, status: int = 200
) -> Response:
    with admin_state(request).sessions() as session:
        owners = dict(session.execute(select(AdminUser.id, AdminUser.username)).all())
        rows = [
            {
                "id": t.id,
                "name": t.name,
                "owner": owners.get(t.user_id, "?"),
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
            }
            for t in list_api_tokens(session)
        ]
    context = admin_context(request, principal, tokens=rows, new_token=new_token, error=error)
    return templates.TemplateResponse(request, "admin/tokens.html", context, status_code=status)


@tokens_router.get("/admin/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, principal: Annotated[AdminPrincipal, Depends(require_admin)]) -> Response:
    return _page(request, principal)


@tokens_router.post("/admin/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    """Create a token for the logged-in admin; the page shows it this once (it is stored only as a hash)."""
    require_csrf(request, principal, csrf_token)
    with admin_state(request).sessions.begin() as session:
        user = session.get(AdminUser, principal.user_id)
        if user is None:  # deleted while logged in
            return see_other("/admin/login")
        try:
            token, _ = create_api_token(session, user, name)
        except AccountError as exc:
            token, error = None, str(exc)
    if token is None:
        return _page(request, principal, error=error, status=400)
    return _page(request, principal, new_token=token)


@tokens_router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(
    request: Request,
    token_id: str,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, principal, csrf_token)
    revoked = False
    if token_id.isdigit():  # read as text, so a mangled URL gets the message below rather than a 422
        with admin_state(request).sessions.begin() as session:
            revoked = revoke_api_token(session, int(token_id))
    if revoked:
        flash(request, principal, "Token revoked: requests using it now get 401.")
    else:
        flash(request, principal, "That token no longer exists.", "error")
    return see_other("/admin/tokens")
