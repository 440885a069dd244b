"""The pricing calculator: ``quote`` rules, ``coldrelay price``, the /pricing page and /api/v1/pricing."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from coldrelay.cli.context import AppContext
from coldrelay.cli.price_cmd import price_command
from coldrelay.config import PriceTier, PricingSettings
from coldrelay.pricing import PricingError, parse_count, quote
from coldrelay.web import create_app
from coldrelay.web.pricing import pricing_router

DEFAULTS = PricingSettings()


def price(**kwargs: int) -> Decimal:
    return quote(settings=DEFAULTS, **kwargs).price_per_mailbox


@pytest.mark.parametrize(
    ("mailboxes", "expected"),
    [(1, "1.00"), (49, "1.00"), (50, "0.90"), (99, "0.90"), (100, "0.80"), (249, "0.80"), (250, "0.70"), (499, "0.70"),
     (500, "0.62"), (999, "0.62"), (1000, "0.55"), (50_000, "0.55")],
)  # fmt: skip
def test_tier_edges(mailboxes: int, expected: str) -> None:
    assert price(mailboxes=mailboxes) == Decimal(expected)


def test_the_tier_prices_every_mailbox() -> None:
    result = quote(mailboxes=120, settings=DEFAULTS)
    assert result.monthly == Decimal("96.00")  # 120 x 0.80, not 99 x 1.00 + ...
    assert result.tier == PriceTier(100, 0.80)
    assert not result.minimum_applied and not result.floor_applied


def test_floor() -> None:
    cheap = PricingSettings(tiers=(PriceTier(1, 1.00), PriceTier(10, 0.30)), floor=0.50, minimum_monthly=0)
    result = quote(mailboxes=10, settings=cheap)
    assert result.price_per_mailbox == Decimal("0.50")
    assert result.floor_applied
    assert result.monthly == Decimal("5.00")
    assert quote(mailboxes=9, settings=cheap).floor_applied is False


def test_monthly_minimum() -> None:
    result = quote(mailboxes=3, settings=DEFAULTS)
    assert result.subtotal == Decimal("3.00")
    assert result.monthly == Decimal("50.00")
    assert result.minimum_applied
    assert quote(mailboxes=60, settings=DEFAULTS).minimum_applied is False  # 60 x 0.90 = 54
    # Right under a tier edge the bigger order can cost no more; the quote says so.
    assert quote(mailboxes=49, settings=DEFAULTS).next_tier == (50, Decimal("50.00"))
    assert quote(mailboxes=240, settings=DEFAULTS).next_tier == (250, Decimal("175.00"))  # 192 > 175
    assert quote(mailboxes=200, settings=DEFAULTS).next_tier is None  # 160 < 175


def test_from_emails_per_day() -> None:
    result = quote(emails_per_day=3001, settings=DEFAULTS)
    assert (result.mailboxes, result.domains) == (101, 34)  # ceil(3001 / 30), ceil(101 / 3)
    assert result.emails_per_day == 3001 and result.daily_capacity == 3030
    assert result.monthly == Decimal("80.80")  # 101 x 0.80
    # per 1,000 = monthly / (emails/day x 260/12 sending days) x 1000 = 80.80 / 65,021.67 x 1000
    assert result.cost_per_1000 == Decimal("80.80") / (Decimal(3001) * Decimal(260) / Decimal(12)) * 1000
    assert result.to_dict()["cost_per_1000"] == 1.24
    custom = quote(emails_per_day=1000, emails_per_mailbox=50, mailboxes_per_domain=5, settings=DEFAULTS)
    assert (custom.mailboxes, custom.domains) == (20, 4)


def test_from_mailboxes_uses_their_capacity() -> None:
    result = quote(mailboxes=100, emails_per_mailbox=40, settings=DEFAULTS)
    assert result.emails_per_day == 4000
    assert result.domains == 34
    assert result.requested_mailboxes == 100 and result.requested_emails_per_day is None


def test_seat_comparison() -> None:
    result = quote(mailboxes=100, settings=DEFAULTS)
    google, microsoft = result.comparisons
    assert (google.product, google.monthly, google.saving_monthly) == (
        "Google Workspace Business Starter",
        Decimal("700.00"),
        Decimal("620.00"),
    )
    assert (microsoft.product, microsoft.monthly, microsoft.saving_monthly) == (
        "Microsoft 365 Business Basic",
        Decimal("600.00"),
        Decimal("520.00"),
    )
    assert (result.to_dict()["cost_per_1000"], google.to_dict()["cost_per_1000"], microsoft.to_dict()["cost_per_1000"]) == (
        1.23,  # 80 / (3,000 x 21.67) x 1000
        10.77,
        9.23,
    )
    assert round(google.saving_percent, 1) == 88.6
    small = quote(mailboxes=3, settings=DEFAULTS)  # the monthly minimum makes a tiny setup dearer than seats
    assert small.comparisons[0].saving_monthly == Decimal("-29.00")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "Give the emails you send per day or the number of mailboxes."),
        ({"emails_per_day": 100, "mailboxes": 3}, "not both"),
        ({"mailboxes": 0}, "Mailboxes must be from 1 to 1,000,000, got 0."),
        ({"emails_per_day": -5}, "Emails per day must be from 1 to 10,000,000, got -5."),
        ({"mailboxes": 10, "emails_per_mailbox": 0}, "Emails per mailbox must be from 1"),
        ({"mailboxes": 10, "mailboxes_per_domain": 101}, "Mailboxes per domain must be from 1 to 100"),
        ({"mailboxes": True}, "must be a whole number"),
        ({"emails_per_day": 10_000_000, "emails_per_mailbox": 1}, "needs 10,000,000 mailboxes"),
    ],
)
def test_bad_requests(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(PricingError, match=re.escape(message)):
        quote(settings=DEFAULTS, **kwargs)


def test_parse_count() -> None:
    assert parse_count("Mailboxes", " 1,500 ") == 1500
    assert parse_count("Mailboxes", "") is None
    with pytest.raises(PricingError, match=r"Mailboxes must be a whole number, got '2\.5'"):
        parse_count("Mailboxes", "2.5")


@pytest.fixture
def client() -> TestClient:
    app = create_app()
    app.include_router(pricing_router())
    return TestClient(app)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_page_without_input_shows_tiers_and_dated_seat_prices(client: TestClient) -> None:
    response = client.get("/pricing")
    assert response.status_code == 200
    text = text_of(response.text)
    assert 'id="quote-table"' not in response.text
    assert "1–49 USD 1.00" in text and "1,000+ USD 0.55" in text
    assert "Seat prices checked in 2026-11" in text
    assert "Google Workspace Business Starter USD 7.00 per user per month" in text
    assert "Microsoft 365 Business Basic USD 6.00 per user per month" in text
    assert '<form class="diagnose-form pricing-form" method="get" action="/pricing">' in response.text
    assert '<link rel="stylesheet" href="/static/style.css">' in response.text  # the site's base template


def test_page_with_a_quote(client: TestClient) -> None:
    response = client.get("/pricing", params={"emails_per_day": "3000"})
    assert response.status_code == 200
    text = text_of(response.text)
    assert "Mailboxes 100 at 30 emails each per day" in text
    assert "Domains 34" in text
    assert "Monthly USD 80.00" in text
    assert "Google Workspace Business Starter USD 7.00 USD 700.00" in text
    assert "coldrelay saves USD 620.00 (89%)" in text
    assert 'value="3000"' in response.text  # the form keeps what was typed


def test_page_and_api_errors_are_sentences(client: TestClient) -> None:
    response = client.get("/pricing", params={"emails_per_day": "lots"})
    assert response.status_code == 422
    assert "Emails per day must be a whole number, got &#39;lots&#39;." in response.text
    response = client.get("/api/v1/pricing", params={"emails_per_day": "100", "mailboxes": "4"})
    assert response.status_code == 422
    assert response.json() == {"detail": "Give either emails per day or a number of mailboxes, not both."}
    response = client.get("/api/v1/pricing")
    assert response.status_code == 422
    assert response.json()["detail"] == "Give the emails you send per day or the number of mailboxes."


def test_api_json(client: TestClient) -> None:
    response = client.get("/api/v1/pricing", params={"mailboxes": "50", "per_domain": "5"})
    assert response.status_code == 200
    data = response.json()
    assert (data["mailboxes"], data["domains"], data["emails_per_day"]) == (50, 10, 1500)
    assert (data["price_per_mailbox"], data["monthly"], data["minimum_applied"]) == (0.9, 50.0, True)
    assert data["tier"] == {"from_mailboxes": 50, "price": 0.9}
    assert data["seat_prices_checked"] == "2026-11"
    assert [item["monthly"] for item in data["comparisons"]] == [350.0, 300.0]


def test_app_state_prices_are_used() -> None:
    app = create_app()
    app.include_router(pricing_router())
    app.state.pricing = PricingSettings(tiers=(PriceTier(1, 2.00),), floor=2.00, minimum_monthly=0, currency="EUR")
    data = TestClient(app).get("/api/v1/pricing", params={"mailboxes": "10"}).json()
    assert (data["currency"], data["monthly"]) == ("EUR", 20.0)


def cli(data_dir: Path, *args: str) -> tuple[int, str]:
    price_app = typer.Typer()

    @price_app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = AppContext(data_dir)

    price_app.command("price")(price_command)
    result = CliRunner().invoke(price_app, ["price", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_cli_json_and_table(tmp_path: Path) -> None:
    code, output = cli(tmp_path, "--emails-per-day", "3000", "--json")
    assert code == 0, output
    assert json.loads(output)["monthly"] == 80.0
    code, output = cli(tmp_path, "--mailboxes", "49")
    assert code == 0, output
    assert re.search(r"Monthly\s+│ USD 50\.00 \(the monthly minimum", output), output
    assert "50 mailboxes would cost no more: USD 50.00/month." in output
    assert not tmp_path.joinpath("coldrelay.db").exists()  # pricing needs no database


def test_cli_reads_prices_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "coldrelay.toml").write_text("[pricing]\nminimum_monthly = 0\nemails_per_mailbox = 50\n")
    code, output = cli(tmp_path, "--emails-per-day", "500", "--json")
    assert code == 0, output
    data = json.loads(output)
    assert (data["mailboxes"], data["monthly"]) == (10, 10.0)


def test_cli_errors(tmp_path: Path) -> None:
    code, output = cli(tmp_path, "--emails-per-day", "10", "--mailboxes", "3")
    assert code == 2
    assert "not both" in output
    code, output = cli(tmp_path)
    assert code == 2
    assert "Give the emails you send per day or the number of mailboxes." in output
