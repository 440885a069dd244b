"""The dashboard's home, domains and mailboxes pages: live DNS status of a domain's records, mailbox creation
(one and bulk) with the one-time credentials download, enable/disable, filters, and form errors as pages."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from coldrelay.db import (
    Mailbox,
    MessageState,
    PauseScope,
    QueuedMessage,
    SenderPause,
    create_domain,
    get_domain,
    utcnow,
    verify_password,
)
from coldrelay.web.admin.downloads import Credential, CredentialStash
from helpers.admin_app import AdminSite, csrf_from, seeded_database, signed_in, site_from_template

ALPHA, BETA = "alpha.admintest", "beta.admintest"
KNOWN_PASSWORD = "known mailbox password"
_KNOWN_HASH = PasswordHasher().hash(KNOWN_PASSWORD)  # rows added directly share one hash: argon2 is slow on purpose


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin user and two hosted domains, made once (DKIM keys and argon2 hashes take time)."""
    directory = tmp_path_factory.mktemp("accounts-template")
    path = seeded_database(directory)
    site = site_from_template(path, directory)
    with site.state.sessions.begin() as session:
        create_domain(session, ALPHA)
        create_domain(session, BETA)
    site.close()
    return directory / "admin.db"


@pytest.fixture
def site(template: Path, tmp_path: Path) -> Iterator[AdminSite]:
    built = site_from_template(template, tmp_path)
    yield built
    built.close()


@pytest.fixture
def browser(site: AdminSite) -> tuple[TestClient, str]:
    return signed_in(site)


def _add_mailboxes(site: AdminSite, *addresses: str, enabled: bool = True) -> None:
    with site.state.sessions.begin() as session:
        for address in addresses:
            domain = get_domain(session, address.rpartition("@")[2])
            assert domain is not None
            session.add(Mailbox(address=address, domain=domain, password_hash=_KNOWN_HASH, enabled=enabled))


def _mailboxes(site: AdminSite) -> dict[str, bool]:
    with site.state.sessions() as session:
        return {m.address: m.enabled for m in session.scalars(select(Mailbox))}


def _flashes(html: str) -> list[str]:
    return [text.strip() for text in re.findall(r'<p class="flash [a-z]+"[^>]*>([^<]*)</p>', html)]


def _download_id(location: str) -> str:
    match = re.fullmatch(r"/admin/mailboxes\?download=([A-Za-z0-9_-]+)", location)
    assert match, location
    return match.group(1)


