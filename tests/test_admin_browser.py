"""A real headless Chromium drives the dashboard: log in as an admin made by the CLI, add a domain, bulk-create
mailboxes, download their logins as a CSV file, log out."""

from __future__ import annotations

import csv
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select
from typer.testing import CliRunner

from coldrelay.cli.admin_cmd import admin_app
from coldrelay.cli.context import AppContext
from coldrelay.config import load_settings
from coldrelay.db import Mailbox, create_engine, session_factory, verify_password
from coldrelay.dns import Resolver
from coldrelay.web import create_app
from coldrelay.web.admin import AdminState, install_admin
from conftest import free_port

pytestmark = pytest.mark.browser

DOMAIN = "browser.admintest"


def _create_admin_with_cli(data_dir: Path) -> str:
    """``coldrelay admin create ops`` (the sub-app on a local root, as cli/main.py will mount it); returns the password."""
    cli = typer.Typer()

    @cli.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = AppContext(data_dir)

    cli.add_typer(admin_app, name="admin")
    result = CliRunner().invoke(cli, ["admin", "create", "ops"])
    assert result.exit_code == 0, result.output
    match = re.search(r"Password \(shown once, only its hash is stored\): (\S+)", result.output)
    assert match, result.output
    return match.group(1)


@pytest.fixture
def dashboard(tmp_path: Path, dns_server: object) -> Iterator[tuple[str, str, AdminState]]:
    """The app with the dashboard on the data directory's database, served by uvicorn on a free loopback port."""
    data_dir = tmp_path / "data"
    password = _create_admin_with_cli(data_dir)
    settings = load_settings(data_dir)
    engine = create_engine(settings.database_url)
    resolver = Resolver([dns_server.address], timeout=1.0, retries=0)  # type: ignore[attr-defined]
    state = AdminState(engine, session_factory(engine), settings, resolver)
    app = create_app()
    install_admin(app, state)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the web app did not start within 15 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", password, state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(downloads: Path) -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "install chromium and chromium-driver (make test does it with apt-get)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    # Headless Chromium ignores the download preference unless told through DevTools as well.
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


def _wait_for_csv(folder: Path, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.suffix == ".csv"]
        if done and not any(p.name.endswith(".crdownload") for p in folder.iterdir()):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no CSV downloaded into {folder}: {list(folder.iterdir())}")


def test_log_in_bulk_create_download_and_log_out(
    browser: webdriver.Chrome, dashboard: tuple[str, str, AdminState], downloads: Path
) -> None:
    base, password, state = dashboard
    wait = WebDriverWait(browser, 20)

    browser.get(f"{base}/admin/mailboxes")  # not logged in: the login page, which brings us back afterwards
    wait.until(expected_conditions.presence_of_element_located((By.ID, "login-form")))
    browser.find_element(By.ID, "username").send_keys("ops")
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(expected_conditions.url_to_be(f"{base}/admin/mailboxes"))

    browser.get(f"{base}/admin/domains")
    browser.find_element(By.ID, "domain-name").send_keys(DOMAIN)
    browser.find_element(By.CSS_SELECTOR, "#domain-form button").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "records")))
    assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-type="MX"][data-status="missing"]')  # nothing published yet

    browser.get(f"{base}/admin/mailboxes")
    Select(browser.find_element(By.ID, "bulk-domains")).select_by_value(DOMAIN)
    browser.find_element(By.ID, "bulk-names").send_keys("Anna Berg\nBob Stone\nCleo Park")
    count = browser.find_element(By.ID, "bulk-count")
    count.clear()
    count.send_keys("3")
    Select(browser.find_element(By.ID, "bulk-pattern")).select_by_value("flast")
    browser.find_element(By.ID, "bulk-submit").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "download")))
    assert "3 mailboxes created" in browser.find_element(By.CSS_SELECTOR, ".flash.ok").text

    Select(browser.find_element(By.ID, "export-format")).select_by_value("csv")
    browser.find_element(By.ID, "export-submit").click()
    exported = _wait_for_csv(downloads)
    with exported.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["address"] for row in rows) == [f"aberg@{DOMAIN}", f"bstone@{DOMAIN}", f"cpark@{DOMAIN}"]
    with state.sessions() as session:
        assert sorted(session.scalars(select(Mailbox.address))) == sorted(row["address"] for row in rows)
        assert verify_password(session, rows[0]["address"], rows[0]["password"]) is not None

    browser.find_element(By.ID, "logout").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "login-form")))
    browser.get(f"{base}/admin/mailboxes")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "login-form")))
    assert "/admin/login?next=/admin/mailboxes" in browser.current_url
