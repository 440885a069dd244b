"""The operations pages: the queue, the delivery log, bounce analytics and paused senders.

Reads are plain queries (the queue listing needs ``tries`` and ``last_error``, which the queue's
own ``QueueEntry`` leaves out); every change goes through the component that owns it, so its
rules hold here too: ``MailQueue`` retries, deletes and flushes, and the ``ReputationGuard``
resumes a sender. Every POST checks the session's CSRF token and answers with a redirect (303)
and a flash message, so a reload never repeats an action. Deleting a message asks first, on a
page of its own: the dashboard works without JavaScript, so no ``confirm()`` dialog.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from coldrelay import analytics
from coldrelay.db import DeliveryLog, DeliveryOutcome, MessageState, QueuedMessage, SenderPause, utcnow
from coldrelay.errors import Reason
from coldrelay.mta.queue import HELD_UNTIL, MailQueue, QueueError, QueueState, UnknownMessage
from coldrelay.web import charts
from coldrelay.web.admin.auth import (
    AdminPrincipal,
    admin_context,
    admin_state,
    flash,
    require_admin,
    require_csrf,
    safe_next,
    see_other,
)
from coldrelay.web.admin.state import AdminState
from coldrelay.web.rendering import templates

ops_router = APIRouter(include_in_schema=False)

Principal = Annotated[AdminPrincipal, Depends(require_admin)]
CsrfToken = Annotated[str, Form()]

QUEUE_PAGE = 100
LOG_PAGE = 100
HISTORY_ROWS = 100
ACTIVE = "active"  # the queue filter for every message not yet final
_FINAL = (MessageState.DELIVERED, MessageState.BOUNCED)


def when(moment: datetime | None) -> str:
    """A time as the pages write it: UTC to the minute, or a dash."""
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _page(request: Request, principal: AdminPrincipal, name: str, status: int = 200, **values: object) -> Response:
    context = admin_context(request, principal, when=when, **values)
    return templates.TemplateResponse(request, f"admin/{name}", context, status_code=status)


def _queue(state: AdminState) -> MailQueue:
    # Cheap to build per request: no writer task starts unless something is enqueued.
    return MailQueue(state.engine, state.settings.data_dir / "spool")


# --- the queue ----------------------------------------------------------------------------------


def queue_state_of(state: MessageState, next_attempt_at: datetime) -> QueueState:
    """The state the queue reports (a deferred message due at the end of time is ``held``)."""
    if state is MessageState.DEFERRED and next_attempt_at >= HELD_UNTIL:
        return QueueState.HELD
    return QueueState(state.value)


def _queue_filter(chosen: str) -> ColumnElement[bool]:
    if chosen == ACTIVE:
        return QueuedMessage.state.not_in(_FINAL)
    state = QueueState(chosen)
    if state is QueueState.HELD:
        return (QueuedMessage.state == MessageState.DEFERRED) & (QueuedMessage.next_attempt_at >= HELD_UNTIL)
    if state is QueueState.DEFERRED:
        return (QueuedMessage.state == MessageState.DEFERRED) & (QueuedMessage.next_attempt_at < HELD_UNTIL)
    return QueuedMessage.state == MessageState(state.value)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of the queue table."""

    id: str
    sender: str
    recipients: list[str]
    state: QueueState
    tries: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime

    @property
    def can_retry(self) -> bool:
        return self.state in (QueueState.QUEUED, QueueState.DEFERRED, QueueState.HELD)


_QUEUE_COLUMNS = (
    QueuedMessage.id,
    QueuedMessage.sender,
    QueuedMessage.recipients,
    QueuedMessage.state,
    QueuedMessage.tries,
    QueuedMessage.attempts,
    QueuedMessage.next_attempt_at,
    QueuedMessage.last_error,
    QueuedMessage.created_at,
)  # never the message blob: a page of rows must not drag message bodies along


def _queue_row(row: Any) -> QueueRow:
    state = queue_state_of(row.state, row.next_attempt_at)
    due = None if state in (QueueState.HELD, QueueState.DELIVERED, QueueState.BOUNCED, QueueState.LEASED) else row.next_attempt_at
    return QueueRow(row.id, row.sender, list(row.recipients), state, row.tries, row.attempts, due, row.last_error, row.created_at)


