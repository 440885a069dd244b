"""A day of cold email on one machine: coldrelay as a real process, the simulated world, a campaign.

``Day`` builds a data directory the way a new user would (the CLI: ``domain add --ip``,
``mailbox bulk --export``), publishes the sending domains' record plans in the world's DNS, starts
``coldrelay serve`` (and, on PostgreSQL, extra ``serve --role delivery`` processes) pointed at the
world, lets the scripted platform send the campaign through submission, waits until every message
has reached a state it will keep for the rest of the (compressed) day, then lets the world send
its late bounces and replies and the platform read IMAP. The system test and ``make demo`` both
drive it; nothing here depends on pytest.

Time runs compressed: retries after seconds, a rate-limit window of a few seconds.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from coldrelay.config import load_settings
from coldrelay.db import DeliveryLog, LogSource, MessageState, QueuedMessage, create_engine, session_factory, utcnow
from coldrelay.db.accounts import get_domain
from coldrelay.provision.records import plan_for
from world.campaign import Campaign, Lead
from world.platform import Platform
from world.world import RecipientDomain, World

COLDRELAY = Path(sys.executable).with_name("coldrelay")
SENDING_DOMAINS = ("alpha-outreach.test", "beta-outreach.test")
NAMES = [
    "Anna Berg", "Ben Carter", "Cara Diaz", "Dan Evans", "Eva Fox",
    "Finn Gray", "Gina Hill", "Hugo Ito", "Iris Jones", "Jon Kim",
]  # fmt: skip
RECIPIENT_DOMAINS = (
    RecipientDomain("gmail.test", "google", "gmail-smtp-in.l.google.com"),
    RecipientDomain("outlook.test", "microsoft", "outlook-test.mail.protection.outlook.com"),
    RecipientDomain("yahoo.test", "yahoo", "mta5.am0.yahoodns.net", rate_limit=40),
    RecipientDomain("acme.test", "generic", "mx.acme.test"),
)
RATE_WINDOW = 4.0  # the world's "minute"
UNKNOWN_AT = (25, 30, 35, 40, 45)  # the bad list: 5 unknown users in 50 (10%), late enough not to sink the domain


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DayPlan:
    """What the day looks like; the defaults are issue 8's: 10 mailboxes x 50 messages."""

    mailboxes_per_domain: int = 5
    per_mailbox: int = 50
    daily_cap: int = 70  # the export's Daily Limit is this minus the warm-up share (20): 50
    database_url: str | None = None  # None: SQLite in the data directory
    delivery_processes: int = 0  # extra `serve --role delivery` processes (the main serve then runs none)
    web_port: int | None = None


@dataclass
class Ports:
    web: int = field(default_factory=free_port)
    mx: int = field(default_factory=free_port)
    submission: int = field(default_factory=free_port)
    submissions: int = field(default_factory=free_port)
    imap: int = field(default_factory=free_port)


