"""A real headless Chromium (Debian's) drives /diagnose on a live server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "install chromium and chromium-driver (make test does it with apt-get)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_diagnose_shows_the_right_article(browser: webdriver.Chrome, live_server: str) -> None:
    browser.get(f"{live_server}/diagnose")
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys("421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints")
    browser.find_element(By.ID, "diagnose-submit").click()
    result = WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "result")))
    assert result.get_attribute("data-provider") == "yahoo"
    assert result.get_attribute("data-reason") == "badreputation"
    slug = result.get_attribute("data-slug")
    assert slug and slug.startswith("yahoo-")
    browser.find_element(By.ID, "article-link").click()
    WebDriverWait(browser, 15).until(expected_conditions.url_contains(f"/smtp-errors/{slug}"))
    article = browser.find_element(By.CSS_SELECTOR, "article.entry")
    assert article.get_attribute("data-slug") == slug
    assert browser.find_elements(By.CSS_SELECTOR, "ol.steps > li")


def test_phone_width_has_no_horizontal_scroll(browser: webdriver.Chrome, live_server: str) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{live_server}/smtp-errors/microsoft-550-5-7-1-unable-to-relay")
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
    finally:
        browser.set_window_size(1280, 1000)
