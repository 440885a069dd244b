"""The simulated receiving world (tests/world) answers as scripted, with texts explain() attributes correctly.

Real peers only: the world's loopback DNS, its aiosmtpd receivers with trustme certificates, smtplib as
the sending side, coldrelay's DkimSigner over a SQLite database, and a helpers.sinks server standing in
for coldrelay's MX when the world sends bounces and replies back.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from coldrelay.bounces import parse as parse_bounce
from coldrelay.config import load_settings
from coldrelay.db import create_domain, create_engine, session_factory, upgrade_database
from coldrelay.dns import Resolver
from coldrelay.dns.mx import lookup_mx
from coldrelay.errors import explain
from coldrelay.mta.dkim import DkimSigner
from coldrelay.provision.records import RecordPlan, plan_for
from helpers.sinks import SinkServer
from world.profiles import PROFILES, Profile
from world.receivers import ProviderMX, treatment_for
from world.world import DEFAULT_RECIPIENT_DOMAINS, RecipientDomain, World

MX_OF = {r.profile: r.mx_host for r in DEFAULT_RECIPIENT_DOMAINS}
DOMAIN_OF = {r.profile: r.domain for r in DEFAULT_RECIPIENT_DOMAINS}
SIGNED = "signed.test"  # coldrelay-hosted, IP 127.0.0.1: SPF, DKIM and DMARC all pass
OFFSITE = "offsite.test"  # coldrelay-hosted, IP 192.0.2.10: SPF fails from loopback, only DKIM can pass
STRICT = "strict.test"  # not hosted, DMARC p=reject, no DKIM key

# (profile, template field) -> (reason, provider) that explain() must give with the profile's MX host.
EXPECTED = {
    "google": {
        "accepted": "delivered",
        "user_unknown": "userunknown",
        "greylisted": "systemerror",
        "rate_limited": "badreputation",
        "unauthenticated": "authfailure",
        "dmarc_rejected": "authfailure",
        "starttls_required": "securityerror",
    },
    "microsoft": {
        "accepted": "delivered",
        "user_unknown": "userunknown",
        "greylisted": "speeding",
        "rate_limited": "badreputation",
        "unauthenticated": "authfailure",
        "dmarc_rejected": "authfailure",
        "starttls_required": "securityerror",
    },
    "yahoo": {
        "accepted": "delivered",
        "user_unknown": "userunknown",
        "greylisted": "speeding",
        "rate_limited": "badreputation",
        "unauthenticated": "authfailure",
        "dmarc_rejected": "authfailure",
        "starttls_required": "securityerror",
    },
    "generic": {
        "accepted": "delivered",
        "user_unknown": "userunknown",
        "greylisted": "onhold",
        "rate_limited": "speeding",
        "unauthenticated": "authfailure",
        "dmarc_rejected": "authfailure",
        "starttls_required": "securityerror",
    },
}


def _filled(profile: Profile, field: str) -> str:
    template: str = getattr(profile, field)
    return template.format(
        rcpt=f"unknown-jane@{DOMAIN_OF[profile.name]}",
        domain=DOMAIN_OF[profile.name],
        sender_domain=SIGNED,
        from_domain=SIGNED,
        ip="127.0.0.1",
        mx=MX_OF[profile.name],
        message_id="<q1@signed.test>",
        token="a640c23a62f3asi1759812166b.313",
    )


@pytest.mark.parametrize(
    ("profile_name", "field"),
    [
        pytest.param(
            p,
            f,
            id=f"{p}-{f}",
        )
        for p, fields in EXPECTED.items()
        for f in fields
    ],
)
def test_explain_names_provider_and_reason_of_every_world_reply(profile_name: str, field: str) -> None:
    diagnosis = explain(_filled(PROFILES[profile_name], field), remote_host=MX_OF[profile_name])
    expected_provider = None if profile_name == "generic" else profile_name
    assert (diagnosis.reason.value, diagnosis.provider) == (EXPECTED[profile_name][field], expected_provider)


def test_treatments_follow_the_local_part_script() -> None:
    assert [treatment_for(a) for a in ("Unknown-1@x.test", "grey-2@x.test", "bounce-later-3@x.test")] == [
        "unknown",
        "greylist",
        "bounce",
    ]
    assert [treatment_for(a) for a in ("ooo-4@x.test", "reply-5@x.test", "bob@x.test", "xunknown-@x.test")] == [
        "auto-reply",
        "reply",
        "accept",
        "accept",
    ]


# --------------------------------------------------------------------------- the running world


@dataclass
class Hosted:
    sessions: sessionmaker[Session]
    plans: dict[str, RecordPlan]


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Hosted:
    """Two coldrelay-hosted domains in a real database, with their record plans."""
    base = tmp_path_factory.mktemp("hosted")
    engine = create_engine(f"sqlite:///{base / 'coldrelay.db'}")
    upgrade_database(engine)
    sessions = session_factory(engine)
    settings = load_settings(base)
    plans = {}
    with sessions() as session:
        for name, ip in ((SIGNED, "127.0.0.1"), (OFFSITE, "192.0.2.10")):
            plans[name] = plan_for(create_domain(session, name, ips=[ip]), settings)
        session.commit()
    return Hosted(sessions, plans)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, hosted: Hosted) -> Iterator[World]:
    recipients = (
        *DEFAULT_RECIPIENT_DOMAINS,
        RecipientDomain("limited.test", "google", "alt1.gmail-smtp-in.l.google.com", rate_limit=2, require_tls=False),
        RecipientDomain("limited-ms.test", "microsoft", "limited-ms-test.mail.protection.outlook.com", rate_limit=1),
    )
    with World(tmp_path_factory.mktemp("world"), sending_domains=list(hosted.plans.values()), recipient_domains=recipients) as w:
        w.add_sending_domain(STRICT, dmarc_policy="reject")
        yield w


def connect(world: World, domain: str, *, tls: bool = True, helo: str = "box.signed.test") -> smtplib.SMTP:
    """A session with the domain's MX, through STARTTLS verified against the world's CA."""
    mx = world.receivers[domain]
    client = smtplib.SMTP("127.0.0.1", mx.port, local_hostname=helo, timeout=10)
    client.ehlo()
    if tls:
        context = ssl.create_default_context(cafile=str(world.ca_file))
        client._host = mx.mx_host  # smtplib checks the certificate against the name it connected to
        client.starttls(context=context)
        client.ehlo()
    return client


def message(sender: str, to: str, message_id: str, subject: str = "Quick question") -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\n"
        f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Hi,\r\nare you the right person to talk to about hiring?\r\n"
    ).encode()


def send(client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> tuple[list[tuple[int, str]], tuple[int, str]]:
    """(RCPT answers, DATA answer) as (code, 'enhanced text') pairs; DATA is skipped when no RCPT took."""
    code, text = client.mail(sender)
    assert code == 250, text
    rcpts = [(c, t.decode()) for c, t in (client.rcpt(r) for r in recipients)]
    if not any(c == 250 for c, _ in rcpts):
        client.rset()
        return rcpts, (0, "")
    code, text = client.data(data)
    return rcpts, (code, text.decode())


def line(answer: tuple[int, str]) -> str:
    return f"{answer[0]} {answer[1]}"


def test_zones_serve_the_provider_mx_names_and_transports_point_at_them(world: World) -> None:
    resolver = Resolver([world.dns_address], timeout=2.0, retries=1)
    mx = asyncio.run(lookup_mx(resolver, "gmail.test"))
    assert [(h.host, h.ipv4) for h in mx.hosts] == [("gmail-smtp-in.l.google.com", ("127.0.0.1",))]
    a = asyncio.run(resolver.lookup("outlook-test.mail.protection.outlook.com", "A"))
    assert a.records == ("127.0.0.1",)
    transports = world.transports()
    assert transports["gmail.test"] == f"gmail-smtp-in.l.google.com:{world.receivers['gmail.test'].port}"
    assert set(DOMAIN_OF.values()) <= set(transports)


def test_google_requires_starttls_with_its_own_530_and_a_certificate_for_its_mx_name(world: World) -> None:
    plain = connect(world, "gmail.test", tls=False)
    code, text = plain.mail(f"alice@{SIGNED}")
    plain.quit()
    assert code == 530
    assert text.decode().startswith("5.7.0 Must issue a STARTTLS command first.") and text.decode().endswith(" - gsmtp")
    with connect(world, "gmail.test") as client:  # verified against the CA for gmail-smtp-in.l.google.com
        assert client.mail(f"alice@{SIGNED}")[0] == 250


@pytest.mark.parametrize("profile", ["google", "microsoft", "yahoo", "generic"])
def test_each_profile_answers_as_scripted(world: World, profile: str) -> None:
    domain = DOMAIN_OF[profile]
    sender = f"alice@{SIGNED}"
    unknown, grey, known = f"unknown-jane@{domain}", f"grey-{profile}@{domain}", f"bob-{profile}@{domain}"
    with connect(world, domain) as client:
        rcpts, data = send(client, sender, [unknown, grey, known], message(sender, known, f"<p-{profile}@signed.test>"))
        again, data2 = send(client, sender, [grey], message(sender, grey, f"<g-{profile}@signed.test>"))
    assert rcpts[0][0] >= 550 and rcpts[1][0] // 100 == 4 and rcpts[2][0] == 250
    assert again[0][0] == 250 and data[0] == data2[0] == 250
    answers = {v.recipient: v for v in world.ledger.verdicts if v.mx_host == MX_OF[profile]}
    assert answers[unknown].reply == line(rcpts[0]) and answers[unknown].final
    assert explain(answers[unknown].reply, remote_host=MX_OF[profile]).reason.value == "userunknown"
    first_grey = world.ledger.for_recipient(grey)
    assert [(v.stage, v.final) for v in first_grey] == [("rcpt", False), ("data", True)]
    assert answers[known].reply == line(data) and answers[known].auth == "spf=pass dkim=none dmarc=pass"
    assert answers[known].message_id == f"<p-{profile}@signed.test>"


@pytest.mark.parametrize("profile", ["google", "microsoft", "yahoo"])
def test_dkim_by_coldrelays_signer_passes_and_unauthenticated_mail_gets_the_provider_text(
    world: World, hosted: Hosted, profile: str
) -> None:
    domain = DOMAIN_OF[profile]
    sender, to = f"alice@{OFFSITE}", f"carol@{domain}"
    unsigned = message(sender, to, f"<u-{profile}@offsite.test>")
    signed = asyncio.run(DkimSigner(hosted.sessions).sign(message(sender, to, f"<s-{profile}@offsite.test>"), OFFSITE))
    fully = asyncio.run(DkimSigner(hosted.sessions).sign(message(f"alice@{SIGNED}", to, f"<f-{profile}@signed.test>"), SIGNED))
    with connect(world, domain, helo=f"box.{OFFSITE}") as client:
        _, refused = send(client, sender, [to], unsigned)
        _, accepted = send(client, sender, [to], signed)
        _, all_pass = send(client, f"alice@{SIGNED}", [to], fully)
    profile_text = PROFILES[profile].unauthenticated.split("{")[0]
    assert refused[0] == 550 and line(refused).startswith(profile_text)
    assert explain(line(refused), remote_host=MX_OF[profile]).reason.value == "authfailure"
    assert accepted[0] == 250 and all_pass[0] == 250
    auth = {v.message_id: v.auth for v in world.ledger.verdicts if v.stage == "data"}
    assert auth[f"<s-{profile}@offsite.test>"] == "spf=fail dkim=pass dmarc=pass"
    assert auth[f"<f-{profile}@signed.test>"] == "spf=pass dkim=pass dmarc=pass"
    assert auth[f"<u-{profile}@offsite.test>"] == "spf=fail dkim=none dmarc=fail"


def test_dmarc_reject_policy_gets_the_dmarc_text(world: World) -> None:
    sender, to = f"bounces@{SIGNED}", "dave@outlook.test"  # SPF passes for signed.test, From is strict.test
    with connect(world, "outlook.test") as client:
        _, answer = send(client, sender, [to], message(f"ceo@{STRICT}", to, "<d1@strict.test>"))
    assert line(answer) == (
        "550 5.7.509 Access denied, sending domain strict.test does not pass DMARC verification and has a DMARC policy of reject."
    )


def test_rate_limit_past_n_messages_per_ip(world: World) -> None:
    sender = f"alice@{SIGNED}"
    google = connect(world, "limited.test", tls=False)  # this Google MX does not require TLS
    answers = [
        send(google, sender, [f"r{i}@limited.test"], message(sender, f"r{i}@limited.test", f"<rl{i}@x>"))[1] for i in range(2)
    ]
    code, text = send(google, sender, ["r2@limited.test"], message(sender, "r2@limited.test", "<rl2@x>"))[1]
    assert [a[0] for a in answers] == [250, 250] and code == 421 and "4.7.28" in text
    with pytest.raises(smtplib.SMTPServerDisconnected):  # 421: Google hangs up
        google.noop()
    google.close()
    with connect(world, "limited-ms.test") as ms:
        first = send(ms, sender, ["a@limited-ms.test"], message(sender, "a@limited-ms.test", "<m1@x>"))[1]
        second = send(ms, sender, ["b@limited-ms.test"], message(sender, "b@limited-ms.test", "<m2@x>"))[1]
        assert ms.noop()[0] == 250  # 451 keeps the connection
    assert first[0] == 250 and line(second).startswith(
        "451 4.7.650 The mail server [127.0.0.1] has been temporarily rate limited"
    )
    deferred = [v for v in world.ledger.deferred() if v.recipient in ("r2@limited.test", "b@limited-ms.test")]
    assert {(v.recipient, v.stage, v.final) for v in deferred} == {
        ("r2@limited.test", "data", False),
        ("b@limited-ms.test", "data", False),
    }
    expected = world.ledger.expected_reasons(final_only=False)
    assert expected[("badreputation", "google")] >= 1 and expected[("badreputation", "microsoft")] >= 1


def test_async_events_reach_our_mx_with_the_original_message_id(world: World) -> None:
    sender = f"alice@{SIGNED}"
    recipients = ["bounce-later-erin@outlook.test", "ooo-frank@outlook.test", "reply-gina@outlook.test"]
    with connect(world, "outlook.test") as client:
        _, answer = send(client, sender, recipients, message(sender, ", ".join(recipients), "<ask1@signed.test>", "Hiring"))
    assert answer[0] == 250
    with SinkServer() as our_mx:
        events = world.send_async_events(f"127.0.0.1:{our_mx.port}")
    mine = {e.kind: e for e in events if e.answers_message_id == "<ask1@signed.test>"}
    assert set(mine) == {"bounce", "auto-reply", "reply"}
    assert all(e.delivery_reply.startswith("250") for e in mine.values())
    received = {m.data.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode(): m for m in our_mx.messages}
    bounce = received[mine["bounce"].message_id]
    assert bounce.mail_from == "<>" and bounce.rcpt_tos == [sender]
    records = parse_bounce(bounce.data)
    assert [(r.recipient, r.reason.value, r.message_id) for r in records] == [
        ("bounce-later-erin@outlook.test", "userunknown", "ask1@signed.test")  # the parser drops the brackets
    ]
    assert mine["bounce"].diagnostic is not None and mine["bounce"].diagnostic.startswith("550 5.1.10 RESOLVER.ADR")
    ooo = email.message_from_bytes(received[mine["auto-reply"].message_id].data, policy=email.policy.default)
    assert ooo["Auto-Submitted"] == "auto-replied" and ooo["In-Reply-To"] == "<ask1@signed.test>"
    assert received[mine["auto-reply"].message_id].mail_from == "<>"
    reply = email.message_from_bytes(received[mine["reply"].message_id].data, policy=email.policy.default)
    assert reply["Subject"] == "Re: Hiring" and reply["References"] == "<ask1@signed.test>"
    assert received[mine["reply"].message_id].mail_from == "reply-gina@outlook.test"
    assert world.ledger.expected_bounce_reasons()[("userunknown", "microsoft")] >= 1
    assert world.responder.pending == []


def test_bad_input_gets_clear_errors(world: World, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown provider profile 'gmail'"):
        World(tmp_path, recipient_domains=[RecipientDomain("x.test", "gmail", "mx.x.test")]).start()
    with pytest.raises(ValueError, match="our_mx must be host:port"):
        world.send_async_events("127.0.0.1")
    with pytest.raises(ValueError, match="rate_limit must be at least 1"):
        ProviderMX(
            PROFILES["generic"],
            domain="x.test",
            mx_host="mx.x.test",
            ca=world.ca,
            dns_address="",
            ledger=world.ledger,
            rate_limit=0,
        )
