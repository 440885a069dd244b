"""Logging in and out of the dashboard.

The login form has its own CSRF token (a cookie plus the same value in the form): before a session
exists there is nothing else to tie the POST to, and without it another site could log a victim's
browser into an attacker's account.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from coldrelay.web.admin.auth import (
    LOGIN_CSRF_COOKIE,
    LOGIN_PATH,
    SESSION_COOKIE,
    AdminPrincipal,
    admin_state,
    is_https,
    require_admin,
    require_csrf,
    safe_next,
    see_other,
)
from coldrelay.web.admin.tokens import end_session, find_session, new_secret, start_session
from coldrelay.web.admin.users import authenticate_admin
from coldrelay.web.rendering import templates

login_router = APIRouter(include_in_schema=False)

LOGIN_CSRF_LIFETIME = 3600  # seconds the login form stays usable


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_form(request: Request, next_url: str, *, error: str | None = None, username: str = "", status: int = 200) -> Response:
    """The login page, with a fresh login CSRF token in the form and its cookie."""
    token = new_secret()
    response = templates.TemplateResponse(
        request,
        "admin/login.html",
        {"login_csrf": token, "next": next_url, "error": error, "username": username, "principal": None, "flashes": []},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_LIFETIME,
        path=LOGIN_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


@login_router.get(LOGIN_PATH, response_class=HTMLResponse)
def login_page(request: Request, next: str = "/admin") -> Response:
    """The form; a browser that is already logged in goes straight on."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with admin_state(request).sessions.begin() as session:
            if find_session(session, cookie) is not None:
                return see_other(safe_next(next))
    return _login_form(request, safe_next(next))


@login_router.post(LOGIN_PATH, response_class=HTMLResponse)
def login_submit(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/admin",
) -> Response:
    """Check the login CSRF token, the throttle and the password, in that order; then start a session."""
    state = admin_state(request)
    destination = safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not csrf_token or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        return _login_form(
            request, destination, error="The login form expired or was sent from elsewhere; please log in again.", status=403
        )
    address = _client_address(request)
    wait = state.throttle.retry_after(username, address)
    if wait > 0:
        minutes = max(1, round(wait / 60))
        return _login_form(
            request,
            destination,
            error=f"Too many failed logins for this username. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            username=username,
            status=429,
        )
    with state.sessions.begin() as session:
        user = authenticate_admin(session, username, password)
        if user is None:
            token = None
        else:
            token, _ = start_session(session, user, state.settings.admin.session_lifetime)
    if token is None:
        state.throttle.failed(username, address)
        return _login_form(request, destination, error="Wrong username or password.", username=username, status=401)
    state.throttle.succeeded(username, address)
    response = see_other(destination)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(state.settings.admin.session_lifetime),
        path="/admin",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@login_router.post("/admin/logout")
def logout(
    request: Request,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Delete the session's row (the cookie is worthless afterwards, wherever it was copied) and the cookie."""
    require_csrf(request, principal, csrf_token)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    with admin_state(request).sessions.begin() as session:
        end_session(session, cookie)
    response = see_other(LOGIN_PATH)
    response.delete_cookie(SESSION_COOKIE, path="/admin", httponly=True, samesite="lax", secure=is_https(request))
    return response
