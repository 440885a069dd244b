"""The sending platform (what Instantly or Smartlead do with coldrelay's mailboxes), on loopback.

``Platform.from_export`` imports the mailbox CSV that ``coldrelay mailbox bulk --export`` writes,
``Platform.send(campaign)`` submits a campaign through coldrelay's submission service, one SMTP
session per mailbox in threads (STARTTLS, AUTH, many messages per session), and
``Platform.poll_all()`` reads every inbox over IMAP and links what came back to what was sent.

The export names the hosts the internet would use (``box.<domain>`` on 587 and 993). A test runs
everything on 127.0.0.1 at free ports, so ``smtp_address`` and ``imap_address`` map every export host
to one loopback address, like a hosts file: the TCP connection goes there while TLS still verifies
the certificate against the host name in the export (unless the caller's context skips it).

How answers are handled, as a platform does:

- 250 at the end of DATA: sent.
- Any 4xx (the daily cap, a paused sender, a local error): the mailbox is stopped for the day and
  the reason recorded; the message and the rest of its share are not sent (held). Platforms treat
  a 4xx as "try later", never as a bounced lead.
- A 5xx for one message (spoofed From, bad recipient): a submission error for that message; the
  session goes on with the next one after RSET.
- A session that cannot start (connection refused, TLS or AUTH refused): the mailbox is stopped.
"""

from __future__ import annotations

import csv
import enum
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .campaign import Campaign, Lead, Sender, build_message, new_message_id

if TYPE_CHECKING:
    from .platform_imap import InboxItem

Address = tuple[str, int]

INSTANTLY_REQUIRED = (
    "Email",
    "First Name",
    "Last Name",
    "IMAP Username",
    "IMAP Password",
    "IMAP Host",
    "IMAP Port",
    "SMTP Username",
    "SMTP Password",
    "SMTP Host",
    "SMTP Port",
    "Daily Limit",
)
SMARTLEAD_REQUIRED = (
    "from_name",
    "from_email",
    "user_name",
    "password",
    "smtp_host",
    "smtp_port",
    "imap_host",
    "imap_port",
    "max_email_per_day",
)


class PlatformError(ValueError):
    """An export the platform cannot import, or an unknown mailbox; the message says which and why."""


@dataclass(frozen=True, slots=True)
class MailboxAccount:
    """One imported mailbox: the CSV row as the platform keeps it."""

    email: str
    first_name: str
    last_name: str
    smtp_username: str
    smtp_password: str
    smtp_host: str
    smtp_port: int
    imap_username: str
    imap_password: str
    imap_host: str
    imap_port: int
    daily_limit: int

    @property
    def sender(self) -> Sender:
        return Sender(self.email, self.first_name, self.last_name)


