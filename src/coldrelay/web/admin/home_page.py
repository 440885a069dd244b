"""/admin: the counts an operator checks first, each linking to its page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coldrelay.db.models import Domain, Mailbox, MessageState, QueuedMessage, SenderPause
from coldrelay.web.admin.auth import AdminPrincipal, admin_context, admin_state, require_admin
from coldrelay.web.rendering import templates

home_router = APIRouter(include_in_schema=False)


def dashboard_counts(session: Session) -> dict[str, object]:
    """Domains, mailboxes (enabled and disabled), queued messages by state, and senders paused now."""
    mailboxes = dict(session.execute(select(Mailbox.enabled, func.count()).group_by(Mailbox.enabled)).all())
    by_state = dict(session.execute(select(QueuedMessage.state, func.count()).group_by(QueuedMessage.state)).all())
    return {
        "domains": int(session.scalar(select(func.count()).select_from(Domain)) or 0),
        "mailboxes_enabled": int(mailboxes.get(True, 0)),
        "mailboxes_disabled": int(mailboxes.get(False, 0)),
        "queue": [(state.value, int(by_state.get(state, 0))) for state in MessageState],
        "paused": int(session.scalar(select(func.count()).select_from(SenderPause).where(SenderPause.resumed_at.is_(None))) or 0),
    }


@home_router.get("/admin", response_class=HTMLResponse)
def home(request: Request, principal: Annotated[AdminPrincipal, Depends(require_admin)]) -> Response:
    with admin_state(request).sessions() as session:
        counts = dashboard_counts(session)
    return templates.TemplateResponse(request, "admin/home.html", admin_context(request, principal, counts=counts))
