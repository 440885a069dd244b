"""/admin/domains and /admin/mailboxes: the hosted domains with their live DNS status, and their mailboxes.

Every form error comes back as the same page with a message and the values typed (status 400),
never as a bare 422 or a traceback: form fields are read as plain strings and checked here.
Passwords made here (one mailbox or a bulk run) are offered once as a CSV download from memory
(see ``downloads``); the database keeps only their hashes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from coldrelay.db import AccountError, create_domain, create_mailbox, get_domain, list_domains, list_mailboxes
from coldrelay.web.admin.auth import AdminPrincipal, admin_context, admin_state, flash, require_admin, require_csrf, see_other
from coldrelay.web.admin.downloads import Credential
from coldrelay.web.admin.state import AdminState
from coldrelay.web.rendering import templates

accounts_router = APIRouter(include_in_schema=False)

MAX_BULK_NAMES_CHARS = 100_000  # a names textarea larger than this is not a list of people


# --- domains ----------------------------------------------------------------------------------------------------------


def _domains_page(
    request: Request, principal: AdminPrincipal, *, error: str | None = None, typed: str = "", status: int = 200
) -> Response:
    with admin_state(request).sessions() as session:
        domains = [
            {"name": d.name, "mailboxes": len(d.mailboxes), "created_at": d.created_at, "ips": list(d.ips or [])}
            for d in list_domains(session)
        ]
    context = admin_context(request, principal, domains=domains, error=error, typed=typed)
    return templates.TemplateResponse(request, "admin/domains.html", context, status_code=status)


@accounts_router.get("/admin/domains", response_class=HTMLResponse)
def domains_page(request: Request, principal: Annotated[AdminPrincipal, Depends(require_admin)]) -> Response:
    return _domains_page(request, principal)


@accounts_router.post("/admin/domains", response_class=HTMLResponse)
def add_domain(
    request: Request,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    """Add a hosted domain (with its DKIM key) and go to its record plan, which is what to do next."""
    require_csrf(request, principal, csrf_token)
    try:
        with admin_state(request).sessions.begin() as session:
            added = create_domain(session, name).name
    except AccountError as exc:
        return _domains_page(request, principal, error=str(exc), typed=name, status=400)
    flash(request, principal, f"Domain {added} added with a new DKIM key. Publish the records below.")
    return see_other(f"/admin/domains/{added}")


def _load_plan(state: AdminState, name: str) -> tuple[Any, str | None] | None:
    """The domain's record plan (or ``None`` and why it cannot be made); ``None`` for an unknown domain."""
    from coldrelay.provision.records import plan_for

    with state.sessions() as session:
        try:
            domain = get_domain(session, name)
        except AccountError:
            return None
        if domain is None:
            return None
        try:
            return plan_for(domain, state.settings), None
        except ValueError as exc:  # a stored IP that is not an address (InvalidIp)
            return None, str(exc)


@accounts_router.get("/admin/domains/{name}", response_class=HTMLResponse)
async def domain_page(request: Request, name: str, principal: Annotated[AdminPrincipal, Depends(require_admin)]) -> Response:
    """The domain's record plan with each record looked up live (through the configured resolver)."""
    from coldrelay.provision.render import to_bind
    from coldrelay.provision.verify import all_required_present, verify_plan

    state = admin_state(request)
    loaded = await run_in_threadpool(_load_plan, state, name)
    if loaded is None:
        raise HTTPException(status_code=404, detail=f"No hosted domain {name!r}.")
    plan, problem = loaded
    checks = await verify_plan(plan, state.resolver) if plan is not None else []
    context = admin_context(
        request,
        principal,
        name=plan.domain if plan is not None else name,
        plan=plan,
        problem=problem,
        checks=checks,
        ready=bool(checks) and all_required_present(checks),
        # Only lookups that failed stand between the plan and "ready": say so rather than "missing or wrong".
        unchecked=any(c.status.value == "failed" for c in checks)
        and all(c.status.value in ("present", "failed") for c in checks if c.required),
        zone=to_bind(plan) if plan is not None else "",
    )
    return templates.TemplateResponse(request, "admin/domain.html", context)


# --- mailboxes --------------------------------------------------------------------------------------------------------


def _export_formats() -> list[str]:
    from coldrelay.provision.export import ExportFormat

    return [fmt.value for fmt in ExportFormat]


def _patterns() -> list[str]:
    from coldrelay.provision.mailboxes import Pattern

    return [pattern.value for pattern in Pattern]


