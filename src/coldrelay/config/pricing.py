"""Settings of the pricing calculator: the per-mailbox tier table, its floor and the monthly minimum,
and the seat prices it compares with (Google Workspace and Microsoft 365; dated in the README)."""

from __future__ import annotations

from dataclasses import dataclass

from coldrelay.config.values import Invalid, money, positive_int


@dataclass(frozen=True, slots=True)
class PriceTier:
    """From ``min_mailboxes`` mailboxes up, each mailbox costs ``price`` a month."""

    min_mailboxes: int
    price: float


DEFAULT_TIERS: tuple[PriceTier, ...] = (
    PriceTier(1, 1.00),
    PriceTier(50, 0.90),
    PriceTier(100, 0.80),
    PriceTier(250, 0.70),
    PriceTier(500, 0.62),
    PriceTier(1000, 0.55),
)


@dataclass(frozen=True, slots=True)
class PricingSettings:
    """Per-mailbox monthly prices fall with volume along ``tiers``, never below ``floor``."""

    tiers: tuple[PriceTier, ...] = DEFAULT_TIERS
    floor: float = 0.55
    minimum_monthly: float = 50.0
    currency: str = "USD"
    emails_per_mailbox: int = 30  # a safe daily volume per cold-email mailbox
    mailboxes_per_domain: int = 3
    google_workspace_seat: float = 7.00  # Business Starter, per user per month, annual plan
    microsoft_365_seat: float = 6.00  # Business Basic, per user per month, annual plan


def parse_tiers(value: object) -> tuple[PriceTier, ...]:
    """``tiers = [{from = 1, price = 1.00}, {from = 50, price = 0.90}, ...]``, ``from`` rising."""
    expected = "a list of tables such as [{from = 1, price = 1.00}, {from = 50, price = 0.90}], from rising, starting at 1"
    if not isinstance(value, list) or not value:
        raise Invalid(expected)
    tiers: list[PriceTier] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"from", "price"}:
            raise Invalid(expected)
        tiers.append(PriceTier(positive_int(item["from"]), money(item["price"])))
    starts = [tier.min_mailboxes for tier in tiers]
    if starts[0] != 1 or starts != sorted(set(starts)):
        raise Invalid(expected)
    return tuple(tiers)