def _export(client: TestClient, csrf: str, download: str, fmt: str) -> list[dict[str, str]]:
    response = client.post("/admin/mailboxes/export", data={"csrf_token": csrf, "download": download, "format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["cache-control"] == "no-store"
    assert re.fullmatch(
        rf'attachment; filename="coldrelay-mailboxes-{fmt}-\d{{8}}-\d{{6}}\.csv"', response.headers["content-disposition"]
    )
    return list(csv.DictReader(io.StringIO(response.text)))


# --- home ------------------------------------------------------------------------------------------------------------


def test_home_counts_domains_mailboxes_queue_and_paused_senders(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    _add_mailboxes(site, f"anna@{ALPHA}", f"bob@{ALPHA}")
    _add_mailboxes(site, f"old@{BETA}", enabled=False)
    with site.state.sessions.begin() as session:
        for state in (MessageState.DEFERRED, MessageState.DEFERRED, MessageState.DELIVERED):
            session.add(QueuedMessage(sender=f"anna@{ALPHA}", recipients=["x@example.net"], message_blob=b"x", state=state))
        session.add(SenderPause(scope=PauseScope.MAILBOX, name=f"anna@{ALPHA}", trigger="manual", detail="test"))
        session.add(SenderPause(scope=PauseScope.DOMAIN, name=BETA, trigger="manual", detail="t", resumed_at=utcnow()))
    page = browser[0].get("/admin").text

    def figure(element_id: str) -> str:
        match = re.search(rf'id="{element_id}"><span class="figure">(\d+)</span>', page)
        assert match, element_id
        return match.group(1)

    assert figure("count-domains") == "2"
    assert figure("count-mailboxes") == "2"
    assert "1 disabled" in page
    assert figure("count-paused") == "1"  # the resumed pause is history, not a paused sender
    assert (figure("queue-deferred"), figure("queue-delivered"), figure("queue-queued")) == ("2", "1", "0")
    assert 'href="/admin/queue?state=deferred"' in page


def test_nav_marks_the_current_section(browser: tuple[TestClient, str]) -> None:
    page = browser[0].get("/admin/mailboxes").text
    assert '<a href="/admin/mailboxes" class="active" aria-current="page">Mailboxes</a>' in page
    assert '<a href="/admin/domains">Domains</a>' in page
    for href in ("/admin/queue", "/admin/log", "/admin/analytics", "/admin/senders", "/admin/tokens"):
        assert f'href="{href}"' in page
    assert 'action="/admin/logout"' in page


# --- domains ---------------------------------------------------------------------------------------------------------


def test_add_domain_leads_to_its_record_plan(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    client, csrf = browser
    response = client.post("/admin/domains", data={"csrf_token": csrf, "name": "New-Domain.Example."})
    assert (response.status_code, response.headers["location"]) == (303, "/admin/domains/new-domain.example")
    listing = client.get("/admin/domains").text
    assert '<a href="/admin/domains/new-domain.example">new-domain.example</a>' in listing
    with site.state.sessions() as session:
        domain = get_domain(session, "new-domain.example")
        assert domain is not None and [key.selector for key in domain.dkim_keys] == ["s1"]


@pytest.mark.parametrize(
    ("name", "message"),
    [(ALPHA, "already hosted"), ("not a domain", "not a valid domain name"), ("", "not a valid domain name")],
)
def test_bad_domain_comes_back_as_the_form_with_a_message(browser: tuple[TestClient, str], name: str, message: str) -> None:
    client, csrf = browser
    response = client.post("/admin/domains", data={"csrf_token": csrf, "name": name})
    assert response.status_code == 400
    assert message in response.text
    assert 'id="domain-form"' in response.text
    assert f'value="{name}"' in response.text


def test_unknown_domain_page_is_404(browser: tuple[TestClient, str]) -> None:
    assert browser[0].get("/admin/domains/missing.admintest").status_code == 404
    assert browser[0].get("/admin/domains/not%20a%20name").status_code == 404


def test_domain_page_shows_each_records_live_status(template: Path, tmp_path: Path, dns_server: object) -> None:
    """partial.admintest in tests/zones/admin.zone: the MX as planned, a foreign SPF, no DMARC, no DKIM."""
    site = site_from_template(template, tmp_path, nameserver=dns_server.address)  # type: ignore[attr-defined]
    try:
        client, csrf = signed_in(site)
        client.post("/admin/domains", data={"csrf_token": csrf, "name": "partial.admintest"})
        page = client.get("/admin/domains/partial.admintest").text
    finally:
        site.close()
    rows = dict(
        ((rtype, name), status)
        for status, rtype, name in re.findall(r'data-status="(\w+)" data-type="(\w+)" data-name="([^"]+)"', page)
    )
    assert rows[("MX", "partial.admintest")] == "present"
    assert rows[("TXT", "partial.admintest")] == "wrong"  # SPF names another sender
    assert rows[("TXT", "_dmarc.partial.admintest")] == "missing"
    assert rows[("TXT", "s1._domainkey.partial.admintest")] == "missing"
    assert 'class="readiness bad"' in page
    assert "Domain partial.admintest added" in page  # the flash from the add
    assert "s1._domainkey" in re.search(r'<pre id="zone">(.*?)</pre>', page, re.S).group(1)  # type: ignore[union-attr]


def test_domain_page_says_when_lookups_got_no_answer(browser: tuple[TestClient, str]) -> None:
    """The site's resolver asks 127.0.0.1:9, where nothing answers: unknown is not the same as missing."""
    page = browser[0].get(f"/admin/domains/{ALPHA}").text
    assert set(re.findall(r'data-status="(\w+)"', page)) == {"failed"}
    assert "could not be checked" in page
    assert "missing or wrong" not in page


# --- one mailbox -------------------------------------------------------------------------------------------------------


def test_create_one_mailbox_offers_its_generated_password_once(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    client, csrf = browser
    response = client.post(
        "/admin/mailboxes",
        data={"csrf_token": csrf, "address": f"Anna@{ALPHA}", "display_name": "Anna Berg", "password": "", "daily_cap": "40"},
    )
    assert response.status_code == 303
    download = _download_id(response.headers["location"])
    page = client.get(response.headers["location"]).text
    assert 'id="download"' in page and f"anna@{ALPHA}" in page
    rows = _export(client, csrf, download, "csv")
    assert [(r["address"], r["name"], r["daily_limit"], r["smtp_host"]) for r in rows] == [
        (f"anna@{ALPHA}", "Anna Berg", "40", f"box.{ALPHA}")
    ]
    password = rows[0]["password"]
    assert len(password) >= 16
    with site.state.sessions() as session:
        mailbox = session.scalars(select(Mailbox)).one()
        assert password not in mailbox.password_hash
        assert verify_password(session, f"anna@{ALPHA}", password) is not None
    # Once only: the second try finds nothing, and the page says so.
    again = client.post("/admin/mailboxes/export", data={"csrf_token": csrf, "download": download, "format": "csv"})
    assert (again.status_code, again.headers["location"]) == (303, "/admin/mailboxes")
    assert any("expired or was already taken" in text for text in _flashes(client.get("/admin/mailboxes").text))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "anna@unhosted.admintest", "password": "long enough secret"}, "is not hosted here"),
        ({"address": f"anna@{ALPHA}", "password": "short"}, "at least 8 characters"),
        ({"address": f"anna@{ALPHA}", "daily_cap": "lots"}, "whole number"),
        ({"address": "not an address"}, "not a valid email address"),
    ],
)
def test_bad_mailbox_comes_back_as_the_form_with_a_message(
    site: AdminSite, browser: tuple[TestClient, str], fields: dict[str, str], message: str
) -> None:
    client, csrf = browser
    response = client.post("/admin/mailboxes", data={"csrf_token": csrf, **fields})
    assert response.status_code == 400
    assert message in response.text
    assert f'value="{fields["address"]}"' in response.text  # what was typed is kept
    assert _mailboxes(site) == {}


def test_duplicate_mailbox_is_a_message(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    _add_mailboxes(site, f"anna@{ALPHA}")
    response = browser[0].post("/admin/mailboxes", data={"csrf_token": browser[1], "address": f"ANNA@{ALPHA}"})
    assert response.status_code == 400
    assert "already exists" in response.text


# --- bulk --------------------------------------------------------------------------------------------------------------


def test_bulk_create_across_domains_and_export_exactly_those(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    client, csrf = browser
    _add_mailboxes(site, f"anna.berg@{ALPHA}")  # taken: the next pattern is used for Anna at alpha
    response = client.post(
        "/admin/mailboxes/bulk",
        data={
            "csrf_token": csrf,
            "domains": [ALPHA, BETA],
            "names": "Anna Berg\nBob Stone\n# a comment\n\nCleo Park\n",
            "per_domain": "2",
            "pattern": "first.last",
            "daily_cap": "",
        },
    )
    assert response.status_code == 303, response.text
    download = _download_id(response.headers["location"])
    page = client.get(response.headers["location"]).text
    assert "4 mailboxes created" in " ".join(_flashes(page))
    created = set(_mailboxes(site)) - {f"anna.berg@{ALPHA}"}
    # Names are dealt across the domains in order; Anna's first choice at alpha was taken, so the next pattern served.
    assert created == {f"anna@{ALPHA}", f"bob.stone@{ALPHA}", f"cleo.park@{BETA}", f"anna.berg@{BETA}"}
    rows = _export(client, csrf, download, "smartlead")
    assert {row["from_email"] for row in rows} == created  # exactly this run's mailboxes, not the one that existed
    assert all(row["max_email_per_day"] == "30" and len(row["password"]) >= 16 for row in rows)  # default cap 50 - warm-up 20
    with site.state.sessions() as session:
        assert verify_password(session, rows[0]["from_email"], rows[0]["password"]) is not None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"names": "Anna Berg", "per_domain": "1"}, "at least one domain"),
        ({"domains": ALPHA, "names": "", "per_domain": "1"}, "no names"),
        ({"domains": ALPHA, "names": "Anna Berg", "per_domain": "two"}, "whole number"),
        ({"domains": ALPHA, "names": "Anna Berg", "per_domain": "500"}, "1 to 100"),
        ({"domains": "unhosted.admintest", "names": "Anna Berg", "per_domain": "1"}, "not hosted here"),
        ({"domains": ALPHA, "names": "Anna Berg", "per_domain": "1", "pattern": "nope"}, "Unknown address pattern"),
        ({"domains": ALPHA, "names": "Anna Berg", "per_domain": "1", "daily_cap": "-3"}, "whole number"),
    ],
)
def test_bad_bulk_request_comes_back_with_a_message_and_creates_nothing(
    site: AdminSite, browser: tuple[TestClient, str], fields: dict[str, str], message: str
) -> None:
    client, csrf = browser
    response = client.post("/admin/mailboxes/bulk", data={"csrf_token": csrf, **fields})
    assert response.status_code == 400
    assert message in response.text, _flashes(response.text)
    assert 'id="bulk-form"' in response.text
    assert _mailboxes(site) == {}


