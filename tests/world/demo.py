"""`make demo`: coldrelay and the simulated world on this machine, a day's campaign, and the dashboard left up.

    .venv/bin/python tests/world/demo.py [--port 8080] [--screenshot docs/dashboard.png] [--no-wait]

Everything listens on 127.0.0.1 only and no mail or DNS query leaves the machine: the recipients
(gmail.test, outlook.test, yahoo.test, acme.test) are the world's servers. At the end it prints
the dashboard's address and a login; Ctrl-C stops everything and removes the temporary directory.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# tests/ instead of this script's folder: the world's modules import as world.*, and world/platform.py
# must not shadow the standard library's platform module.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from world.day import Day, DayPlan  # noqa: E402
from world.platform import Outcome  # noqa: E402

ADMIN = "demo"


def screenshot(url: str, password: str, path: Path) -> None:
    """Log in with headless Chromium and save the analytics page as a PNG."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        print("no screenshot: install chromium and chromium-driver", file=sys.stderr)
        return
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1700", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(f"{url}/admin/login")
        driver.find_element(By.ID, "username").send_keys(ADMIN)
        driver.find_element(By.ID, "password").send_keys(password)
        driver.find_element(By.ID, "login-submit").click()
        driver.get(f"{url}/admin/analytics?window=24h")
        time.sleep(0.5)
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080, help="the dashboard's port on 127.0.0.1")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the analytics page here")
    parser.add_argument("--no-wait", action="store_true", help="stop once the day is done (for scripts)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="crdemo-", dir="/tmp"))  # short: Dovecot's socket paths live under it
    day = Day(base / "day", DayPlan(web_port=args.port))
    try:
        print("Setting up: two sending domains, ten mailboxes, the world's DNS and mail servers...")
        day.prepare()
        password = secrets.token_urlsafe(12)
        day.cli("admin", "create", ADMIN, "--password", password)
        day.start()
        print("Sending the campaign through submission (10 mailboxes x 50 messages)...")
        platform = day.send()
        print("Delivering (greylisting, rate limits and retries included; time runs compressed)...")
        day.settle()
        day.late_events()
        inboxes = platform.poll_all()
        outcomes = Counter(record.outcome.value for record in platform.log.records)
        replies = sum(1 for items in inboxes.values() for item in items if item.kind.value != "bounce")
        print(f"Submitted: {outcomes[Outcome.SENT.value]} accepted, {outcomes[Outcome.HELD.value]} held back by the platform.")
        print(f"Delivery log by (reason, provider): {dict(day.log_counts())}")
        print(f"Replies and auto-replies read over IMAP: {replies}; paused: {day.bad_mailbox} (10% unknown users).")
        url = f"http://127.0.0.1:{day.ports.web}"
        if args.screenshot:
            screenshot(url, password, args.screenshot)
        if args.no_wait:
            return 0
        print(f"\nThe dashboard: {url}/admin  (user {ADMIN}, password {password}). Ctrl-C stops the demo.")
        while all(process.poll() is None for process in day.processes):
            time.sleep(1)
        print("coldrelay stopped.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        day.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