def _port(value: str, column: str, line: int) -> int:
    try:
        port = int(value)
    except ValueError:
        raise PlatformError(f"line {line}: {column} must be a number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise PlatformError(f"line {line}: {column} must be 1 to 65535, got {port}")
    return port


def _count(value: str, column: str, line: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise PlatformError(f"line {line}: {column} must be a whole number, got {value!r}") from None
    if number < 0:
        raise PlatformError(f"line {line}: {column} must be 0 or more, got {number}")
    return number


def _instantly(row: Mapping[str, str], line: int) -> MailboxAccount:
    return MailboxAccount(
        email=row["Email"].strip().lower(),
        first_name=row["First Name"].strip(),
        last_name=row["Last Name"].strip(),
        smtp_username=row["SMTP Username"],
        smtp_password=row["SMTP Password"],
        smtp_host=row["SMTP Host"].strip(),
        smtp_port=_port(row["SMTP Port"], "SMTP Port", line),
        imap_username=row["IMAP Username"],
        imap_password=row["IMAP Password"],
        imap_host=row["IMAP Host"].strip(),
        imap_port=_port(row["IMAP Port"], "IMAP Port", line),
        daily_limit=_count(row["Daily Limit"], "Daily Limit", line),
    )


def _smartlead(row: Mapping[str, str], line: int) -> MailboxAccount:
    first, _, last = row["from_name"].strip().partition(" ")
    return MailboxAccount(
        email=row["from_email"].strip().lower(),
        first_name=first,
        last_name=last.strip(),
        smtp_username=row["user_name"],
        smtp_password=row["password"],
        smtp_host=row["smtp_host"].strip(),
        smtp_port=_port(row["smtp_port"], "smtp_port", line),
        imap_username=row["user_name"],
        imap_password=row["password"],
        imap_host=row["imap_host"].strip(),
        imap_port=_port(row["imap_port"], "imap_port", line),
        daily_limit=_count(row["max_email_per_day"], "max_email_per_day", line),
    )


def read_export(csv_path: Path) -> list[MailboxAccount]:
    """The mailboxes of an Instantly or Smartlead export (told apart by the header), in file order."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PlatformError(f"{csv_path}: cannot be read: {exc.strerror or exc}") from None
    reader = csv.DictReader(text.splitlines())
    header = set(reader.fieldnames or ())
    if set(INSTANTLY_REQUIRED) <= header:
        parse_row = _instantly
    elif set(SMARTLEAD_REQUIRED) <= header:
        parse_row = _smartlead
    else:
        raise PlatformError(f"{csv_path}: not an Instantly or Smartlead mailbox export (header: {sorted(header)})")
    accounts = [parse_row(row, number) for number, row in enumerate(reader, start=2)]
    seen: set[str] = set()
    for account in accounts:
        if account.email in seen:
            raise PlatformError(f"{csv_path}: {account.email} appears twice")
        seen.add(account.email)
    return accounts


# --- the send log --------------------------------------------------------------------------------------------------


class Outcome(enum.StrEnum):
    """What became of one planned message."""

    SENT = "sent"  # 250 after DATA
    DEFERRED = "deferred"  # a 4xx: this message was not sent and its mailbox stopped for the day
    FAILED = "failed"  # a 5xx for this message: a submission error
    HELD = "held"  # never submitted: over the mailbox's allowance, or its mailbox had stopped


@dataclass(frozen=True, slots=True)
class SmtpAnswer:
    """A reply as the platform saw it, and the step it answered."""

    step: str  # CONNECT, STARTTLS, AUTH, MAIL, RCPT, DATA
    code: int
    text: str

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.code else self.text


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One planned message: who, to whom, its Message-ID, the submission's answer (``None`` when held)."""

    campaign: str
    mailbox: str
    lead: Lead
    message_id: str | None
    outcome: Outcome
    answer: SmtpAnswer | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a mailbox stopped sending for the day."""

    mailbox: str
    answer: SmtpAnswer
    at: datetime

    @property
    def reason(self) -> str:
        """A short label for the test: ``daily-cap``, ``paused``, ``auth``, ``unreachable`` or ``temporary``."""
        text = self.answer.text.lower()
        if self.answer.step in ("CONNECT", "STARTTLS"):
            return "unreachable"
        if self.answer.step == "AUTH":
            return "auth"
        if "paused" in text:
            return "paused"
        if "cap" in text or "limit" in text:
            return "daily-cap"
        return "temporary"


class SendLog:
    """Every planned message's record, in the order outcomes became known; safe to add to from threads."""

    def __init__(self) -> None:
        self._records: list[SendRecord] = []
        self._lock = threading.Lock()

    def add(self, record: SendRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[SendRecord]:
        with self._lock:
            return list(self._records)

    def by_message_id(self) -> dict[str, SendRecord]:
        """Submitted records by Message-ID without angle brackets (how replies and DSNs quote it varies)."""
        return {normalize_id(r.message_id): r for r in self.records if r.message_id is not None}

    def of(self, mailbox: str, outcome: Outcome | None = None) -> list[SendRecord]:
        return [r for r in self.records if r.mailbox == mailbox and (outcome is None or r.outcome is outcome)]


def normalize_id(message_id: str) -> str:
    """``<abc@d>``, ``abc@d`` and `` <abc@d> `` all become ``abc@d``."""
    return message_id.strip().strip("<>").strip()


# --- SMTP sessions -------------------------------------------------------------------------------------------------


class MappedSMTP(smtplib.SMTP):
    """smtplib.SMTP that connects to ``target`` whatever host it is given, and uses that host for TLS.

    So ``MappedSMTP(("127.0.0.1", 2587), "box.example.com", 587)`` opens 127.0.0.1:2587 and verifies
    the STARTTLS certificate as box.example.com, like an /etc/hosts entry would.
    """

    def __init__(self, target: Address | None, host: str, port: int, *, timeout: float, local_hostname: str) -> None:
        self._target = target
        super().__init__(host, port, local_hostname=local_hostname, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        where = self._target or (host, port)
        return socket.create_connection(where, timeout, self.source_address)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Session:
    """One mailbox's share of a campaign being submitted over one SMTP session."""

    platform: Platform
    campaign: Campaign
    account: MailboxAccount
    leads: tuple[Lead, ...]
    results: list[SendRecord] = field(default_factory=list)
    stop: Stop | None = None

    def record(self, lead: Lead, message_id: str | None, outcome: Outcome, answer: SmtpAnswer | None) -> None:
        entry = SendRecord(self.campaign.name, self.account.email, lead, message_id, outcome, answer, _now())
        self.results.append(entry)
        self.platform.log.add(entry)

    def halt(self, answer: SmtpAnswer, pending: Iterable[Lead]) -> None:
        self.stop = Stop(self.account.email, answer, _now())
        for lead in pending:
            self.record(lead, None, Outcome.HELD, None)

    def run(self) -> None:
        if not self.leads:
            return
        account = self.account
        try:
            client = MappedSMTP(
                self.platform.smtp_address,
                account.smtp_host,
                account.smtp_port,
                timeout=self.platform.timeout,
                local_hostname=self.platform.ehlo_name,
            )
        except (OSError, smtplib.SMTPException) as exc:
            self.halt(SmtpAnswer("CONNECT", 0, f"cannot connect: {exc}"), self.leads)
            return
        try:
            if not self._start(client):
                return
            for index, lead in enumerate(self.leads):
                answer = self._submit(client, lead)
                if answer is not None:  # temporary: stop the mailbox; this lead was recorded as deferred
                    self.halt(answer, self.leads[index + 1 :])
                    return
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    def _start(self, client: MappedSMTP) -> bool:
        """EHLO, STARTTLS, EHLO, AUTH; on any refusal the mailbox stops with every lead held."""
        step = "STARTTLS"
        try:
            client.ehlo()
            client.starttls(context=self.platform.tls_context)
            client.ehlo()
            step = "AUTH"
            client.login(self.account.smtp_username, self.account.smtp_password)
        except smtplib.SMTPResponseException as exc:
            self.halt(SmtpAnswer(step, exc.smtp_code, _text(exc.smtp_error)), self.leads)
            return False
        except (OSError, smtplib.SMTPException) as exc:  # TLS failure, no STARTTLS, dropped connection
            self.halt(SmtpAnswer(step, 0, f"{type(exc).__name__}: {exc}"), self.leads)
            return False
        return True

    def _submit(self, client: MappedSMTP, lead: Lead) -> SmtpAnswer | None:
        """One transaction; returns the answer when it was temporary (the caller stops), else ``None``."""
        sender = self.account.sender
        message_id = new_message_id(sender)
        data = build_message(self.campaign, lead, sender, message_id)
        try:
            code, text = client.mail(sender.address)
            if code >= 300:
                return self._refused(client, lead, message_id, SmtpAnswer("MAIL", code, _text(text)))
            code, text = client.rcpt(lead.email)
            if code >= 300:
                return self._refused(client, lead, message_id, SmtpAnswer("RCPT", code, _text(text)))
            code, text = client.data(data)
        except smtplib.SMTPResponseException as exc:  # DATA refused before the content (no 354)
            return self._refused(client, lead, message_id, SmtpAnswer("DATA", exc.smtp_code, _text(exc.smtp_error)))
        except (OSError, smtplib.SMTPException) as exc:
            answer = SmtpAnswer("DATA", 0, f"connection lost: {exc}")
            self.record(lead, message_id, Outcome.DEFERRED, answer)
            return answer
        answer = SmtpAnswer("DATA", code, _text(text))
        if code == 250:
            self.record(lead, message_id, Outcome.SENT, answer)
            self.platform.count_sent(self.account.email)
            return None
        return self._refused(client, lead, message_id, answer)

    def _refused(self, client: MappedSMTP, lead: Lead, message_id: str, answer: SmtpAnswer) -> SmtpAnswer | None:
        self.record(lead, message_id, Outcome.DEFERRED if answer.temporary else Outcome.FAILED, answer)
        try:
            client.rset()
        except (OSError, smtplib.SMTPException):
            return answer if answer.temporary else SmtpAnswer("RSET", 0, "connection lost after a refusal")
        return answer if answer.temporary else None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


# --- the platform --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailboxStats:
    """What the day looked like for one mailbox: submissions and what its inbox holds."""

    mailbox: str
    sent: int
    failed: int
    held: int
    stop: Stop | None
    replies: tuple[str, ...]  # Message-IDs (no brackets) of our messages that got a human reply
    auto_replies: tuple[str, ...]
    bounces: tuple[str, ...]  # Message-IDs our bounced messages had (linked through the DSN)
    bounced_recipients: tuple[str, ...]
    unlinked: int  # inbox items that answer nothing we sent (or that could not be linked)


class Platform:
    """Imported mailboxes, their day's sending, and what their inboxes hold."""

    def __init__(
        self,
        mailboxes: Sequence[MailboxAccount],
        *,
        smtp_address: Address | None = None,
        imap_address: Address | None = None,
        tls_context: ssl.SSLContext | None = None,
        ehlo_name: str = "sender.platform.test",
        timeout: float = 15.0,
        max_sessions: int = 16,
    ) -> None:
        if not mailboxes:
            raise PlatformError("no mailboxes to send from")
        self.mailboxes: tuple[MailboxAccount, ...] = tuple(mailboxes)
        self._by_address = {account.email: account for account in self.mailboxes}
        self.smtp_address = smtp_address
        self.imap_address = imap_address
        self.tls_context = tls_context or ssl.create_default_context()
        self.ehlo_name = ehlo_name
        self.timeout = timeout
        self.max_sessions = max_sessions
        self.log = SendLog()
        self.stops: dict[str, Stop] = {}
        self.inboxes: dict[str, list[InboxItem]] = {}
        self._sent: dict[str, int] = dict.fromkeys(self._by_address, 0)
        self._lock = threading.Lock()

    @classmethod
    def from_export(
        cls,
        csv_path: Path,
        *,
        smtp_address: Address | None = None,
        imap_address: Address | None = None,
        tls_context: ssl.SSLContext | None = None,
        ehlo_name: str = "sender.platform.test",
        timeout: float = 15.0,
        max_sessions: int = 16,
    ) -> Platform:
        """Import an Instantly (or Smartlead) mailbox export; see the module docstring for the address overrides."""
        return cls(
            read_export(csv_path),
            smtp_address=smtp_address,
            imap_address=imap_address,
            tls_context=tls_context,
            ehlo_name=ehlo_name,
            timeout=timeout,
            max_sessions=max_sessions,
        )

    def mailbox(self, address: str) -> MailboxAccount:
        try:
            return self._by_address[address.strip().lower()]
        except KeyError:
            raise PlatformError(f"{address} is not one of the imported mailboxes") from None

    def sent_today(self, address: str) -> int:
        with self._lock:
            return self._sent[self.mailbox(address).email]

    def count_sent(self, address: str) -> None:
        with self._lock:
            self._sent[address] += 1

    def room(self, address: str) -> int:
        """Messages the mailbox may still send today: its Daily Limit less what it sent; 0 once stopped."""
        account = self.mailbox(address)
        if account.email in self.stops:
            return 0
        return max(0, account.daily_limit - self.sent_today(account.email))

    def send(self, campaign: Campaign) -> list[SendRecord]:
        """Submit ``campaign``: one session per mailbox with something to send, sessions in parallel threads.

        Returns this campaign's records (also added to ``self.log``); stopped mailboxes land in ``self.stops``.
        """
        order = [account.email for account in self.mailboxes]
        plans = campaign.plan(order, {address: self.room(address) for address in order})
        sessions = [_Session(self, campaign, self._by_address[plan.mailbox], plan.send) for plan in plans]
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_sessions, len(sessions)))) as pool:
            for future in [pool.submit(session.run) for session in sessions]:
                future.result()
        for plan, session in zip(plans, sessions, strict=True):
            for lead in plan.held:  # after what was submitted, so each mailbox's records read in lead order
                session.record(lead, None, Outcome.HELD, None)
            if session.stop is not None:
                self.stops[session.stop.mailbox] = session.stop
        return [record for session in sessions for record in session.results]

    def poll_imap(self, address: str) -> list[InboxItem]:
        """Read the mailbox's INBOX over IMAP (implicit TLS) and classify every message; kept in ``self.inboxes``."""
        from .platform_imap import fetch_inbox

        account = self.mailbox(address)
        items = fetch_inbox(account, self.imap_address, self.tls_context, self.log, timeout=self.timeout)
        self.inboxes[account.email] = items
        return items

    def poll_all(self) -> dict[str, list[InboxItem]]:
        """``poll_imap`` for every mailbox, in parallel threads."""
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_sessions, len(self.mailboxes)))) as pool:
            found = dict(zip(self._by_address, pool.map(self.poll_imap, self._by_address), strict=True))
        return found

    def stats(self) -> dict[str, MailboxStats]:
        """Per mailbox: sent / failed / held counts, the stop, and what the last poll found."""
        from .platform_imap import InboxKind

        result = {}
        for address in self._by_address:
            items = self.inboxes.get(address, [])

            def linked(kind: InboxKind, items: list[InboxItem] = items) -> tuple[str, ...]:
                return tuple(i.linked_id for i in items if i.kind is kind and i.linked_id is not None)

            result[address] = MailboxStats(
                mailbox=address,
                sent=len(self.log.of(address, Outcome.SENT)),
                failed=len(self.log.of(address, Outcome.FAILED)),
                held=len(self.log.of(address, Outcome.HELD)),
                stop=self.stops.get(address),
                replies=linked(InboxKind.REPLY),
                auto_replies=linked(InboxKind.AUTO_REPLY),
                bounces=linked(InboxKind.BOUNCE),
                bounced_recipients=tuple(r for i in items if i.kind is InboxKind.BOUNCE for r in i.failed_recipients),
                unlinked=sum(1 for i in items if i.linked_id is None),
            )
        return result
