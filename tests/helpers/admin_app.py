"""The admin dashboard on a temporary database, and the steps every admin test repeats (log in, read CSRF)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coldrelay.config import Settings
from coldrelay.db import create_engine, session_factory, upgrade_database
from coldrelay.dns import Resolver
from coldrelay.web import create_app
from coldrelay.web.admin import AdminState, install_admin
from coldrelay.web.admin.auth import SESSION_COOKIE
from coldrelay.web.admin.tokens import start_session
from coldrelay.web.admin.users import create_admin, get_admin

ADMIN = "ops"
ADMIN_PASSWORD = "a long admin password"

# Pages that never look anything up still need a resolver; this one points at loopback port 9 (discard).
UNUSED_NAMESERVER = "127.0.0.1:9"

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class AdminSite:
    """An app with the dashboard installed, its state, and the database URL behind it."""

    app: FastAPI
    state: AdminState
    url: str

    def client(self, **options: object) -> TestClient:
        return TestClient(self.app, follow_redirects=False, **options)  # type: ignore[arg-type]

    def add_admin(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
        with self.state.sessions.begin() as session:
            create_admin(session, username, password)

    def close(self) -> None:
        self.state.engine.dispose()


def build_site(url: str, data_dir: Path, nameserver: str = UNUSED_NAMESERVER, *, migrate: bool = True) -> AdminSite:
    """``create_app()`` plus ``install_admin`` on the database at ``url`` (migrated here unless told otherwise)."""
    if migrate:
        upgrade_database(url)
    engine = create_engine(url)
    settings = Settings(data_dir=data_dir, database_url=url, hostname="box.admintest")
    state = AdminState(engine, session_factory(engine), settings, Resolver([nameserver], timeout=1.0, retries=0))
    app = create_app()
    install_admin(app, state)
    return AdminSite(app, state, url)


def seeded_database(directory: Path) -> Path:
    """A migrated SQLite file with the admin user in it, made once per module and copied for each test.

    Migrating and hashing a password (argon2, slow on purpose) for every test would make these files slow.
    """
    path = directory / "template.db"
    site = build_site(f"sqlite:///{path}", directory)
    site.add_admin()
    site.close()  # disposing checkpoints the WAL into the file, so a plain copy is complete
    return path


def site_from_template(template: Path, data_dir: Path, nameserver: str = UNUSED_NAMESERVER) -> AdminSite:
    """A fresh copy of ``seeded_database``'s file with the dashboard on it."""
    path = data_dir / "admin.db"
    shutil.copyfile(template, path)
    return build_site(f"sqlite:///{path}", data_dir, nameserver, migrate=False)


def csrf_from(html: str) -> str:
    """The CSRF token a page put in its forms."""
    match = _CSRF_FIELD.search(html)
    assert match, "no csrf_token field on the page"
    return match.group(1)


def log_in(client: TestClient, username: str = ADMIN, password: str = ADMIN_PASSWORD, next_url: str = "/admin") -> str:
    """Log in through the real form; returns the session's CSRF token (read from the home page)."""
    form = client.get("/admin/login")
    assert form.status_code == 200, form.text
    response = client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(form.text), "next": next_url},
    )
    assert response.status_code == 303, response.text
    home = client.get("/admin")
    assert home.status_code == 200, home.text
    return csrf_from(home.text)


def signed_in(site: AdminSite, username: str = ADMIN) -> tuple[TestClient, str]:
    """A client holding a fresh session cookie and that session's CSRF token, without the login form.

    For tests about the pages rather than logging in: it skips the argon2 verification (slow on purpose).
    """
    with site.state.sessions.begin() as session:
        user = get_admin(session, username)
        assert user is not None
        token, row = start_session(session, user, site.state.settings.admin.session_lifetime)
        csrf = row.csrf_token
    client = site.client()
    client.cookies.set(SESSION_COOKIE, token)
    return client, csrf
