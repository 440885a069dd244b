"""The pricing calculator: what a sending volume costs here, and the same mailboxes as Google or Microsoft seats.

One function, ``quote``, used by ``coldrelay price``, the ``/pricing`` page and ``/api/v1/pricing``,
so the three never disagree. The rules:

- mailboxes = ceil(emails per day / emails per mailbox); domains = ceil(mailboxes / mailboxes per domain).
- The tier for the *total* mailbox count prices *every* mailbox (not a marginal, tax-bracket scale):
  149 mailboxes cost 149 x the 100+ price, which is simple to check on an invoice. Its known quirk:
  just below a tier edge a bigger order can cost less (49 x 1.00 > 50 x 0.90), so a quote names
  the next tier's size when it would cost no more (``Quote.next_tier``).
- The per-mailbox price never goes below ``floor``; the month never costs less than ``minimum_monthly``.
- Cost per 1,000 emails assumes 21.7 sending days a month (52 weeks x 5 weekdays / 12), because
  cold email goes out on working days; the seat comparison uses the same figure, so the saving
  does not depend on that choice.

Money is computed in ``Decimal`` from the configured prices and rounded to cents only for display,
so 0.1-style float errors never show up in a total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from coldrelay.config import PriceTier, PricingSettings

SEAT_PRICES_CHECKED = "2026-11"
"""When the Google Workspace and Microsoft 365 seat prices in ``PricingSettings`` were last checked."""
GOOGLE_WORKSPACE_PLAN = "Google Workspace Business Starter"
MICROSOFT_365_PLAN = "Microsoft 365 Business Basic"

SENDING_DAYS_PER_MONTH = Decimal(52 * 5) / Decimal(12)  # about 21.67 weekdays

MAX_EMAILS_PER_DAY = 10_000_000
MAX_MAILBOXES = 1_000_000
MAX_EMAILS_PER_MAILBOX = 2_000  # Google's own per-user daily limit; cold email stays far below it
MAX_MAILBOXES_PER_DOMAIN = 100

_CENT = Decimal("0.01")


class PricingError(ValueError):
    """A quote request that cannot be answered; the message says what to change."""


@dataclass(frozen=True, slots=True)
class SeatComparison:
    """The same number of mailboxes bought as seats of another product."""

    product: str
    seat_price: Decimal
    monthly: Decimal
    cost_per_1000: Decimal
    saving_monthly: Decimal  # their monthly minus ours: negative when the seats are cheaper

    @property
    def saving_percent(self) -> float:
        return float(self.saving_monthly / self.monthly * 100) if self.monthly else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "seat_price": _money(self.seat_price),
            "monthly": _money(self.monthly),
            "cost_per_1000": _money(self.cost_per_1000),
            "saving_monthly": _money(self.saving_monthly),
            "saving_percent": round(self.saving_percent, 1),
        }


@dataclass(frozen=True, slots=True)
class Quote:
    """A priced sending setup; money in ``Decimal``, rounded to cents by ``to_dict`` and the templates."""

    currency: str
    requested_emails_per_day: int | None
    requested_mailboxes: int | None
    emails_per_day: int  # the request, or the mailboxes' full capacity when mailboxes were given
    emails_per_mailbox: int
    mailboxes_per_domain: int
    mailboxes: int
    domains: int
    tier: PriceTier
    price_per_mailbox: Decimal
    floor_applied: bool
    subtotal: Decimal
    minimum_monthly: Decimal
    monthly: Decimal
    emails_per_month: Decimal
    cost_per_1000: Decimal
    comparisons: tuple[SeatComparison, ...]
    next_tier: tuple[int, Decimal] | None = None  # (mailboxes, monthly) when the next tier costs no more

    @property
    def minimum_applied(self) -> bool:
        return self.monthly > self.subtotal

    @property
    def daily_capacity(self) -> int:
        return self.mailboxes * self.emails_per_mailbox

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "input": {"emails_per_day": self.requested_emails_per_day, "mailboxes": self.requested_mailboxes},
            "emails_per_day": self.emails_per_day,
            "emails_per_mailbox": self.emails_per_mailbox,
            "mailboxes_per_domain": self.mailboxes_per_domain,
            "mailboxes": self.mailboxes,
            "domains": self.domains,
            "daily_capacity": self.daily_capacity,
            "tier": {"from_mailboxes": self.tier.min_mailboxes, "price": _money(Decimal(str(self.tier.price)))},
            "price_per_mailbox": _money(self.price_per_mailbox),
            "floor_applied": self.floor_applied,
            "subtotal": _money(self.subtotal),
            "minimum_monthly": _money(self.minimum_monthly),
            "minimum_applied": self.minimum_applied,
            "monthly": _money(self.monthly),
            "sending_days_per_month": round(float(SENDING_DAYS_PER_MONTH), 2),
            "emails_per_month": round(float(self.emails_per_month)),
            "cost_per_1000": _money(self.cost_per_1000),
            "comparisons": [comparison.to_dict() for comparison in self.comparisons],
            "next_tier": None
            if self.next_tier is None
            else {"mailboxes": self.next_tier[0], "monthly": _money(self.next_tier[1])},
            "seat_prices_checked": SEAT_PRICES_CHECKED,
        }


def _money(value: Decimal) -> float:
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def cents(value: Decimal | float) -> str:
    """``1234.5`` -> ``"1,234.50"``: how the page and the CLI show an amount."""
    amount = value if isinstance(value, Decimal) else _decimal(value)
    return f"{amount.quantize(_CENT, rounding=ROUND_HALF_UP):,}"


def _decimal(value: float) -> Decimal:
    return Decimal(str(value))  # str() first: Decimal(0.9) would carry the binary float's error


def _check(label: str, value: int | None, maximum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise PricingError(f"{label} must be a whole number, got {value!r}.")
    if not 1 <= value <= maximum:
        raise PricingError(f"{label} must be from 1 to {maximum:,}, got {value:,}.")


def parse_count(label: str, raw: str | None) -> int | None:
    """A form or query value as a whole number (``"1,000"`` and ``"1 000"`` allowed); empty means not given."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip().replace(",", "").replace("_", "").replace(" ", "")
    if not text.isdigit():
        raise PricingError(f"{label} must be a whole number, got {raw.strip()!r}.")
    return int(text)


