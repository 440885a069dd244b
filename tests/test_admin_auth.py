"""The admin dashboard's gate: login (CSRF, argon2, throttle), session cookies, expiry, logout, CSRF on every
state-changing POST, API tokens, and the ``coldrelay admin`` commands that make users and tokens."""

from __future__ import annotations

import hashlib
import re
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from coldrelay.cli.admin_cmd import admin_app
from coldrelay.cli.context import AppContext
from coldrelay.config import load_settings
from coldrelay.db import AdminSession, AdminUser, ApiToken, Domain, create_engine, session_factory, utcnow
from coldrelay.web import create_app
from coldrelay.web.admin.throttle import LoginThrottle
from coldrelay.web.admin.users import authenticate_admin
from conftest import database_url
from helpers.admin_app import (
    ADMIN,
    ADMIN_PASSWORD,
    AdminSite,
    build_site,
    csrf_from,
    log_in,
    seeded_database,
    signed_in,
    site_from_template,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_database(tmp_path_factory.mktemp("admin-template"))


@pytest.fixture
def site(template: Path, tmp_path: Path) -> Iterator[AdminSite]:
    built = site_from_template(template, tmp_path)
    yield built
    built.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AdminSite]:
    """The dashboard on SQLite and on PostgreSQL: session expiry compares stored times with now on both."""
    for url in database_url(request.param, request, tmp_path, migrate=True):
        built = build_site(url, tmp_path, migrate=False)
        built.add_admin()
        yield built
        built.close()


def _sessions(site: AdminSite) -> list[AdminSession]:
    with site.state.sessions() as session:
        return list(session.scalars(select(AdminSession)))


def _login_post(client: TestClient, username: str, password: str, next_url: str = "/admin") -> tuple[int, str]:
    form = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(form.text), "next": next_url},
    )
    return response.status_code, response.headers.get("location", response.text)


# --- without install_admin ------------------------------------------------------------------------------------------


def test_public_app_has_no_dashboard() -> None:
    client = TestClient(create_app())
    assert client.get("/admin").status_code == 404
    assert client.get("/admin/login").status_code == 404
    assert client.get("/admin/api/domains").status_code == 404


# --- login -----------------------------------------------------------------------------------------------------------


def test_anonymous_browser_is_sent_to_login_and_back(site: AdminSite) -> None:
    client = site.client()
    response = client.get("/admin/mailboxes?domain=example.org")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/mailboxes%3Fdomain%3Dexample.org"
    status, location = _login_post(client, ADMIN, ADMIN_PASSWORD, next_url="/admin/mailboxes?domain=example.org")
    assert (status, location) == (303, "/admin/mailboxes?domain=example.org")
    assert client.get(location).status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/admin", "/administrator", "/smtp-errors", ""])
def test_login_never_redirects_outside_the_dashboard(site: AdminSite, target: str) -> None:
    assert _login_post(site.client(), ADMIN, ADMIN_PASSWORD, next_url=target) == (303, "/admin")


