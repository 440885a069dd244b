"""The operations pages through the real app on SQLite and PostgreSQL: queue, delivery log, analytics, paused senders.

A real admin logs in through the login form; queue messages are enqueued with the real ``MailQueue``
(spool files on SQLite, bytes in the row on PostgreSQL), so retry, delete and the header view run
against what delivery would see.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from coldrelay.db import (
    AdminUser,
    ApiToken,
    DeliveryLog,
    DeliveryOutcome,
    LogSource,
    MessageState,
    PauseScope,
    QueuedMessage,
    SenderPause,
    utcnow,
)
from coldrelay.mta.queue import HELD_UNTIL, MailQueue
from coldrelay.web.admin.tokens import create_api_token
from helpers.admin_app import ADMIN, AdminSite, build_site, log_in
from helpers.queue_db import fresh_url

MESSAGE = (
    b"From: Anna <anna@hosted.test>\r\nTo: bob@example.net\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <1@hosted.test>\r\n\r\nhello\r\n"
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminSite]:
    """One migrated database and admin per backend for the whole file: migrations and argon2 are slow."""
    tmp_path = tmp_path_factory.mktemp(f"ops-{request.param}")
    for url in fresh_url(request.param, request, tmp_path):
        built = build_site(url, tmp_path / "data", migrate=False)
        built.add_admin()
        try:
            yield built
        finally:
            built.close()


@pytest.fixture(scope="module")
def logged_in(backend_site: AdminSite) -> Iterator[TestClient]:
    with backend_site.client() as client:
        client.csrf = log_in(client)  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def site(backend_site: AdminSite) -> Iterator[AdminSite]:
    """The shared site, emptied after each test (queue, log, pauses, spool files)."""
    yield backend_site
    with backend_site.state.sessions.begin() as session:
        for table in (DeliveryLog, SenderPause, QueuedMessage, ApiToken):
            session.execute(delete(table))
    spool = backend_site.state.settings.data_dir / "spool"
    for leftover in spool.glob("*") if spool.is_dir() else ():
        leftover.unlink()


@pytest.fixture
def client(site: AdminSite, logged_in: TestClient) -> Iterator[TestClient]:
    yield logged_in
    site.state.flashes.pop_all(csrf(logged_in))  # no message carries over into the next test


def csrf(client: TestClient) -> str:
    return str(client.csrf)  # type: ignore[attr-defined]


def enqueue(site: AdminSite, sender: str = "anna@hosted.test", recipients: tuple[str, ...] = ("bob@example.net",)) -> str:
    async def main() -> str:
        async with MailQueue(site.state.engine, site.state.settings.data_dir / "spool") as queue:
            return await queue.enqueue(sender, list(recipients), MESSAGE)

    return asyncio.run(main())


def set_row(site: AdminSite, message_id: str, **values: object) -> None:
    with site.state.sessions.begin() as session:
        session.execute(update(QueuedMessage).where(QueuedMessage.id == message_id).values(**values))


def row(site: AdminSite, message_id: str) -> QueuedMessage | None:
    with site.state.sessions() as session:
        return session.get(QueuedMessage, message_id)


def add_log(site: AdminSite, message_id: str, at: datetime, outcome: DeliveryOutcome, **values: object) -> None:
    fields: dict[str, object] = {"sender": "anna@hosted.test", "recipient": "bob@example.net", "attempt": 1}
    fields.update(values)
    with site.state.sessions.begin() as session:
        session.add(DeliveryLog(message_id=message_id, at=at, outcome=outcome, **fields))


def flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash \w+" role="\w+">([^<]*)</p>', html)


# --- access ---------------------------------------------------------------------------------------


def test_pages_need_a_login_and_posts_need_the_csrf_token(site: AdminSite) -> None:
    message_id = enqueue(site)
    set_row(site, message_id, state=MessageState.DEFERRED, next_attempt_at=HELD_UNTIL)
    with site.client() as anonymous:
        for path in ("/admin/queue", "/admin/log", "/admin/analytics?window=24h", "/admin/senders", f"/admin/queue/{message_id}"):
            response = anonymous.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/admin/login?next=/admin/"), path
        assert anonymous.get("/admin/api/analytics").status_code == 401
    with site.client() as client:
        log_in(client)
        for path in (f"/admin/queue/{message_id}/retry", f"/admin/queue/{message_id}/delete", "/admin/queue/flush"):
            refused = client.post(path, data={"csrf_token": "forged", "confirm": "yes"})
            assert refused.status_code == 403, path
    held = row(site, message_id)
    assert held is not None and held.next_attempt_at == HELD_UNTIL  # nothing happened


# --- the queue ------------------------------------------------------------------------------------


def test_queue_page_counts_filters_and_lists(site: AdminSite, client: TestClient) -> None:
    waiting, deferred, held, done = (enqueue(site) for _ in range(4))
    later = utcnow() + timedelta(hours=2)
    set_row(site, deferred, state=MessageState.DEFERRED, next_attempt_at=later, tries=2, last_error="421 4.7.0 Try again later")
    set_row(site, held, state=MessageState.DEFERRED, next_attempt_at=HELD_UNTIL, attempts=5)
    set_row(site, done, state=MessageState.DELIVERED)

    page = client.get("/admin/queue")
    assert page.status_code == 200
    for state, count in (("queued", 1), ("deferred", 1), ("held", 1), ("delivered", 1), ("bounced", 0), ("leased", 0)):
        assert re.search(rf'id="count-{state}"><span class="figure">{count}</span>', page.text), state
    # The default view is every message not yet final.
    assert {waiting, deferred, held} == set(re.findall(r'id="message-([0-9a-f]{32})"', page.text))
    assert "421 4.7.0 Try again later" in page.text and "5 crashes" in page.text

    only_held = client.get("/admin/queue", params={"state": "held"})
    assert re.findall(r'id="message-([0-9a-f]{32})"', only_held.text) == [held]
    finished = client.get("/admin/queue", params={"state": "delivered"})
    assert re.findall(r'id="message-([0-9a-f]{32})"', finished.text) == [done]
    assert "Retry" not in finished.text.split('id="queue-table"')[1]  # a delivered message cannot be retried

    bad = client.get("/admin/queue", params={"state": "lost"})
    assert bad.status_code == 400 and "Unknown state &#39;lost&#39;" in bad.text


def test_retry_releases_a_held_message(site: AdminSite, client: TestClient) -> None:
    held = enqueue(site)
    set_row(site, held, state=MessageState.DEFERRED, next_attempt_at=HELD_UNTIL, attempts=5)

    response = client.post(f"/admin/queue/{held}/retry", data={"csrf_token": csrf(client), "next": "/admin/queue?state=held"})
    assert response.status_code == 303 and response.headers["location"] == "/admin/queue?state=held"
    released = row(site, held)
    assert released is not None and released.state is MessageState.QUEUED and released.attempts == 0
    assert released.next_attempt_at <= utcnow()
    assert f"Message {held} is due now; a delivery worker will take it shortly." in flashes(client.get("/admin/queue").text)

    set_row(site, held, state=MessageState.DELIVERED)
    again = client.post(f"/admin/queue/{held}/retry", data={"csrf_token": csrf(client)})
    assert again.headers["location"] == f"/admin/queue/{held}"
    assert any(
        "only queued, deferred or held messages can be retried" in text for text in flashes(client.get("/admin/queue").text)
    )
    # An outside address in `next` is not followed.
    outside = client.post(f"/admin/queue/{'f' * 32}/retry", data={"csrf_token": csrf(client), "next": "https://evil.example/"})
    assert outside.headers["location"] == "/admin/queue"


def test_delete_asks_first_then_removes_row_and_spool_file(site: AdminSite, client: TestClient) -> None:
    message_id = enqueue(site, recipients=("bob@example.net", "carol@example.net"))
    stored = row(site, message_id)
    assert stored is not None
    spool_file = site.state.settings.data_dir / "spool" / stored.message_path if stored.message_path else None

    asked = client.post(f"/admin/queue/{message_id}/delete", data={"csrf_token": csrf(client)})
    assert asked.status_code == 200
    assert 'id="confirm-delete"' in asked.text and "its 2 recipients" in asked.text
    assert row(site, message_id) is not None

    done = client.post(f"/admin/queue/{message_id}/delete", data={"csrf_token": csrf(client), "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == "/admin/queue"
    assert row(site, message_id) is None
    if spool_file is not None:  # SQLite keeps bytes in spool files; PostgreSQL in the row
        assert not spool_file.exists()
    assert f"Message {message_id} deleted: it will not be delivered, and no bounce is sent." in flashes(
        client.get("/admin/queue").text
    )


def test_flush_makes_deferred_due_and_leaves_held(site: AdminSite, client: TestClient) -> None:
    deferred = [enqueue(site) for _ in range(2)]
    held = enqueue(site)
    for message_id in deferred:
        set_row(site, message_id, state=MessageState.DEFERRED, next_attempt_at=utcnow() + timedelta(hours=1))
    set_row(site, held, state=MessageState.DEFERRED, next_attempt_at=HELD_UNTIL)

    response = client.post("/admin/queue/flush", data={"csrf_token": csrf(client)})
    assert response.status_code == 303
    assert all(getattr(row(site, m), "state", None) is MessageState.QUEUED for m in deferred)
    still = row(site, held)
    assert still is not None and still.next_attempt_at == HELD_UNTIL
    assert "2 deferred messages made due now." in flashes(client.get("/admin/queue").text)


def test_message_page_shows_headers_and_its_log(site: AdminSite, client: TestClient) -> None:
    message_id = enqueue(site)
    at = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    add_log(
        site,
        message_id,
        at,
        DeliveryOutcome.BOUNCED,
        reply_code=550,
        enhanced_code="5.1.1",
        reply_text="The email account that you tried to reach does not exist.",
        reason="userunknown",
        provider="google",
        article="google-550-5-1-1-account-does-not-exist",
        hard_bounce=True,
    )
    page = client.get(f"/admin/queue/{message_id}")
    assert page.status_code == 200
    headers = dict(re.findall(r'<tr><th scope="row">([^<]+)</th><td>([^<]*)</td></tr>', page.text.split('id="headers"')[1]))
    assert headers["Subject"] == "Grüße"  # the encoded word decoded
    assert headers["From"] == "Anna &lt;anna@hosted.test&gt;"
    assert 'href="/smtp-errors/google-550-5-1-1-account-does-not-exist"' in page.text
    assert "2025-03-14 10:00 UTC" in page.text and "<code>550 5.1.1</code>" in page.text

    missing = client.get(f"/admin/queue/{'0' * 32}")
    assert missing.status_code == 404 and 'id="not-found"' in missing.text


# --- the delivery log -----------------------------------------------------------------------------


def test_log_filters_and_links_to_articles(site: AdminSite, client: TestClient) -> None:
    message_id = enqueue(site)
    day = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    add_log(site, message_id, day, DeliveryOutcome.DELIVERED, sender="anna@hosted.test")
    add_log(site, message_id, day, DeliveryOutcome.BOUNCED, reason="userunknown", provider="google", article="art-one")
    add_log(site, message_id, day - timedelta(days=1), DeliveryOutcome.DEFERRED, reason="speeding", sender="Carl@Other.test")
    add_log(site, message_id, day + timedelta(days=1), DeliveryOutcome.BOUNCED, reason="blocked", sender="x@hosted_test.net")

    def ids(**params: str) -> list[int]:
        page = client.get("/admin/log", params=params)
        assert page.status_code == 200, page.text
        return [int(found) for found in re.findall(r'<tr id="log-(\d+)">', page.text)]

    everything = ids()
    assert len(everything) == 4 and everything == sorted(everything, reverse=True)  # newest first
    first, second, third, fourth = sorted(everything)
    assert ids(outcome="bounced") == [fourth, second]
    assert ids(reason="userunknown") == [second]
    assert ids(provider="google") == [second]
    assert ids(sender="carl@other.test") == [third]  # any case
    assert ids(sender="hosted.test") == [second, first]  # a domain; '_' in "hosted_test" is not a wildcard
    assert ids(since="2025-03-14", until="2025-03-14") == [second, first]  # whole UTC days, both ends included
    assert 'href="/smtp-errors/art-one"' in client.get("/admin/log", params={"reason": "userunknown"}).text

    bad = client.get("/admin/log", params={"since": "14/03/2025", "outcome": "lost"})
    assert bad.status_code == 400
    assert "From date &#39;14/03/2025&#39; is not a date like 2025-03-14." in bad.text
    assert "Unknown outcome &#39;lost&#39;" in bad.text


def test_log_pages_by_keyset(site: AdminSite, client: TestClient) -> None:
    message_id = enqueue(site)
    start = datetime(2025, 3, 14, tzinfo=UTC)
    with site.state.sessions.begin() as session:
        for index in range(230):
            session.add(
                DeliveryLog(
                    message_id=message_id,
                    sender="anna@hosted.test",
                    recipient=f"r{index}@example.net",
                    outcome=DeliveryOutcome.DELIVERED,
                    attempt=1,
                    at=start + timedelta(seconds=index),
                )
            )
    seen: list[int] = []
    url: str | None = "/admin/log?outcome=delivered"
    pages = 0
    while url is not None:
        page = client.get(url.replace("&amp;", "&"))
        rows = [int(found) for found in re.findall(r'<tr id="log-(\d+)">', page.text)]
        seen.extend(rows)
        pages += 1
        older = re.search(r'<a href="([^"]+)" rel="next" id="older">', page.text)
        url = older.group(1) if older else None
        assert "outcome=delivered" in (url or "outcome=delivered")  # the filters carry over
    assert pages == 3 and len(seen) == 230 and len(set(seen)) == 230
    assert seen == sorted(seen, reverse=True)


# --- analytics ------------------------------------------------------------------------------------


def test_analytics_page_draws_every_chart_with_a_table(site: AdminSite, client: TestClient) -> None:
    message_id = enqueue(site)
    now = utcnow()
    add_log(site, message_id, now, DeliveryOutcome.DELIVERED)
    add_log(site, message_id, now, DeliveryOutcome.BOUNCED, hard_bounce=True, reason="userunknown", provider="google")
    add_log(site, message_id, now, DeliveryOutcome.DEFERRED, reason="speeding", reply_code=421, reply_text="slow down")

    page = client.get("/admin/analytics", params={"window": "24h"})
    assert page.status_code == 200
    svgs = re.findall(r"<svg .*?</svg>", page.text, re.DOTALL)
    assert len(svgs) == 6
    for svg in svgs:
        ET.fromstring(svg)  # each chart is well-formed XML inside the HTML
    over_time = ET.fromstring(svgs[0])
    bars = [e for e in over_time.iter("{http://www.w3.org/2000/svg}rect") if "bar" in (e.get("class") or "").split()]
    assert len(bars) == 3  # one hour with one delivered, one deferred and one bounced row
    assert len(re.findall(r'<tr><th scope="row">\d{4}-\d\d-\d\d \d\d:00 UTC</th>', page.text)) == 24  # the numbers table
    # The mailbox over the threshold (1 hard bounce in 2 sends) is flagged in the table and the chart.
    assert re.search(r'<tr class="over">\s*<th scope="row"><a href="/admin/log\?sender=anna%40hosted.test">', page.text)
    assert "pause threshold 5.0%" in page.text
    assert "slow down" in page.text

    empty = client.get("/admin/analytics", params={"window": "30d"})
    assert empty.status_code == 200 and 'aria-current="page">Last 30d' in empty.text

    bad = client.get("/admin/analytics", params={"window": "1y"})
    assert bad.status_code == 400 and "unknown window &#39;1y&#39;" in bad.text


def test_analytics_json_with_a_bearer_token(site: AdminSite) -> None:
    message_id = enqueue(site)
    add_log(site, message_id, utcnow(), DeliveryOutcome.BOUNCED, hard_bounce=True, reason="userunknown")
    with site.state.sessions.begin() as session:
        user = session.scalars(select(AdminUser).where(AdminUser.username == ADMIN)).one()
        token, _ = create_api_token(session, user, "reporting")
    with site.client() as script:
        answer = script.get("/admin/api/analytics", params={"window": "7d"}, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["window"]["name"] == "7d" and len(body["over_time"]) == 7
        assert body["totals"] == {"delivered": 0, "deferred": 0, "bounced": 1}
        assert body["failures_by_reason"] == [{"key": "userunknown", "deferred": 0, "bounced": 1, "total": 1}]
        wrong = script.get("/admin/api/analytics", params={"window": "1y"}, headers={"Authorization": f"Bearer {token}"})
        assert wrong.status_code == 400 and "unknown window" in wrong.json()["detail"]


# --- paused senders -------------------------------------------------------------------------------


def test_senders_resume_records_who(site: AdminSite, client: TestClient) -> None:
    with site.state.sessions.begin() as session:
        session.add_all(
            [
                SenderPause(
                    scope=PauseScope.MAILBOX, name="anna@hosted.test", trigger="hard-bounce-rate", detail="3 of 20 sends (15.0%)"
                ),
                SenderPause(
                    scope=PauseScope.DOMAIN,
                    name="old.test",
                    trigger="blocklisted",
                    detail="554 listed",
                    resumed_at=utcnow() - timedelta(days=1),
                    resumed_by="someone",
                ),
            ]
        )
    page = client.get("/admin/senders")
    assert page.status_code == 200
    active = page.text.split('id="active-pauses"')[1].split("</table>")[0]
    assert "anna@hosted.test" in active and "3 of 20 sends (15.0%)" in active and "old.test" not in active
    assert "old.test" in page.text.split('id="resumed-pauses"')[1]
    pause_id = int(re.search(r'action="/admin/senders/(\d+)/resume"', page.text).group(1))  # type: ignore[union-attr]

    assert client.post(f"/admin/senders/{pause_id}/resume", data={"csrf_token": "wrong"}).status_code == 403
    response = client.post(f"/admin/senders/{pause_id}/resume", data={"csrf_token": csrf(client)})
    assert response.status_code == 303 and response.headers["location"] == "/admin/senders"
    with site.state.sessions() as session:
        resumed = session.get(SenderPause, pause_id)
        assert resumed is not None and resumed.resumed_at is not None and resumed.resumed_by == ADMIN
    after = client.get("/admin/senders")
    assert f"anna@hosted.test resumed by {ADMIN}." in flashes(after.text)
    assert 'id="none-paused"' in after.text

    again = client.post(f"/admin/senders/{pause_id}/resume", data={"csrf_token": csrf(client)})
    assert again.status_code == 303
    assert f"anna@hosted.test was already resumed by {ADMIN}." in flashes(client.get("/admin/senders").text)


def test_log_source_is_shown(site: AdminSite, client: TestClient) -> None:
    message_id = enqueue(site)
    add_log(site, message_id, utcnow(), DeliveryOutcome.BOUNCED, source=LogSource.BOUNCE, hard_bounce=True)
    page = client.get("/admin/log")
    assert "<small>bounce</small>" in page.text and '<small class="hard">hard</small>' in page.text
