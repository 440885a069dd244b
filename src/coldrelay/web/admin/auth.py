"""Who is asking: the dependency every admin page and API endpoint uses, CSRF checks, and the page context.

Browsers authenticate with the ``coldrelay_admin`` session cookie; scripts call ``/admin/api/...``
with ``Authorization: Bearer <token>``. A browser without a valid session is sent to the login page
(303, with ``next`` so it comes back); an API call gets 401 JSON. Both outcomes are exceptions
handled by the handlers ``install_admin`` registers, so a page handler never sees an anonymous user.

The other admin modules (``ops``) build on exactly: ``AdminPrincipal``, ``require_admin``,
``require_csrf``, ``admin_context``, ``flash`` and ``admin_state``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import RedirectResponse

from coldrelay.web.admin.state import AdminState
from coldrelay.web.admin.tokens import find_api_token, find_session

SESSION_COOKIE = "coldrelay_admin"
LOGIN_CSRF_COOKIE = "coldrelay_login_csrf"
ADMIN_PREFIX = "/admin"
API_PREFIX = "/admin/api/"
LOGIN_PATH = "/admin/login"


@dataclass(frozen=True, slots=True)
class AdminPrincipal:
    """The admin user behind a request; ``csrf_token`` is ``None`` for API-token requests."""

    user_id: int
    username: str
    csrf_token: str | None


class LoginRequired(Exception):
    """A browser request without a valid session; answered with a 303 to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class ApiAuthRequired(Exception):
    """An API request without a valid bearer token or session."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CsrfRejected(Exception):
    """A state-changing form POST whose CSRF token is missing or wrong."""


def admin_state(request: Request) -> AdminState:
    """The dashboard's state (``app.state.admin``), set by ``install_admin``."""
    state = getattr(request.app.state, "admin", None)
    if not isinstance(state, AdminState):  # the router without install_admin: a setup mistake, not a user's
        raise RuntimeError("the admin router needs install_admin(app, AdminState(...))")
    return state


def is_api_request(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def is_https(request: Request) -> bool:
    """Whether cookies must be ``Secure`` (uvicorn's proxy headers make this right behind a TLS proxy)."""
    return request.url.scheme == "https"


def safe_next(target: str | None) -> str:
    """A post-login destination inside the dashboard; anything else (another site, ``//host``) becomes /admin."""
    if not target or not target.startswith(ADMIN_PREFIX) or target.startswith("//") or "\\" in target:
        return ADMIN_PREFIX
    rest = target[len(ADMIN_PREFIX) :]
    if rest and rest[0] not in "/?":  # /administrator is not ours
        return ADMIN_PREFIX
    if target.startswith(LOGIN_PATH):
        return ADMIN_PREFIX
    return target


def require_admin(request: Request) -> AdminPrincipal:
    """FastAPI dependency: the admin making this request, or a redirect to login / a 401 for the API."""
    state = admin_state(request)
    api = is_api_request(request)
    header = request.headers.get("authorization")
    if api and header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiAuthRequired("Use 'Authorization: Bearer <token>' with a token from /admin/tokens.")
        with state.sessions.begin() as session:
            found = find_api_token(session, token.strip())
        if found is None:
            raise ApiAuthRequired("Unknown or revoked API token.")
        return AdminPrincipal(found.user_id, found.username, None)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with state.sessions.begin() as session:
            live = find_session(session, cookie)  # deletes the row if it has expired
        if live is not None:
            return AdminPrincipal(live.user_id, live.username, live.csrf_token)
    if api:
        raise ApiAuthRequired("Log in or send 'Authorization: Bearer <token>' (create one at /admin/tokens).")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise LoginRequired(target)


def require_csrf(request: Request, principal: AdminPrincipal, csrf_token: str) -> None:
    """Refuse (403) a form POST whose ``csrf_token`` field is not the session's token.

    A bearer-token principal needs no check: the browser never adds that header on its own, so a
    forged cross-site request cannot carry it.
    """
    if principal.csrf_token is None:
        if is_api_request(request) and request.headers.get("authorization"):
            return
        raise CsrfRejected
    if not csrf_token or not hmac.compare_digest(csrf_token.encode("utf-8"), principal.csrf_token.encode("utf-8")):
        raise CsrfRejected


def flash(request: Request, principal: AdminPrincipal, text: str, kind: str = "ok") -> None:
    """Show ``text`` on this session's next admin page (after a redirect); ``kind`` is ``ok`` or ``error``."""
    if principal.csrf_token:
        admin_state(request).flashes.push(principal.csrf_token, text, kind)


def section_of(path: str) -> str:
    """The nav section a path belongs to: ``/admin/mailboxes/...`` -> ``mailboxes``, ``/admin`` -> ``home``."""
    rest = path[len(ADMIN_PREFIX) :].strip("/")
    return rest.split("/", 1)[0] or "home"


def admin_context(request: Request, principal: AdminPrincipal, **values: object) -> dict[str, object]:
    """What every admin template needs (principal, CSRF token, active nav section, waiting messages) plus ``values``.

    Reading the context takes the session's waiting flash messages, so call it once per page.
    """
    flashes = admin_state(request).flashes.pop_all(principal.csrf_token) if principal.csrf_token else []
    context: dict[str, object] = {
        "principal": principal,
        "csrf_token": principal.csrf_token or "",
        "section": section_of(request.url.path),
        "flashes": flashes,
    }
    context.update(values)
    return context


def see_other(url: str) -> RedirectResponse:
    """The redirect after a successful POST (303, so a reload does not repeat the POST)."""
    return RedirectResponse(url, status_code=303)