def test_session_cookie_is_random_httponly_lax_and_only_its_hash_is_stored(site: AdminSite) -> None:
    client = site.client()
    form = client.get("/admin/login")
    response = client.post(
        "/admin/login", data={"username": "OPS", "password": ADMIN_PASSWORD, "csrf_token": csrf_from(form.text)}
    )
    assert response.status_code == 303
    cookie_header = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("coldrelay_admin="))
    token = cookie_header.split(";", 1)[0].split("=", 1)[1]
    attributes = {part.strip().lower() for part in cookie_header.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/admin"} <= attributes
    assert "secure" not in attributes  # plain http here; see the https test below
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    rows = _sessions(site)
    assert [row.token_hash for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in {rows[0].token_hash, rows[0].csrf_token}
    lifetime = rows[0].expires_at - rows[0].created_at
    assert lifetime == timedelta(seconds=site.state.settings.admin.session_lifetime)
    with site.state.sessions() as session:
        assert session.scalars(select(AdminUser.last_login_at)).one() is not None


def test_cookies_are_secure_over_https(site: AdminSite) -> None:
    client = site.client(base_url="https://testserver")
    form = client.get("/admin/login")
    assert "secure" in form.headers["set-cookie"].lower()
    response = client.post(
        "/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf_from(form.text)}
    )
    session_cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("coldrelay_admin="))
    assert "secure" in [part.strip().lower() for part in session_cookie.split(";")]


def test_login_form_needs_its_csrf_cookie(site: AdminSite) -> None:
    client = site.client()
    form = client.get("/admin/login")
    token = csrf_from(form.text)
    client.cookies.clear()  # a cross-site form post: the right field, but not this browser's cookie
    response = client.post("/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 403
    assert "log in again" in response.text
    assert 'id="login-form"' in response.text
    assert _sessions(site) == []
    client.get("/admin/login")
    response = client.post("/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 403
    assert _sessions(site) == []


def test_wrong_password_and_unknown_user_get_the_same_answer(site: AdminSite) -> None:
    client = site.client()
    wrong = _login_post(client, ADMIN, "not the password at all")
    unknown = _login_post(client, "nobody", ADMIN_PASSWORD)
    assert wrong[0] == unknown[0] == 401
    assert "Wrong username or password." in wrong[1] and "Wrong username or password." in unknown[1]
    assert _sessions(site) == []


def test_unknown_user_costs_an_argon2_verification_too(site: AdminSite) -> None:
    """Without the dummy verification an unknown name answers in microseconds and reveals which names exist."""

    def timed(username: str) -> float:
        with site.state.sessions() as session:
            start = time.perf_counter()
            assert authenticate_admin(session, username, "wrong password here") is None
            return time.perf_counter() - start

    known = statistics.median(timed(ADMIN) for _ in range(3))
    unknown = statistics.median(timed("nobody-by-that-name") for _ in range(3))
    assert unknown > 0.4 * known, (known, unknown)


def test_repeated_failures_lock_that_username_from_that_address(site: AdminSite) -> None:
    site.state.throttle = LoginThrottle(max_failures=3)  # the default is 5; fewer argon2 runs keep the test quick
    client = site.client()
    for _ in range(site.state.throttle.max_failures):
        assert _login_post(client, ADMIN, "wrong wrong wrong")[0] == 401
    status, page = _login_post(client, ADMIN, ADMIN_PASSWORD)  # even the right password is refused now
    assert status == 429
    assert "Too many failed logins" in page
    assert _sessions(site) == []
    # Another address is not locked out (a username is not a kill switch for everyone).
    other = site.client(client=("198.51.100.7", 40000))
    assert _login_post(other, ADMIN, ADMIN_PASSWORD)[0] == 303


def test_throttle_unlocks_after_the_lockout_and_forgets_old_failures() -> None:
    now = [1000.0]
    throttle = LoginThrottle(max_failures=3, window=60, lockout=300, clock=lambda: now[0])
    throttle.failed("ops", "192.0.2.1")
    throttle.failed("ops", "192.0.2.1")
    now[0] += 61  # those two are outside the window now
    throttle.failed("OPS", "192.0.2.1")
    assert throttle.retry_after("ops", "192.0.2.1") == 0
    throttle.failed("ops", "192.0.2.1")
    throttle.failed("ops", "192.0.2.1")
    assert throttle.retry_after("ops", "192.0.2.1") == 300
    assert throttle.retry_after("ops", "192.0.2.2") == 0
    now[0] += 300
    assert throttle.retry_after("ops", "192.0.2.1") == 0


# --- sessions --------------------------------------------------------------------------------------------------------


def test_expired_session_goes_back_to_login_and_its_row_is_deleted(any_site: AdminSite) -> None:
    client, _ = signed_in(any_site)
    assert client.get("/admin/domains").status_code == 200
    with any_site.state.sessions.begin() as session:
        session.execute(update(AdminSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = client.get("/admin/domains")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/domains"
    assert _sessions(any_site) == []


def test_logout_deletes_the_session_so_a_copied_cookie_is_worthless(any_site: AdminSite) -> None:
    client = any_site.client()
    csrf = log_in(client)
    copied = client.cookies.get("coldrelay_admin")
    response = client.post("/admin/logout", data={"csrf_token": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login")
    assert _sessions(any_site) == []
    thief = any_site.client(cookies={"coldrelay_admin": copied})
    assert thief.get("/admin").status_code == 303


def test_forged_cookie_is_not_a_session(site: AdminSite) -> None:
    client = site.client(cookies={"coldrelay_admin": "x" * 43})
    assert client.get("/admin").status_code == 303


# --- CSRF ------------------------------------------------------------------------------------------------------------

STATE_CHANGING_POSTS = [
    ("/admin/logout", {}),
    ("/admin/domains", {"name": "csrf.example"}),
    ("/admin/mailboxes", {"address": "anna@csrf.example", "password": "long enough secret"}),
    ("/admin/mailboxes/bulk", {"domains": "csrf.example", "names": "Anna Berg", "per_domain": "1"}),
    ("/admin/mailboxes/export", {"download": "x", "format": "csv"}),
    ("/admin/mailboxes/disable", {"address": "anna@csrf.example"}),
    ("/admin/mailboxes/enable", {"address": "anna@csrf.example"}),
    ("/admin/tokens", {"name": "script"}),
    ("/admin/tokens/1/revoke", {}),
]


@pytest.mark.parametrize(("path", "fields"), STATE_CHANGING_POSTS, ids=[p for p, _ in STATE_CHANGING_POSTS])
def test_every_state_changing_post_checks_csrf(site: AdminSite, path: str, fields: dict[str, str]) -> None:
    client, _ = signed_in(site)
    for token in (None, "", "wrong-token"):
        data = dict(fields) if token is None else {**fields, "csrf_token": token}
        response = client.post(path, data=data)
        assert response.status_code == 403, (token, response.text)
        assert "security token" in response.text
        assert "Traceback" not in response.text
    assert len(_sessions(site)) == 1  # not logged out
    with site.state.sessions() as session:
        assert session.scalars(select(Domain)).all() == []
        assert session.scalars(select(ApiToken)).all() == []


# --- API tokens ------------------------------------------------------------------------------------------------------


def _create_token_in_page(client: TestClient, csrf: str, name: str = "reporting") -> str:
    page = client.post("/admin/tokens", data={"csrf_token": csrf, "name": name})
    assert page.status_code == 200
    match = re.search(r'<pre id="new-token">([^<]+)</pre>', page.text)
    assert match
    return match.group(1)


def test_api_token_reads_the_api_and_records_its_use(site: AdminSite) -> None:
    browser, csrf = signed_in(site)
    browser.post("/admin/domains", data={"csrf_token": csrf, "name": "api.example"})
    token = _create_token_in_page(browser, csrf)
    assert token.startswith("crt_")
    assert token not in browser.get("/admin/tokens").text  # shown once only
    with site.state.sessions() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.last_used_at is None

    script = site.client()
    response = script.get("/admin/api/domains", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert [d["name"] for d in response.json()["domains"]] == ["api.example"]
    mailboxes = script.get("/admin/api/mailboxes?domain=api.example", headers={"Authorization": f"Bearer {token}"})
    assert mailboxes.json() == {"mailboxes": []}
    with site.state.sessions() as session:
        assert session.scalars(select(ApiToken.last_used_at)).one() is not None


@pytest.mark.parametrize("header", ["Bearer crt_not-a-real-token", "Bearer ", "Basic b3BzOnNlY3JldA==", None])
def test_api_without_a_valid_token_is_401_json(site: AdminSite, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = site.client().get("/admin/api/mailboxes", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "detail" in response.json()


def test_bearer_token_does_not_open_the_html_pages(site: AdminSite) -> None:
    browser, csrf = signed_in(site)
    token = _create_token_in_page(browser, csrf)
    response = site.client().get("/admin/domains", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 303


def test_revoked_token_stops_working(site: AdminSite) -> None:
    browser, csrf = signed_in(site)
    token = _create_token_in_page(browser, csrf)
    with site.state.sessions() as session:
        token_id = session.scalars(select(ApiToken.id)).one()
    assert browser.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 303
    assert "Token revoked" in browser.get("/admin/tokens").text
    assert site.client().get("/admin/api/domains", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    # A mangled id is a message, not a 422.
    assert browser.post("/admin/tokens/abc/revoke", data={"csrf_token": csrf}).status_code == 303
    assert "no longer exists" in browser.get("/admin/tokens").text


def test_token_without_a_name_is_refused_on_the_page(site: AdminSite) -> None:
    browser, csrf = signed_in(site)
    page = browser.post("/admin/tokens", data={"csrf_token": csrf, "name": "   "})
    assert page.status_code == 400
    assert "needs a name" in page.text


# --- the CLI -----------------------------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    """``coldrelay --data-dir D admin ...`` without touching cli/main.py (the sub-app is registered there separately)."""
    cli = typer.Typer()

    @cli.callback()
    def root(ctx: typer.Context, data_dir: Annotated[Path, typer.Option("--data-dir")]) -> None:
        ctx.obj = AppContext(data_dir)

    cli.add_typer(admin_app, name="admin")
    return cli


def _run(data_dir: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(_cli(), ["--data-dir", str(data_dir), "admin", *args], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _site_for(data_dir: Path) -> AdminSite:
    settings = load_settings(data_dir)
    return build_site(settings.database_url, data_dir, migrate=False)


def test_cli_admin_create_generates_a_password_once_and_it_logs_in(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, output = _run(data, "create", "Anna")
    assert code == 0, output
    match = re.search(r"Password \(shown once, only its hash is stored\): (\S+)", output)
    assert match, output
    site = _site_for(data)
    try:
        assert _login_post(site.client(), "anna", match.group(1))[0] == 303
    finally:
        site.close()


def test_cli_admin_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _run(data, "create", "ops", "--password", "a long admin password")[0] == 0
    code, output = _run(data, "create", "OPS", "--password", "another long password")
    assert code == 1 and "already exists" in output
    code, output = _run(data, "create", "new", "--password", "short")
    assert code == 2 and "at least 12 characters" in output
    code, output = _run(data, "create", "bad name!")
    assert code == 2 and "not a valid admin username" in output
    code, output = _run(data, "passwd", "ghost", "--password", "a long admin password")
    assert code == 1 and "no admin user" in output
    code, output = _run(data, "token", "create", "reporting", "--user", "ghost")
    assert code == 1 and "no admin user" in output
    assert "Traceback" not in output


def test_cli_passwd_changes_the_password_and_ends_sessions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _run(data, "create", "ops", "--password", ADMIN_PASSWORD)
    site = _site_for(data)
    try:
        browser = site.client()
        log_in(browser)
        code, output = _run(data, "passwd", "ops", input="the new long password\nthe new long password\n")
        assert code == 0, output
        assert "1 session(s) logged out" in output
        assert browser.get("/admin").status_code == 303
        assert _login_post(site.client(), "ops", ADMIN_PASSWORD)[0] == 401
        assert _login_post(site.client(), "ops", "the new long password")[0] == 303
    finally:
        site.close()


def test_cli_token_create_shows_a_working_token_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _run(data, "create", "ops", "--password", ADMIN_PASSWORD)
    code, output = _run(data, "token", "create", "reporting", "--user", "ops")
    assert code == 0, output
    token = output.strip().splitlines()[-1]
    assert token.startswith("crt_")
    engine = create_engine(load_settings(data).database_url)
    with session_factory(engine)() as session:
        assert session.scalars(select(ApiToken.name)).one() == "reporting"
    engine.dispose()
    site = _site_for(data)
    try:
        assert site.client().get("/admin/api/domains", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        site.close()


def test_a_new_login_clears_sessions_that_expired_unused(site: AdminSite) -> None:
    signed_in(site)
    with site.state.sessions.begin() as session:
        session.execute(update(AdminSession).values(expires_at=utcnow() - timedelta(hours=1)))
    client, _ = signed_in(site)
    assert len(_sessions(site)) == 1
    assert client.get("/admin").status_code == 200
