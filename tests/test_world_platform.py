"""The scripted sending platform (tests/world/platform.py) against a real `coldrelay serve`.

One serve for the module: four mailboxes made with `coldrelay mailbox bulk --export --format instantly`
(cap 6 a day, so the export's Daily Limit is 3), leads at leads.test delivered through [transports]
to a loopback sink that refuses gone@, Dovecot for IMAP. The platform imports the real export and
reaches serve through the loopback overrides, verifying TLS against box.hosted.test with serve's own
self-signed certificate. The "day" fixture sends one campaign; the tests read what happened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import smtplib
import ssl
import time
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coldrelay.config import load_settings
from coldrelay.db import create_engine
from coldrelay.mta.delivery.reputation import ReputationGuard
from conftest import Served, ServeHost, prepare_serve_host, run_coldrelay
from helpers.sinks import Behaviour, Reply, SinkServer
from world.campaign import Campaign, CampaignError, Lead, Sender, build_message
from world.platform import MailboxAccount, Outcome, Platform, PlatformError, SendRecord, read_export
from world.platform_imap import InboxKind, classify

NAMES = "Maria Lopez\nJonas Berg\nPriya Shah\nTom Okafor\n"
GONE = Reply(550, "5.1.1", "The email account that you tried to reach does not exist")


@dataclass
class Day:
    """The served host, the platform that imported its export, and the first campaign's records."""

    host: ServeHost
    served: Served
    sink: SinkServer
    platform: Platform
    records: list[SendRecord]
    a: str  # a plain mailbox: Daily Limit 3, given 4 leads
    b: str  # its cap mostly spent on warm-up before the campaign: 450 at MAIL
    c: str  # paused by the operator: 450 at MAIL
    d: str  # one lead with an address submission refuses (5xx)


def _leads() -> list[Lead]:
    """13 leads dealt to a, b, c, d in turn: a gets 0, 4, 8, 12; b 1, 5, 9; c 2, 6, 10; d 3, 7, 11."""
    leads = [Lead(f"lead{n}@leads.test", f"Lead{n}", "Test", "Acme") for n in range(13)]
    leads[0] = Lead("maria.client@leads.test", "Maria", "Client", "Client Co")
    leads[4] = Lead("gone@leads.test", "Gone", "Away")
    leads[3] = Lead("bad..dots@leads.test", "Bad", "Dots")  # not a dot-atom: submission answers 501 5.1.3
    return leads


def _pause(data: Path, mailbox: str) -> None:
    """What `coldrelay senders pause` does, in-process: the CLI's 3 s start-up is a tenth of this file's budget."""
    settings = load_settings(data)
    engine = create_engine(settings.database_url)
    try:
        asyncio.run(ReputationGuard(engine, settings.reputation).pause(mailbox, detail="complaints", by="the test"))
    finally:
        engine.dispose()