class Day:
    """One day: ``prepare``, ``start``, ``send``, ``settle``, ``late_events``, then ``stop``."""

    def __init__(self, base: Path, plan: DayPlan | None = None) -> None:
        self.base = base
        self.plan = plan or DayPlan()
        self.data = base / "data"
        self.ports = Ports()
        if self.plan.web_port:
            self.ports.web = self.plan.web_port
        self.export = base / "instantly.csv"
        self.world: World | None = None
        self.processes: list[subprocess.Popen[str]] = []
        self.platform: Platform | None = None
        self.bad_mailbox = ""
        self._engine: Engine | None = None

    # --- set-up, as a new user does it -----------------------------------------------------------

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(COLDRELAY), "--data-dir", str(self.data), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"coldrelay {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def prepare(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700)
        lines = [f'hostname = "box.{SENDING_DOMAINS[0]}"']
        if self.plan.database_url:
            lines.append(f'database_url = "{self.plan.database_url}"')
        (self.data / "coldrelay.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for domain in SENDING_DOMAINS:
            self.cli("domain", "add", domain, "--ip", "127.0.0.1")
        names = self.base / "names.txt"
        names.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
        self.cli(
            "mailbox", "bulk", "--domains", ",".join(SENDING_DOMAINS), "--names", str(names),
            "--per-domain", str(self.plan.mailboxes_per_domain), "--pattern", "first",
            "--daily-limit", str(self.plan.daily_cap), "--export", str(self.export), "--format", "instantly",
        )  # fmt: skip

    def record_plans(self) -> list[object]:
        settings = load_settings(self.data)
        engine = create_engine(settings.database_url)
        try:
            with session_factory(engine)() as session:
                plans = []
                for name in SENDING_DOMAINS:
                    domain = get_domain(session, name)
                    assert domain is not None
                    plans.append(plan_for(domain, settings))
                return plans
        finally:
            engine.dispose()

    def write_config(self, world: World) -> None:
        """The rest of coldrelay.toml: ports, the world's DNS and MX hosts, compressed time, a certificate."""
        cert = world.ca.issue_cert(*(f"box.{d}" for d in SENDING_DOMAINS))
        cert.private_key_and_cert_chain_pem.write_to_path(str(self.data / "tls-chain.pem"))
        cert.private_key_pem.write_to_path(str(self.data / "tls-key.pem"))
        transports = dict(world.transports())
        for domain in SENDING_DOMAINS:  # mail to our own domains (DSNs from delivery-only nodes) reaches our MX
            transports[domain] = f"127.0.0.1:{self.ports.mx}"
        p = self.ports
        text = (self.data / "coldrelay.toml").read_text(encoding="utf-8")
        text += (
            f'[web]\nlisten = "127.0.0.1:{p.web}"\n'
            f'[smtp]\nmx_listen = "127.0.0.1:{p.mx}"\nsubmission_listen = "127.0.0.1:{p.submission}"\n'
            f'submissions_listen = "127.0.0.1:{p.submissions}"\ntls_cert = "tls-chain.pem"\ntls_key = "tls-key.pem"\n'
            f'[imap]\nlisten = "127.0.0.1:{p.imap}"\n'
            f'[dns]\nnameservers = ["{world.dns_address}"]\n'
            '[delivery]\nretry_schedule = ["2s", "3s", "5s"]\ngive_up_after = "1h"\npoll_interval = "0.2s"\n'
            'lease_seconds = "20s"\n'
            f'tls_ca_file = "{world.ca_file}"\n'
            "[transports]\n" + "".join(f'"{d}" = "{t}"\n' for d, t in transports.items())
        )
        for name in ("google", "microsoft", "yahoo", "default"):  # compressed time: the world paces itself
            text += f"[destinations.{name}]\nmax_connections = 10\nmessages_per_minute = 60000\n"
        (self.data / "coldrelay.toml").write_text(text, encoding="utf-8")

    # --- running -----------------------------------------------------------------------------------

    def start(self) -> None:
        world = World(
            self.base / "world",
            our_mx=f"127.0.0.1:{self.ports.mx}",
            sending_domains=self.record_plans(),  # type: ignore[arg-type]
            recipient_domains=RECIPIENT_DOMAINS,
            rate_window=RATE_WINDOW,
        )
        self.world = world.start()
        self.write_config(world)
        main = ["serve"] + (["--no-delivery"] if self.plan.delivery_processes else [])
        self.processes.append(self._spawn(main, "serve.log"))
        self._wait_for_port(self.ports.submission, self.processes[0])
        self._wait_for_port(self.ports.imap, self.processes[0])
        for number in range(self.plan.delivery_processes):
            self.processes.append(self._spawn(["serve", "--role", "delivery"], f"delivery-{number}.log"))

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(COLDRELAY), "--data-dir", str(self.data), *args],
            stdin=subprocess.DEVNULL,
            stdout=(self.base / log_name).open("w"),
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )

    def _wait_for_port(self, port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"coldrelay serve exited: {(self.base / 'serve.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}") from None
                time.sleep(0.2)

    def tls_context(self) -> ssl.SSLContext:
        assert self.world is not None
        context = ssl.create_default_context()
        self.world.ca.configure_trust(context)
        return context

    def leads(self, mailboxes: list[str]) -> list[Lead]:
        """Lead i goes to mailbox i % n (the platform's round robin): the first mailbox gets the bad list."""
        count = len(mailboxes)
        leads: list[Lead] = []
        domains = [r.domain for r in RECIPIENT_DOMAINS]
        for i in range(count * self.plan.per_mailbox):
            box, j = i % count, i // count
            domain = domains[(j + box) % len(domains)]
            if box == 0:
                local = f"unknown-{j}" if j in UNKNOWN_AT else f"lead{j}"
            else:
                local = {7: "grey", 13: "ooo", 17: "reply", 23: "bounce-later"}.get(j, "lead")
                local = f"{local}-{box}-{j}" if local != "lead" else f"lead{box}-{j}"
            leads.append(Lead(f"{local}@{domain}", first_name=f"Lead{j}", last_name=f"Box{box}", company="Acme"))
        return leads

    def send(self) -> Platform:
        platform = Platform.from_export(
            self.export,
            smtp_address=("127.0.0.1", self.ports.submission),
            imap_address=("127.0.0.1", self.ports.imap),
            tls_context=self.tls_context(),
        )
        mailboxes = [account.email for account in platform.mailboxes]
        self.bad_mailbox = mailboxes[0]
        campaign = Campaign(
            self.leads(mailboxes),
            per_mailbox=self.plan.per_mailbox,
            subject="Quick question, {first_name}",
            body="Hi {first_name},\n\nare you the right person to talk to about outbound at {company}?\n\n{sender_first_name}\n",
            name="day-one",
        )
        platform.send(campaign)
        self.platform = platform
        return platform

    @property
    def engine(self) -> Engine:
        """One engine for the day's own queries (polled every half second while it settles)."""
        if self._engine is None:
            self._engine = create_engine(load_settings(self.data).database_url)
        return self._engine

    def unsettled(self) -> int:
        """Messages still moving: queued, leased, or deferred and due again soon (not a paused sender's)."""
        soon = utcnow() + timedelta(minutes=2)
        with self.engine.connect() as connection:
            rows = connection.execute(select(QueuedMessage.state, QueuedMessage.next_attempt_at, QueuedMessage.last_error)).all()
        return sum(
            1
            for state, next_at, error in rows
            if state in (MessageState.QUEUED, MessageState.LEASED)
            or (state is MessageState.DEFERRED and next_at < soon and not (error or "").startswith("sending from"))
        )

    def settle(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.unsettled():
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a coldrelay process exited: see {self.base}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.unsettled()} messages still moving after {timeout} s")
            time.sleep(0.5)

    def late_events(self, timeout: float = 60) -> None:
        """The world's bounces and replies reach our MX; wait until every bounce is in the delivery log."""
        assert self.world is not None
        events = self.world.send_async_events()
        bounces = sum(1 for event in events if event.kind == "bounce")
        deadline = time.monotonic() + timeout
        while self.bounce_rows() < bounces:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.bounce_rows()} of {bounces} late bounces reached the delivery log")
            time.sleep(0.3)

    def bounce_rows(self) -> int:
        with self.engine.connect() as connection:
            return len(connection.execute(select(DeliveryLog.id).where(DeliveryLog.source == LogSource.BOUNCE)).all())

    def log_counts(self) -> Counter[tuple[str, str | None]]:
        """Final answers in the delivery log by (reason, provider): what the system test compares with the world."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(DeliveryLog.reason, DeliveryLog.provider, DeliveryLog.outcome).where(
                    DeliveryLog.source == LogSource.ATTEMPT,
                    DeliveryLog.sender.is_not(None),  # not our own DSNs, mailed to our MX by delivery-only nodes
                )
            ).all()
        return Counter((reason, provider) for reason, provider, outcome in rows if outcome in ("delivered", "bounced"))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.world is not None:
            self.world.stop()
        if self._engine is not None:
            self._engine.dispose()
