"""The IANA enhanced-status-code registry as the fallback meaning of any code."""

from __future__ import annotations

from coldrelay.errors import Reason, describe_enhanced, reason_for_codes
from coldrelay.errors.status_codes import BASIC_CODES, REGISTRY


def test_registry_holds_every_registered_subject_detail() -> None:
    expected = {
        "0.0", *(f"1.{d}" for d in range(0, 11)), *(f"2.{d}" for d in range(0, 5)), *(f"3.{d}" for d in range(0, 7)),
        *(f"4.{d}" for d in range(0, 8)), *(f"5.{d}" for d in range(0, 7)), *(f"6.{d}" for d in range(0, 11)),
        *(f"7.{d}" for d in range(0, 31)),
    }  # fmt: skip
    assert set(REGISTRY) == expected


def test_titles_follow_the_registry() -> None:
    assert describe_enhanced("5.1.1") == "Bad destination mailbox address"
    assert describe_enhanced("4.2.2") == "Mailbox full"
    assert describe_enhanced("5.7.26") == "Multiple authentication checks failed"
    assert describe_enhanced("5.1.10") == "Recipient address has null MX"
    assert describe_enhanced("5.7.25") == "Reverse DNS validation failed"


def test_unregistered_details_fall_back_to_their_subject() -> None:
    description = describe_enhanced("5.7.606")
    assert description is not None and description.startswith("Security or Policy Status")
    assert describe_enhanced("not a code") is None


def test_every_generic_basic_code_is_described() -> None:
    for code in (421, 450, 451, 452, 500, 501, 502, 503, 504, 521, 530, 535, 550, 551, 552, 553, 554, 555, 556):
        assert code in BASIC_CODES


def test_reasons_from_codes() -> None:
    assert reason_for_codes(550, "5.1.1") is Reason.USERUNKNOWN
    assert reason_for_codes(552, "5.2.2") is Reason.MAILBOXFULL
    assert reason_for_codes(550, "5.7.23") is Reason.AUTHFAILURE
    assert reason_for_codes(None, "4.4.7") is Reason.EXPIRED
    assert reason_for_codes(535, None) is Reason.SECURITYERROR
    assert reason_for_codes(None, None) is Reason.UNDEFINED