def _stop_orphaned_dovecot(data: Path) -> None:
    """Stop the Dovecot this module's serve started if serve left it running, and warn.

    Workaround: uvicorn (0.29 and later) re-raises the SIGTERM it caught once its server returns,
    so `coldrelay serve` dies before its cleanup stops Dovecot (reported to the lead). Only the
    master started with this data directory's config, and its process group, are signalled.
    """
    config = str(data / "dovecot" / "dovecot.conf").encode()
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or config not in (entry / "cmdline").read_bytes():
                continue
            pid = int(entry.name)
            if os.getpgid(pid) != pid:
                continue  # a child: the group signal reaches it
            os.killpg(pid, signal.SIGTERM)
        except (OSError, ProcessLookupError):
            continue
        warnings.warn(f"coldrelay serve left Dovecot (pid {pid}) running; stopped it", stacklevel=1)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory, dns_server: object) -> Iterator[Day]:
    tmp = tmp_path_factory.mktemp("platform")
    host = prepare_serve_host(tmp, dns_server.address)  # type: ignore[attr-defined]
    names, export = tmp / "names.txt", tmp / "export.csv"
    names.write_text(NAMES, encoding="utf-8")
    bulk = run_coldrelay(
        "--data-dir", str(host.data), "mailbox", "bulk", "--domains", "hosted.test", "--names", str(names),
        "--per-domain", "4", "--daily-limit", "6", "--export", str(export), "--format", "instantly",
    )  # fmt: skip
    assert bulk.returncode == 0, bulk.stdout + bulk.stderr
    a, b, c, d = (account.email for account in read_export(export))
    _pause(host.data, c)
    with SinkServer(Behaviour({"gone": GONE})) as sink:
        with (host.data / "coldrelay.toml").open("a", encoding="utf-8") as config:
            config.write(f'[transports]\n"leads.test" = "127.0.0.1:{sink.port}"\n')
        try:
            served = host.start()
            imap_port = int(tomllib.loads((host.data / "coldrelay.toml").read_text())["imap"]["listen"].rpartition(":")[2])
            # serve's self-signed certificate names box.hosted.test, the host in the export: full verification.
            context = ssl.create_default_context(cafile=str(host.data / "tls" / "selfsigned-cert.pem"))
            platform = Platform.from_export(
                export, smtp_address=("127.0.0.1", host.submission), imap_address=("127.0.0.1", imap_port), tls_context=context
            )
            # Warm-up mail goes through submission too and counts against the cap: b spends 5 of its 6.
            warmup = Platform(
                [dataclasses.replace(platform.mailbox(b), daily_limit=5)], smtp_address=platform.smtp_address, tls_context=context
            )
            warm = warmup.send(Campaign([Lead(f"warm{n}@leads.test", "Warm") for n in range(5)], per_mailbox=5, name="warm-up"))
            assert [r.outcome for r in warm] == [Outcome.SENT] * 5
            records = platform.send(Campaign(_leads(), per_mailbox=10, name="first touch"))
            yield Day(host, served, sink, platform, records, a, b, c, d)
        finally:
            host.stop()
            _stop_orphaned_dovecot(host.data)


def _outcomes(records: list[SendRecord], mailbox: str) -> list[tuple[str, Outcome, int | None]]:
    return [(r.lead.email, r.outcome, r.answer.code if r.answer else None) for r in records if r.mailbox == mailbox]


def test_submission_takes_exactly_the_daily_limit_and_the_rest_is_held(day: Day) -> None:
    assert day.platform.mailbox(day.a).daily_limit == 3  # cap 6 = 3 campaign + 3 warm-up in the export
    assert _outcomes(day.records, day.a) == [
        ("maria.client@leads.test", Outcome.SENT, 250),
        ("gone@leads.test", Outcome.SENT, 250),
        ("lead8@leads.test", Outcome.SENT, 250),
        ("lead12@leads.test", Outcome.HELD, None),
    ]
    assert day.platform.stats()[day.a].sent == 3 and day.a not in day.platform.stops


def test_a_4xx_at_mail_stops_the_mailbox_for_the_day(day: Day) -> None:
    assert _outcomes(day.records, day.b) == [
        ("lead1@leads.test", Outcome.SENT, 250),
        ("lead5@leads.test", Outcome.DEFERRED, 450),
        ("lead9@leads.test", Outcome.HELD, None),
    ]
    assert _outcomes(day.records, day.c) == [
        ("lead2@leads.test", Outcome.DEFERRED, 450),
        ("lead6@leads.test", Outcome.HELD, None),
        ("lead10@leads.test", Outcome.HELD, None),
    ]
    stop_b, stop_c = day.platform.stops[day.b], day.platform.stops[day.c]
    assert (stop_b.reason, stop_b.answer.step, "4.7.1" in stop_b.answer.text) == ("daily-cap", "MAIL", True)
    assert (stop_c.reason, stop_c.answer.step) == ("paused", "MAIL")


def test_a_5xx_is_a_submission_error_and_the_session_goes_on(day: Day) -> None:
    assert _outcomes(day.records, day.d) == [
        ("bad..dots@leads.test", Outcome.FAILED, 501),
        ("lead7@leads.test", Outcome.SENT, 250),
        ("lead11@leads.test", Outcome.SENT, 250),
    ]
    failed = next(r for r in day.records if r.outcome is Outcome.FAILED)
    assert failed.answer is not None and (failed.answer.step, "5.1.3" in failed.answer.text) == ("RCPT", True)
    assert day.d not in day.platform.stops


def test_a_second_campaign_the_same_day_only_fills_what_room_is_left(day: Day) -> None:
    """Room is the Daily Limit less what submission accepted today; stopped mailboxes send nothing more."""
    before = len(day.platform.log.records)
    again = day.platform.send(Campaign([Lead(f"late{n}@leads.test") for n in range(8)], per_mailbox=10, name="follow-up"))
    # Dealt a, b, c, d in turn: only d has room (3 less its 2 accepted; the refused one did not count).
    assert [(r.mailbox, r.outcome) for r in again if r.outcome is not Outcome.HELD] == [(day.d, Outcome.SENT)]
    assert [r.lead.email for r in again if r.mailbox == day.d] == ["late3@leads.test", "late7@leads.test"]
    assert len(day.platform.log.records) == before + 8


