"""parse() never raises: random bytes, truncated and mutated real bounces, odd line endings."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldrelay.bounces import BounceRecord, parse
from coldrelay.errors import Reason

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "bounces" / "maildir" / "bsd"
SAMPLES = sorted(CORPUS.glob("*.eml"))


def _valid(records: list[BounceRecord]) -> None:
    assert isinstance(records, list)
    for record in records:
        assert isinstance(record.reason, Reason)
        record.to_dict()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes(data: bytes) -> None:
    _valid(parse(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.floats(min_value=0.0, max_value=1.0))
def test_truncated_real_bounces(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    _valid(parse(data[: int(len(data) * fraction)]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.randoms(use_true_random=False))
def test_mutated_real_bounces(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 40)):
        if not data:
            break
        position = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.4:
            data[position] = rng.randrange(256)
        elif choice < 0.7:
            del data[position : position + rng.randint(1, 200)]
        else:
            data[position:position] = rng.choice([b"\r", b"\n", b"\x00", b"--", b"=?utf-8?B?", b"Content-Type: multipart/mixed"])
    _valid(parse(bytes(data)))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_line_endings_do_not_change_the_result(path: Path) -> None:
    data = path.read_bytes()
    as_lf = [r.to_dict() for r in parse(data)]
    as_crlf = [r.to_dict() for r in parse(re.sub(rb"(?<!\r)\n", b"\r\n", data))]
    as_cr = [r.to_dict() for r in parse(re.sub(rb"\r?\n", b"\r", data))]
    doubled = [r.to_dict() for r in parse(data.replace(b"\n", b"\r\n"))]  # a careless converter: CR CR LF
    naive_cr = [r.to_dict() for r in parse(data.replace(b"\n", b"\r"))]  # CRLF files become CR CR
    assert as_lf == doubled == naive_cr
    assert as_lf == as_crlf == as_cr


def test_a_plain_message_is_not_a_bounce() -> None:
    message = (
        b"From: a@example.org\nTo: b@example.org\nSubject: lunch\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nSee you at noon.\n"
    )
    assert parse(message) == []


def test_empty_input() -> None:
    assert parse(b"") == []


NOT_BOUNCES = [
    b"From: Shop <noreply@shop.example>\nTo: ann@example.org\nSubject: Warning: your cart expires today\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n\nHi Ann, the items in your cart are waiting for you.\n",
    b"From: Billing <no-reply@billing.example>\nTo: bob@example.org\nSubject: Error in your last invoice\n\n"
    b"Dear Bob,\n\nwe found an error in invoice 1234 and will send a corrected copy to accounts@example.org.\n",
    b"From: Carol <carol@example.com>\nTo: dan@example.org\nSubject: Re: rejected proposal\n\n"
    b"Dan, the board rejected it; let's talk to legal@example.com tomorrow.\n",
    b"From: Newsletter <news@example.com>\nTo: eve@example.org\nSubject: This week\nContent-Type: multipart/alternative;"
    b' boundary="b1"\n\n--b1\nContent-Type: text/plain\n\nNews for eve@example.org.\n--b1\nContent-Type: text/html\n\n'
    b"<p>News</p>\n--b1--\n",
]


@pytest.mark.parametrize("message", NOT_BOUNCES, ids=["cart", "invoice", "human-reply", "newsletter"])
def test_ordinary_mail_gives_no_records(message: bytes) -> None:
    assert parse(message) == []


def test_out_of_office_is_a_vacation_record() -> None:
    message = (
        b"From: Frank <frank@example.org>\nTo: sender@example.com\nSubject: Out of Office: quarterly plan\n"
        b"Auto-Submitted: auto-replied\n\nI am away until Monday.\n"
    )
    records = parse(message)
    assert [(r.recipient, r.reason.value) for r in records] == [("frank@example.org", "vacation")]
