"""The admin dashboard under /admin: login, domains, mailboxes, API tokens, and the ops pages.

``install_admin(app, AdminState(...))`` adds it to a web app; pages build on ``auth``.
"""

from coldrelay.web.admin.app import admin_router, install_admin
from coldrelay.web.admin.auth import AdminPrincipal, admin_context, require_admin, require_csrf
from coldrelay.web.admin.state import AdminState

__all__ = ["AdminPrincipal", "AdminState", "admin_context", "admin_router", "install_admin", "require_admin", "require_csrf"]