def test_the_sink_got_the_messages_as_a_platform_writes_them(day: Day) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(m.rcpt_tos == ["maria.client@leads.test"] for m in day.sink.messages):
        time.sleep(0.2)
    [message] = [m for m in day.sink.messages if m.rcpt_tos == ["maria.client@leads.test"]]
    [record] = [r for r in day.records if r.lead.email == "maria.client@leads.test"]
    assert record.message_id is not None and record.message_id.endswith("@hosted.test>")
    for expected in (
        f"Message-ID: {record.message_id}",
        "Subject: Quick question, Maria",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "d=hosted.test",
    ):
        assert expected.encode() in message.data
    assert b"Hi Maria,\r\n\r\nWould Client Co like fewer bounced emails?" in message.data


def _deliver_to_mx(day: Day, sender: str, rcpt: str, message: str) -> None:
    with smtplib.SMTP("127.0.0.1", day.host.mx, timeout=10) as client:
        client.sendmail(sender, [rcpt], message.replace("\n", "\r\n").encode())


def test_imap_polling_finds_replies_auto_replies_and_bounces_and_links_them(day: Day) -> None:
    by_lead = {r.lead.email: r for r in day.records if r.outcome is Outcome.SENT}
    maria, lead1 = by_lead["maria.client@leads.test"], by_lead["lead1@leads.test"]
    _deliver_to_mx(
        day,
        "maria.client@leads.test",
        day.a,
        f"From: Maria Client <maria.client@leads.test>\nTo: {day.a}\nSubject: Re: Quick question, Maria\n"
        f"In-Reply-To: {maria.message_id}\nReferences: {maria.message_id}\n\nSounds good, call me Tuesday.\n",
    )
    _deliver_to_mx(
        day,
        "lead1@leads.test",
        day.b,
        f"From: lead1@leads.test\nTo: {day.b}\nSubject: Automatic reply: Quick question\nAuto-Submitted: auto-replied\n"
        f"In-Reply-To: {lead1.message_id}\n\nI am out of the office until Monday.\n",
    )
    _deliver_to_mx(day, "news@elsewhere.test", day.a, f"From: news@elsewhere.test\nTo: {day.a}\nSubject: Weekly news\n\nHi\n")
    deadline = time.monotonic() + 30
    while True:  # the DSN for gone@ arrives once the delivery worker has met the sink's 550
        inboxes = day.platform.poll_all()
        if any(item.kind is InboxKind.BOUNCE for item in inboxes[day.a]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    kinds_a = sorted((item.kind, item.linked_id) for item in inboxes[day.a])
    gone = by_lead["gone@leads.test"]
    assert maria.message_id and gone.message_id
    assert kinds_a == sorted(
        [
            (InboxKind.REPLY, maria.message_id.strip("<>")),
            (InboxKind.BOUNCE, gone.message_id.strip("<>")),
            (InboxKind.OTHER, None),
        ]
    )
    [bounce] = [item for item in inboxes[day.a] if item.kind is InboxKind.BOUNCE]
    assert (bounce.linked_by, bounce.failed_recipients) == ("dsn", ("gone@leads.test",))
    assert bounce.bounce_records[0].hard_bounce
    [auto] = inboxes[day.b]
    assert (auto.kind, auto.linked, auto.linked_by) == (InboxKind.AUTO_REPLY, lead1, "header")
    assert inboxes[day.d] == [] and inboxes[day.c] == []
    stats = day.platform.stats()
    assert stats[day.a].replies == (maria.message_id.strip("<>"),)
    assert (stats[day.a].bounced_recipients, stats[day.a].unlinked) == (("gone@leads.test",), 1)
    assert stats[day.b].auto_replies == (lead1.message_id.strip("<>"),) and stats[day.b].stop is not None


# --- no network ----------------------------------------------------------------------------------------------------


def test_round_robin_is_fixed_and_held_leads_stay_with_their_mailbox() -> None:
    leads = [Lead(f"l{n}@x.test") for n in range(7)]
    plan = Campaign(leads, per_mailbox=2).plan(["m1@a.test", "m2@a.test"], {"m1@a.test": 5, "m2@a.test": 1})
    assert [([lead.email for lead in p.send], [lead.email for lead in p.held]) for p in plan] == [
        (["l0@x.test", "l2@x.test"], ["l4@x.test", "l6@x.test"]),
        (["l1@x.test"], ["l3@x.test", "l5@x.test"]),
    ]


def test_bad_templates_and_leads_are_refused_up_front() -> None:
    with pytest.raises(CampaignError, match=r"\{firstname\}"):
        Campaign([], per_mailbox=1, subject="Hi {firstname}")
    with pytest.raises(CampaignError, match="malformed"):
        Campaign([], per_mailbox=1, body="Hi {first_name")
    with pytest.raises(CampaignError, match="not an email address"):
        Lead("no-at-sign.test")


def test_message_has_the_headers_a_platform_adds() -> None:
    sender = Sender("maria@hosted.test", "Maria", "Lopez")
    data = build_message(Campaign([], per_mailbox=1), Lead("bo@x.test", "Bo"), sender, "<id1@hosted.test>")
    head = data.split(b"\r\n\r\n")[0].decode().replace("\r\n ", " ")  # unfolded
    assert "From: Maria Lopez <maria@hosted.test>" in head and "To: Bo <bo@x.test>" in head
    assert "Message-ID: <id1@hosted.test>" in head and "\r\nDate: " in head
    assert "List-Unsubscribe: <https://unsubscribe.platform.test/u/id1>, <mailto:unsubscribe+id1@hosted.test>" in head
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only: submission refuses bare LF


def test_exports_that_are_not_mailbox_exports_are_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "leads.csv"
    wrong.write_text("email,first_name\nx@y.test,X\n", encoding="utf-8")
    with pytest.raises(PlatformError, match="not an Instantly or Smartlead"):
        read_export(wrong)
    smartlead = tmp_path / "smartlead.csv"
    smartlead.write_text(
        "from_name,from_email,user_name,password,smtp_host,smtp_port,imap_host,imap_port,max_email_per_day\r\n"
        "Maria Lopez,maria@hosted.test,maria@hosted.test,pw,box.hosted.test,587,box.hosted.test,99999,30\r\n",
        encoding="utf-8",
    )
    with pytest.raises(PlatformError, match="line 2: imap_port must be 1 to 65535"):
        read_export(smartlead)


def test_an_out_of_office_without_headers_is_linked_by_the_lead_address() -> None:
    sent = SendRecord("c", "m@a.test", Lead("bo@x.test"), "<m1@a.test>", Outcome.SENT, None, datetime.now(UTC))
    raw = b"From: Bo <BO@x.test>\r\nSubject: Out of Office: back Monday\r\nMessage-ID: <r1@x.test>\r\n\r\nAway\r\n"
    item = classify("m@a.test", 7, raw, {"m1@a.test": sent}, {"bo@x.test": sent})
    assert (item.kind, item.linked, item.linked_by, item.message_id) == (InboxKind.AUTO_REPLY, sent, "address", "r1@x.test")
    stranger = classify(
        "m@a.test", 8, b"From: z@q.test\r\nSubject: hello\r\n\r\nhi\r\n", {"m1@a.test": sent}, {"bo@x.test": sent}
    )
    assert (stranger.kind, stranger.linked) == (InboxKind.OTHER, None)


def test_an_unreachable_submission_host_stops_every_mailbox_without_sending() -> None:
    from scripted_smtp import free_port

    accounts = [
        MailboxAccount(box, "M", "", box, "pw", "box.a.test", 587, box, "pw", "box.a.test", 993, 5)
        for box in ("m0@a.test", "m1@a.test")
    ]
    platform = Platform(accounts, smtp_address=("127.0.0.1", free_port()), timeout=2)  # nothing listens there
    records = platform.send(Campaign([Lead(f"l{n}@x.test") for n in range(3)], per_mailbox=5))
    assert [(r.mailbox, r.outcome) for r in records] == [
        ("m0@a.test", Outcome.HELD),
        ("m0@a.test", Outcome.HELD),
        ("m1@a.test", Outcome.HELD),
    ]
    stops = {address: stop.reason for address, stop in platform.stops.items()}
    assert stops == {"m0@a.test": "unreachable", "m1@a.test": "unreachable"}
    assert platform.room("m0@a.test") == 0