def _queue_listing(session: Session, chosen: str, offset: int) -> tuple[dict[str, int], list[QueueRow], bool]:
    counts = {state.value: count for state, count in analytics.queue_counts(session).items()}
    rows = session.execute(
        select(*_QUEUE_COLUMNS)
        .where(_queue_filter(chosen))
        .order_by(QueuedMessage.created_at, QueuedMessage.id)
        .offset(offset)
        .limit(QUEUE_PAGE + 1)
    ).all()
    return counts, [_queue_row(row) for row in rows[:QUEUE_PAGE]], len(rows) > QUEUE_PAGE


@ops_router.get("/admin/queue", response_class=HTMLResponse)
def queue_page(
    request: Request,
    principal: Principal,
    state: Annotated[str, Query()] = ACTIVE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Counts by state, and the messages of one state (or all not yet final), oldest first."""
    choices = [ACTIVE, *(member.value for member in QueueState)]
    error = None
    if state not in choices:
        error, state = f"Unknown state {state!r}; showing every message not yet delivered or bounced.", ACTIVE
    with admin_state(request).sessions() as session:
        counts, rows, more = _queue_listing(session, state, offset)
    return _page(
        request,
        principal,
        "queue.html",
        status=400 if error else 200,
        error=error,
        counts=counts,
        rows=rows,
        chosen=state,
        choices=choices,
        offset=offset,
        next_offset=offset + QUEUE_PAGE if more else None,
        previous_offset=max(0, offset - QUEUE_PAGE) if offset else None,
        back=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
    )


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str


def headers_of(data: bytes) -> list[Header]:
    """The message's header fields in order, encoded words decoded; the body is not parsed.

    A field the modern parser cannot make sense of is shown as it was received, never dropped.
    """
    message = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    fields: list[Header] = []
    for name, raw in message.raw_items():
        try:
            value = str(email.policy.default.header_fetch_parse(name, raw))
        except Exception:  # a malformed field: show the raw text rather than lose it
            value = str(raw)
        fields.append(Header(name, " ".join(value.split())))
    return fields


def _message_details(session: Session, message_id: str) -> tuple[QueueRow, Any, list[DeliveryLog]] | None:
    row = session.execute(
        select(*_QUEUE_COLUMNS, QueuedMessage.lease_owner, QueuedMessage.lease_expires_at).where(QueuedMessage.id == message_id)
    ).first()
    if row is None:
        return None
    log = list(session.scalars(select(DeliveryLog).where(DeliveryLog.message_id == message_id).order_by(DeliveryLog.id)))
    return _queue_row(row), row, log


async def _message_page(request: Request, principal: AdminPrincipal, message_id: str, *, confirm_delete: bool) -> Response:
    state = admin_state(request)

    def load() -> tuple[QueueRow, Any, list[DeliveryLog]] | None:
        with state.sessions() as session:
            return _message_details(session, message_id)

    found = await run_in_threadpool(load)
    if found is None:
        return _page(request, principal, "queue_message.html", status=404, message=None, message_id=message_id)
    message, raw, log = found
    headers: list[Header] = []
    unreadable = None
    try:
        headers = headers_of(await _queue(state).read(message_id))
    except (QueueError, OSError) as exc:
        unreadable = f"The message's content cannot be read: {exc}"
    return _page(
        request,
        principal,
        "queue_message.html",
        message=message,
        lease_owner=raw.lease_owner,
        lease_expires_at=raw.lease_expires_at,
        headers=headers,
        unreadable=unreadable,
        log=log,
        confirm_delete=confirm_delete,
        reasons=_REASONS,
    )


@ops_router.get("/admin/queue/{message_id}", response_class=HTMLResponse)
async def queue_message_page(request: Request, message_id: str, principal: Principal) -> Response:
    """One message: its state, its headers and every delivery-log row about it."""
    return await _message_page(request, principal, message_id, confirm_delete=False)


@ops_router.post("/admin/queue/flush")
async def queue_flush(request: Request, principal: Principal, csrf_token: CsrfToken = "") -> Response:
    """Make every deferred message due now (held ones stay held: they need a person's retry one by one)."""
    require_csrf(request, principal, csrf_token)
    count = await _queue(admin_state(request)).flush()
    flash(request, principal, f"{count} deferred message{'' if count == 1 else 's'} made due now.")
    return see_other("/admin/queue")


@ops_router.post("/admin/queue/{message_id}/retry")
async def queue_retry(
    request: Request,
    message_id: str,
    principal: Principal,
    csrf_token: CsrfToken = "",
    next_page: Annotated[str, Form(alias="next")] = "",
) -> Response:
    require_csrf(request, principal, csrf_token)
    try:
        await _queue(admin_state(request)).retry(message_id)
    except UnknownMessage:
        flash(request, principal, f"Message {message_id} is no longer in the queue.", "error")
        return see_other("/admin/queue")
    except QueueError as exc:
        flash(request, principal, str(exc), "error")
    else:
        flash(request, principal, f"Message {message_id} is due now; a delivery worker will take it shortly.")
    # Back where the button was (the filtered list), or to the message; never outside the dashboard.
    return see_other(safe_next(next_page) if next_page else f"/admin/queue/{message_id}")


@ops_router.post("/admin/queue/{message_id}/delete", response_class=HTMLResponse)
async def queue_delete(
    request: Request,
    message_id: str,
    principal: Principal,
    csrf_token: CsrfToken = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Without ``confirm=yes``: the message's page with a confirmation form; with it: delete."""
    require_csrf(request, principal, csrf_token)
    if confirm != "yes":
        return await _message_page(request, principal, message_id, confirm_delete=True)
    try:
        await _queue(admin_state(request)).delete(message_id)
    except UnknownMessage:
        flash(request, principal, f"Message {message_id} was already gone.", "error")
    else:
        flash(request, principal, f"Message {message_id} deleted: it will not be delivered, and no bounce is sent.")
    return see_other("/admin/queue")


# --- the delivery log ---------------------------------------------------------------------------

_REASONS = frozenset(reason.value for reason in Reason)
_OUTCOMES = tuple(outcome.value for outcome in DeliveryOutcome)


@dataclass(frozen=True, slots=True)
class LogFilters:
    """The log page's filters as given (empty strings: no filter), and what they mean in SQL."""

    outcome: str = ""
    reason: str = ""
    provider: str = ""
    sender: str = ""
    since: str = ""
    until: str = ""

    def query_string(self, **extra: object) -> str:
        """The filters (and ``extra`` values that are not None) as a URL query, for paging links."""
        values: dict[str, object] = {}
        for key in ("outcome", "reason", "provider", "sender", "since", "until"):
            value = getattr(self, key)
            if value:
                values[key] = value
        values.update({key: value for key, value in extra.items() if value is not None})
        return urlencode(values)

    def conditions(self) -> tuple[list[ColumnElement[bool]], list[str]]:
        """SQL conditions for the filters, and a message for each value that makes no sense."""
        where: list[ColumnElement[bool]] = []
        errors: list[str] = []
        if self.outcome:
            if self.outcome in _OUTCOMES:
                where.append(DeliveryLog.outcome == DeliveryOutcome(self.outcome))
            else:
                errors.append(f"Unknown outcome {self.outcome!r}; choose {', '.join(_OUTCOMES)}.")
        if self.reason:
            if self.reason in _REASONS:
                where.append(DeliveryLog.reason == self.reason)
            else:
                errors.append(f"Unknown reason {self.reason!r}.")
        if self.provider:
            where.append(DeliveryLog.provider == self.provider.strip().lower())
        sender = self.sender.strip().lower()
        if sender:
            if "@" in sender and not sender.startswith("@"):
                where.append(func.lower(DeliveryLog.sender) == sender)
            else:  # a domain: every mailbox of it
                domain = sender.lstrip("@").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                where.append(func.lower(DeliveryLog.sender).like(f"%@{domain}", escape="\\"))
        for label, text, shift in (("From", self.since, 0), ("To", self.until, 1)):
            if not text:
                continue
            try:
                day = date.fromisoformat(text)
            except ValueError:
                errors.append(f"{label} date {text!r} is not a date like 2025-03-14.")
                continue
            # Whole UTC days, both ends included: "to 14 March" means up to the end of that day.
            bound = datetime.combine(day, time(), tzinfo=UTC) + timedelta(days=shift)
            where.append(DeliveryLog.at >= bound if shift == 0 else DeliveryLog.at < bound)
        return where, errors


def _log_rows(session: Session, where: Sequence[ColumnElement[bool]], before: int | None) -> tuple[list[DeliveryLog], bool]:
    query = select(DeliveryLog).where(*where).order_by(DeliveryLog.id.desc()).limit(LOG_PAGE + 1)
    if before is not None:  # keyset paging: stable while new rows arrive, and no OFFSET scan
        query = query.where(DeliveryLog.id < before)
    rows = list(session.scalars(query))
    return rows[:LOG_PAGE], len(rows) > LOG_PAGE


def _providers(session: Session) -> list[str]:
    return sorted(p for p in session.scalars(select(DeliveryLog.provider).distinct()) if p)


@ops_router.get("/admin/log", response_class=HTMLResponse)
def log_page(
    request: Request,
    principal: Principal,
    outcome: str = "",
    reason: str = "",
    provider: str = "",
    sender: str = "",
    since: str = "",
    until: str = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The delivery log, newest first, 100 rows a page, with filters; each failure links to its article."""
    filters = LogFilters(outcome, reason, provider, sender, since, until)
    where, errors = filters.conditions()
    with admin_state(request).sessions() as session:
        rows, more = _log_rows(session, where, before) if not errors else ([], False)
        providers = _providers(session)
    older = f"/admin/log?{filters.query_string(before=rows[-1].id)}" if more and rows else None
    return _page(
        request,
        principal,
        "log.html",
        status=400 if errors else 200,
        errors=errors,
        filters=filters,
        rows=rows,
        older=older,
        newest=f"/admin/log?{filters.query_string()}" if before is not None else None,
        outcomes=_OUTCOMES,
        reasons=sorted(_REASONS),
        providers=providers,
    )


# --- analytics ----------------------------------------------------------------------------------


def _bucket_label(start: datetime, bucket: analytics.BucketSize) -> str:
    return start.strftime("%H:00") if bucket == "hour" else start.strftime("%d %b")


def analytics_charts(report: analytics.Report) -> dict[str, Markup]:
    """The analytics page's SVG charts, one per figure, titled and described for screen readers."""
    figures = report.window
    span = {"24h": "the last 24 hours", "7d": "the last 7 days", "30d": "the last 30 days"}[figures.name.value]
    buckets = report.over_time
    per = "hour" if figures.bucket == "hour" else "day"
    threshold = report.hard_bounce_threshold
    totals = report.totals()

    def by(items: Sequence[analytics.Count], label: Any, top: int = 12) -> list[tuple[str, float]]:
        return [(label(item.key), float(item.total)) for item in items[:top]]

    def rates(items: Sequence[analytics.BounceRate], top: int = 15) -> list[tuple[str, float]]:
        return [(item.key, item.rate) for item in items[:top] if item.rate is not None]

    return {
        "over_time": charts.stacked_bars(
            "chart-over-time",
            f"Deliveries and failures per {per}, {span}",
            f"Stacked bars, one per {per}: delivered, deferred and bounced log rows. The table below lists every value.",
            [_bucket_label(b.start, figures.bucket) for b in buckets],
            [
                charts.Series("delivered", [b.delivered for b in buckets], "delivered"),
                charts.Series("deferred", [b.deferred for b in buckets], "deferred"),
                charts.Series("bounced", [b.bounced for b in buckets], "bounced"),
            ],
            empty="No delivery attempts in this window",
        ),
        "outcomes": charts.donut(
            "chart-outcomes",
            f"Outcomes, {span}",
            "Share of delivered, deferred and bounced log rows.",
            [
                charts.Slice("delivered", totals.delivered, "delivered"),
                charts.Slice("deferred", totals.deferred, "deferred"),
                charts.Slice("bounced", totals.bounced, "bounced"),
            ],
            center_label="log rows",
            empty="No delivery attempts in this window",
        ),
        "by_reason": charts.horizontal_bars(
            "chart-by-reason",
            f"Failures by reason, {span}",
            "Deferred and bounced rows per reason, most first.",
            by(report.by_reason, lambda key: key or "unclassified"),
            empty="No failures in this window",
        ),
        "by_provider": charts.horizontal_bars(
            "chart-by-provider",
            f"Failures by receiving provider, {span}",
            "Deferred and bounced rows per provider of the recipient's mail server, most first.",
            by(report.by_provider, lambda key: key or "unknown provider"),
            empty="No failures in this window",
        ),
        "sender_rates": charts.horizontal_bars(
            "chart-sender-rates",
            f"Hard-bounce rate per sending mailbox, {span}",
            f"Hard bounces per send for each mailbox; the dashed line is the pause threshold, {charts.percent_text(threshold)}.",
            rates(report.sender_rates),
            value_text=charts.percent_text,
            threshold=threshold,
            threshold_label="pause threshold",
            empty="No sends in this window",
        ),
        "domain_rates": charts.horizontal_bars(
            "chart-domain-rates",
            f"Hard-bounce rate per sending domain, {span}",
            f"Hard bounces per send for each domain; the dashed line is the pause threshold, {charts.percent_text(threshold)}.",
            rates(report.domain_rates),
            value_text=charts.percent_text,
            threshold=threshold,
            threshold_label="pause threshold",
            empty="No sends in this window",
        ),
    }


def _report(state: AdminState, name: str) -> analytics.Report:
    chosen = analytics.window(name, utcnow())
    with state.sessions() as session:
        return analytics.report(session, chosen, state.settings.reputation.hard_bounce_threshold)


@ops_router.get("/admin/analytics", response_class=HTMLResponse)
def analytics_page(request: Request, principal: Principal, window: str = "7d") -> Response:
    """Deliveries and failures over a window, failures by reason/provider/sender, hard-bounce rates, top replies."""
    error = None
    try:
        report = _report(admin_state(request), window)
    except analytics.AnalyticsError as exc:
        error = str(exc)
        report = _report(admin_state(request), analytics.WindowName.WEEK.value)
    return _page(
        request,
        principal,
        "analytics.html",
        status=400 if error else 200,
        error=error,
        report=report,
        totals=report.totals(),
        charts=analytics_charts(report),
        windows=[member.value for member in analytics.WindowName],
        min_sends=admin_state(request).settings.reputation.min_sends,
        window_sends=admin_state(request).settings.reputation.window,
        percent=charts.percent_text,
        reasons=_REASONS,
    )


@ops_router.get("/admin/api/analytics")
def analytics_api(request: Request, principal: Principal, window: str = "7d") -> JSONResponse:
    """The analytics page's figures as JSON (``Authorization: Bearer <token>`` works here)."""
    try:
        report = _report(admin_state(request), window)
    except analytics.AnalyticsError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    return JSONResponse(report.to_dict())


# --- paused senders -----------------------------------------------------------------------------


def _pauses(session: Session) -> tuple[list[SenderPause], list[SenderPause]]:
    active = list(
        session.scalars(
            select(SenderPause)
            .where(SenderPause.resumed_at.is_(None))
            .order_by(SenderPause.paused_at.desc(), SenderPause.id.desc())
        )
    )
    history = list(
        session.scalars(
            select(SenderPause)
            .where(SenderPause.resumed_at.is_not(None))
            .order_by(SenderPause.resumed_at.desc(), SenderPause.id.desc())
            .limit(HISTORY_ROWS)
        )
    )
    return active, history


@ops_router.get("/admin/senders", response_class=HTMLResponse)
def senders_page(request: Request, principal: Principal) -> Response:
    """Senders the reputation guard (or a person) paused, with Resume buttons, and the resumed ones."""
    state = admin_state(request)
    with state.sessions() as session:
        active, history = _pauses(session)
    return _page(
        request,
        principal,
        "senders.html",
        active=active,
        history=history,
        history_rows=HISTORY_ROWS,
        reputation=state.settings.reputation,
        percent=charts.percent_text,
    )


@ops_router.post("/admin/senders/{pause_id}/resume")
async def resume_sender(request: Request, pause_id: int, principal: Principal, csrf_token: CsrfToken = "") -> Response:
    """Resume a paused mailbox or domain through the guard, recording who did it."""
    require_csrf(request, principal, csrf_token)
    # Imported here: the delivery package pulls in the SMTP client and DNS stack, which the
    # rest of the dashboard does not need to load.
    from coldrelay.mta.delivery.reputation import ReputationGuard

    state = admin_state(request)

    def load() -> SenderPause | None:
        with state.sessions() as session:
            return session.get(SenderPause, pause_id)

    pause = await run_in_threadpool(load)
    if pause is None:
        flash(request, principal, "That pause no longer exists.", "error")
        return see_other("/admin/senders")
    if pause.resumed_at is not None:
        flash(request, principal, f"{pause.name} was already resumed by {pause.resumed_by or 'someone'}.", "error")
        return see_other("/admin/senders")
    resumed = await ReputationGuard(state.engine, state.settings.reputation).resume(pause.name, principal.username)
    if resumed:
        flash(request, principal, f"{pause.name} resumed by {principal.username}.")
    else:
        flash(request, principal, f"{pause.name} was resumed by someone else meanwhile.", "error")
    return see_other("/admin/senders")