def _mailboxes_page(
    request: Request,
    principal: AdminPrincipal,
    *,
    domain: str = "",
    download: str = "",
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    state = admin_state(request)
    with state.sessions() as session:
        domains = [d.name for d in list_domains(session)]
        try:
            mailboxes = list_mailboxes(session, domain or None)
        except AccountError:
            mailboxes, error = [], error or f"{domain!r} is not a domain name."
        rows = [
            {"address": m.address, "display_name": m.display_name, "daily_cap": m.daily_cap, "enabled": m.enabled}
            for m in mailboxes
        ]
    waiting = state.downloads.peek(download, principal.user_id) if download else None
    context = admin_context(
        request,
        principal,
        mailboxes=rows,
        domains=domains,
        domain=domain,
        default_cap=state.settings.limits.daily_cap,
        download_id=download if waiting is not None else "",
        download_addresses=[c.address for c in waiting or ()],
        download_gone=bool(download) and waiting is None,
        formats=_export_formats(),
        patterns=_patterns(),
        error=error,
        form=form or {},
    )
    return templates.TemplateResponse(request, "admin/mailboxes.html", context, status_code=status)


def _mailboxes_url(domain: str = "", download: str = "") -> str:
    query = {key: value for key, value in (("domain", domain), ("download", download)) if value}
    return "/admin/mailboxes" + (f"?{urlencode(query)}" if query else "")


@accounts_router.get("/admin/mailboxes", response_class=HTMLResponse)
def mailboxes_page(
    request: Request, principal: Annotated[AdminPrincipal, Depends(require_admin)], domain: str = "", download: str = ""
) -> Response:
    return _mailboxes_page(request, principal, domain=domain.strip(), download=download.strip())


def _optional_cap(text: str) -> int | None:
    """A daily cap typed in a form: blank for the default, else a whole number of 0 or more."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise AccountError(f"The daily cap must be a whole number of messages (0 or more), not {text!r}.")
    return int(text)


@accounts_router.post("/admin/mailboxes", response_class=HTMLResponse)
def add_mailbox(
    request: Request,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    daily_cap: Annotated[str, Form()] = "",
) -> Response:
    """Create one mailbox; a blank password is generated. The login is then offered once as a CSV."""
    from coldrelay.provision.mailboxes import generate_password

    require_csrf(request, principal, csrf_token)
    state = admin_state(request)
    chosen = password or generate_password()
    try:
        cap = _optional_cap(daily_cap)
        with state.sessions.begin() as session:
            mailbox = create_mailbox(session, address, chosen, display_name=display_name or None, daily_cap=cap)
            credential = Credential(mailbox.address, chosen, mailbox.display_name, mailbox.daily_cap)
    except AccountError as exc:
        typed = {"address": address, "display_name": display_name, "daily_cap": daily_cap}
        return _mailboxes_page(request, principal, error=str(exc), form=typed, status=400)
    download = state.downloads.put(principal.user_id, [credential])
    flash(request, principal, f"Mailbox {credential.address} created. Download its login below; it is shown only once.")
    return see_other(_mailboxes_url(download=download))


def _bulk_create(
    state: AdminState, domains: Sequence[str], names_text: str, per_domain_text: str, pattern: str, daily_cap: str
) -> tuple[list[Credential], list[str]]:
    """Plan and create the mailboxes of a bulk request in one transaction; returns them and warnings.

    Raises ``AccountError`` (the provisioning module's errors are subclasses) with a message for the page.
    """
    from coldrelay.provision.mailboxes import DEFAULT_PATTERNS, Pattern, create_planned, normalize_domains, parse_names
    from coldrelay.provision.mailboxes import plan_for_session as plan_bulk_for_session

    if len(names_text) > MAX_BULK_NAMES_CHARS:
        raise AccountError(f"The names list is longer than {MAX_BULK_NAMES_CHARS} characters; split it into several runs.")
    if not per_domain_text.strip().isdigit():
        raise AccountError(f"Mailboxes per domain must be a whole number, not {per_domain_text.strip()!r}.")
    try:
        first = Pattern(pattern)
    except ValueError:
        raise AccountError(f"Unknown address pattern {pattern!r}.") from None
    # The chosen pattern first; the others step in when its address is taken, so a run is not cut short.
    patterns = [first, *(p for p in DEFAULT_PATTERNS if p is not first)]
    names = parse_names(names_text.splitlines())
    wanted = normalize_domains(domains)
    cap = _optional_cap(daily_cap)
    with state.sessions.begin() as session:
        for name in wanted:
            if get_domain(session, name) is None:
                raise AccountError(f"The domain {name} is not hosted here; add it on the Domains page first.")
        plan = plan_bulk_for_session(session, wanted, names, int(per_domain_text), patterns)
        if not plan.planned:
            raise AccountError("Every address those names give is taken already; add more names or another pattern.")
        created = create_planned(session, plan, cap)
    warnings = [f"{domain}: {short} fewer than asked (not enough free addresses)" for domain, short in plan.shortfall.items()]
    if plan.skipped_existing:
        warnings.append(f"{len(plan.skipped_existing)} existing address(es) were left alone.")
    return [Credential(m.address, m.password, m.display_name, m.daily_cap) for m in created], warnings


@accounts_router.post("/admin/mailboxes/bulk", response_class=HTMLResponse)
def bulk_create(
    request: Request,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
    domains: Annotated[list[str] | None, Form()] = None,
    names: Annotated[str, Form()] = "",
    per_domain: Annotated[str, Form()] = "",
    pattern: Annotated[str, Form()] = "first.last",
    daily_cap: Annotated[str, Form()] = "",
) -> Response:
    """Create mailboxes for a list of people across domains (argon2 hashing makes this take seconds)."""
    require_csrf(request, principal, csrf_token)
    state = admin_state(request)
    try:
        credentials, warnings = _bulk_create(state, domains or [], names, per_domain, pattern, daily_cap)
    except AccountError as exc:
        typed = {
            "bulk_domains": domains or [],
            "names": names,
            "per_domain": per_domain,
            "pattern": pattern,
            "bulk_cap": daily_cap,
        }
        return _mailboxes_page(request, principal, error=str(exc), form=typed, status=400)
    download = state.downloads.put(principal.user_id, credentials)
    flash(request, principal, f"{len(credentials)} mailboxes created. Download their logins below; they are shown only once.")
    for warning in warnings:
        flash(request, principal, warning, "error")
    return see_other(_mailboxes_url(download=download))


@accounts_router.post("/admin/mailboxes/export")
def export_download(
    request: Request,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
    download: Annotated[str, Form()] = "",
    format: Annotated[str, Form()] = "csv",
) -> Response:
    """The one download of fresh credentials as the chosen platform's CSV; afterwards they are gone."""
    from coldrelay.provision.export import ExportEndpoints, ExportFormat, MailboxCredentials, write_export

    require_csrf(request, principal, csrf_token)
    state = admin_state(request)
    try:
        fmt = ExportFormat(format)
    except ValueError:
        flash(request, principal, f"Unknown export format {format!r}.", "error")
        return see_other(_mailboxes_url(download=download))
    taken = state.downloads.take(download, principal.user_id)
    if taken is None:
        flash(
            request,
            principal,
            "That download has expired or was already taken. Passwords are not stored; set new ones to export again.",
            "error",
        )
        return see_other(_mailboxes_url())
    default_cap = state.settings.limits.daily_cap
    items = [
        MailboxCredentials(c.address, c.display_name, c.password, c.daily_cap if c.daily_cap is not None else default_cap)
        for c in taken
    ]
    out = io.StringIO()
    write_export(out, fmt, items, ExportEndpoints.from_settings(state.settings))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="coldrelay-mailboxes-{fmt.value}-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _set_enabled(
    request: Request, principal: AdminPrincipal, csrf_token: str, address: str, back: str, enabled: bool
) -> Response:
    from coldrelay.db.accounts import set_mailbox_enabled

    require_csrf(request, principal, csrf_token)
    try:
        with admin_state(request).sessions.begin() as session:
            changed = set_mailbox_enabled(session, address, enabled).address
    except AccountError as exc:
        flash(request, principal, str(exc), "error")
    else:
        what = (
            "enabled: it can log in and receive mail again" if enabled else "disabled: its logins and incoming mail are refused"
        )
        flash(request, principal, f"{changed} {what}.")
    return see_other(_mailboxes_url(domain=back))


@accounts_router.post("/admin/mailboxes/disable")
def disable_mailbox(
    request: Request,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    return _set_enabled(request, principal, csrf_token, address, back, False)


@accounts_router.post("/admin/mailboxes/enable")
def enable_mailbox(
    request: Request,
    principal: Annotated[AdminPrincipal, Depends(require_admin)],
    csrf_token: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    return _set_enabled(request, principal, csrf_token, address, back, True)