def tier_for(mailboxes: int, settings: PricingSettings) -> PriceTier:
    """The tier whose ``min_mailboxes`` is the highest not above ``mailboxes`` (tiers start at 1)."""
    tiers = sorted(settings.tiers, key=lambda tier: tier.min_mailboxes)
    chosen = tiers[0]
    for tier in tiers:
        if tier.min_mailboxes <= mailboxes:
            chosen = tier
    return chosen


def quote(
    *,
    emails_per_day: int | None = None,
    mailboxes: int | None = None,
    emails_per_mailbox: int | None = None,
    mailboxes_per_domain: int | None = None,
    settings: PricingSettings,
) -> Quote:
    """Price a sending volume (``emails_per_day``) or a number of ``mailboxes``; exactly one of the two.

    ``emails_per_mailbox`` and ``mailboxes_per_domain`` default to the settings. Raises
    ``PricingError`` with a message for people when the request is incomplete or out of range.
    """
    if emails_per_day is None and mailboxes is None:
        raise PricingError("Give the emails you send per day or the number of mailboxes.")
    if emails_per_day is not None and mailboxes is not None:
        raise PricingError("Give either emails per day or a number of mailboxes, not both.")
    _check("Emails per day", emails_per_day, MAX_EMAILS_PER_DAY)
    _check("Mailboxes", mailboxes, MAX_MAILBOXES)
    _check("Emails per mailbox", emails_per_mailbox, MAX_EMAILS_PER_MAILBOX)
    _check("Mailboxes per domain", mailboxes_per_domain, MAX_MAILBOXES_PER_DOMAIN)
    per_mailbox = emails_per_mailbox or settings.emails_per_mailbox
    per_domain = mailboxes_per_domain or settings.mailboxes_per_domain
    if mailboxes is None:
        assert emails_per_day is not None
        count = math.ceil(emails_per_day / per_mailbox)
        if count > MAX_MAILBOXES:
            raise PricingError(f"That volume needs {count:,} mailboxes; the calculator goes up to {MAX_MAILBOXES:,}.")
        daily = emails_per_day
    else:
        count = mailboxes
        daily = mailboxes * per_mailbox
    domains = math.ceil(count / per_domain)

    tier = tier_for(count, settings)
    floor = _decimal(settings.floor)
    price = max(_decimal(tier.price), floor)
    subtotal = price * count
    minimum = _decimal(settings.minimum_monthly)
    monthly = max(subtotal, minimum)
    per_month = daily * SENDING_DAYS_PER_MONTH
    comparisons = tuple(
        _compare(product, _decimal(seat), count, monthly, per_month)
        for product, seat in (
            (GOOGLE_WORKSPACE_PLAN, settings.google_workspace_seat),
            (MICROSOFT_365_PLAN, settings.microsoft_365_seat),
        )
    )
    return Quote(
        currency=settings.currency,
        requested_emails_per_day=emails_per_day,
        requested_mailboxes=mailboxes,
        emails_per_day=daily,
        emails_per_mailbox=per_mailbox,
        mailboxes_per_domain=per_domain,
        mailboxes=count,
        domains=domains,
        tier=tier,
        price_per_mailbox=price,
        floor_applied=price > _decimal(tier.price),
        subtotal=subtotal,
        minimum_monthly=minimum,
        monthly=monthly,
        emails_per_month=per_month,
        cost_per_1000=monthly / per_month * 1000,
        comparisons=comparisons,
        next_tier=_next_tier(count, monthly, floor, minimum, settings),
    )


def _next_tier(
    mailboxes: int, monthly: Decimal, floor: Decimal, minimum: Decimal, settings: PricingSettings
) -> tuple[int, Decimal] | None:
    """The next tier's smallest order and its monthly price, when that costs no more than this order."""
    above = sorted((tier for tier in settings.tiers if tier.min_mailboxes > mailboxes), key=lambda tier: tier.min_mailboxes)
    if not above:
        return None
    tier = above[0]
    cost = max(max(_decimal(tier.price), floor) * tier.min_mailboxes, minimum)
    return (tier.min_mailboxes, cost) if cost <= monthly else None


def _compare(product: str, seat: Decimal, mailboxes: int, ours: Decimal, per_month: Decimal) -> SeatComparison:
    theirs = seat * mailboxes
    return SeatComparison(
        product=product,
        seat_price=seat,
        monthly=theirs,
        cost_per_1000=theirs / per_month * 1000,
        saving_monthly=theirs - ours,
    )
