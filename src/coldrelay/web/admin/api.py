"""/admin/api: the domains and mailboxes as JSON, for scripts holding an API token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from coldrelay.db import InvalidName, list_domains, list_mailboxes
from coldrelay.web.admin.auth import AdminPrincipal, admin_state, require_admin

admin_api_router = APIRouter(prefix="/admin/api", include_in_schema=False)


@admin_api_router.get("/domains")
def api_domains(request: Request, principal: Annotated[AdminPrincipal, Depends(require_admin)]) -> JSONResponse:
    """Every hosted domain with its mailbox count and active DKIM selector."""
    with admin_state(request).sessions() as session:
        domains = [
            {
                "name": domain.name,
                "created_at": domain.created_at.isoformat(),
                "mailboxes": len(domain.mailboxes),
                "dkim_selectors": [key.selector for key in domain.dkim_keys if key.active],
            }
            for domain in list_domains(session)
        ]
    return JSONResponse({"domains": domains})


@admin_api_router.get("/mailboxes")
def api_mailboxes(
    request: Request, principal: Annotated[AdminPrincipal, Depends(require_admin)], domain: str | None = None
) -> JSONResponse:
    """Every mailbox (or one domain's), without password hashes."""
    with admin_state(request).sessions() as session:
        try:
            found = list_mailboxes(session, domain or None)
        except InvalidName as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        mailboxes = [
            {
                "address": mailbox.address,
                "display_name": mailbox.display_name,
                "enabled": mailbox.enabled,
                "daily_cap": mailbox.daily_cap,
                "created_at": mailbox.created_at.isoformat(),
            }
            for mailbox in found
        ]
    return JSONResponse({"mailboxes": mailboxes})