# --- downloads ---------------------------------------------------------------------------------------------------------


def test_another_admin_cannot_take_the_download(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    client, csrf = browser
    response = client.post(
        "/admin/mailboxes", data={"csrf_token": csrf, "address": f"anna@{ALPHA}", "password": "long enough secret"}
    )
    download = _download_id(response.headers["location"])
    site.add_admin("second", "another long password")
    other, other_csrf = signed_in(site, "second")
    assert 'id="download"' not in other.get(f"/admin/mailboxes?download={download}").text
    taken = other.post("/admin/mailboxes/export", data={"csrf_token": other_csrf, "download": download, "format": "csv"})
    assert taken.status_code == 303
    assert [row["address"] for row in _export(client, csrf, download, "csv")] == [f"anna@{ALPHA}"]


def test_stash_forgets_credentials_after_ten_minutes() -> None:
    now = [0.0]
    stash = CredentialStash(clock=lambda: now[0])
    download = stash.put(1, [Credential("anna@example.org", "secret password")])
    assert len(download) >= 32
    assert stash.peek(download, 2) is None
    now[0] += 599
    assert stash.peek(download, 1) == (Credential("anna@example.org", "secret password"),)
    now[0] += 2
    assert stash.take(download, 1) is None


# --- list, filter, enable/disable --------------------------------------------------------------------------------------


def test_filter_by_domain(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    _add_mailboxes(site, f"anna@{ALPHA}", f"bob@{BETA}")
    page = browser[0].get(f"/admin/mailboxes?domain={BETA}").text
    assert re.findall(r'<tr data-address="([^"]+)"', page) == [f"bob@{BETA}"]
    everything = browser[0].get("/admin/mailboxes").text
    assert re.findall(r'<tr data-address="([^"]+)"', everything) == [f"anna@{ALPHA}", f"bob@{BETA}"]
    bad = browser[0].get("/admin/mailboxes?domain=not a domain")
    assert bad.status_code == 200 and "is not a domain name" in bad.text


def test_disable_and_enable_a_mailbox(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    client, csrf = browser
    _add_mailboxes(site, f"anna@{ALPHA}")
    response = client.post("/admin/mailboxes/disable", data={"csrf_token": csrf, "address": f"anna@{ALPHA}", "back": ALPHA})
    assert (response.status_code, response.headers["location"]) == (303, f"/admin/mailboxes?domain={ALPHA}")
    assert _mailboxes(site) == {f"anna@{ALPHA}": False}
    with site.state.sessions() as session:
        assert verify_password(session, f"anna@{ALPHA}", KNOWN_PASSWORD) is None  # its SMTP login is refused now
    page = client.get(response.headers["location"]).text
    assert f'<tr data-address="anna@{ALPHA}" data-enabled="no">' in page
    assert any("disabled" in text for text in _flashes(page))
    client.post("/admin/mailboxes/enable", data={"csrf_token": csrf, "address": f"anna@{ALPHA}"})
    assert _mailboxes(site) == {f"anna@{ALPHA}": True}
    missing = client.post("/admin/mailboxes/disable", data={"csrf_token": csrf, "address": f"ghost@{ALPHA}"})
    assert missing.status_code == 303
    assert any("There is no mailbox" in text for text in _flashes(client.get("/admin/mailboxes").text))


def test_api_lists_mailboxes_without_secrets(site: AdminSite, browser: tuple[TestClient, str]) -> None:
    _add_mailboxes(site, f"anna@{ALPHA}")
    _add_mailboxes(site, f"bob@{BETA}", enabled=False)
    response = browser[0].get(f"/admin/api/mailboxes?domain={BETA}")  # a logged-in browser may read the API too
    assert response.status_code == 200
    (only,) = response.json()["mailboxes"]
    assert (only["address"], only["enabled"], only["daily_cap"]) == (f"bob@{BETA}", False, None)
    assert "password" not in response.text and "argon2" not in response.text
    assert browser[0].get("/admin/api/mailboxes?domain=not a domain").status_code == 400
    domains = browser[0].get("/admin/api/domains").json()["domains"]
    assert [(d["name"], d["mailboxes"], d["dkim_selectors"]) for d in domains] == [(ALPHA, 1, ["s1"]), (BETA, 1, ["s1"])]


def test_pages_use_the_forms_csrf_token(browser: tuple[TestClient, str]) -> None:
    """Every form on the mailboxes page carries the session's token (a missing one would make it 403 for people)."""
    client, csrf = browser
    page = client.get("/admin/mailboxes").text
    post_forms = re.findall(r'<form method="post"[^>]*>(.*?)</form>', page, re.S)
    assert post_forms
    assert all(csrf_from(form) == csrf for form in post_forms)
