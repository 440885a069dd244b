"""The platform's inbox reading: IMAP over implicit TLS, and what each message in INBOX is.

A platform polls every sending mailbox to stop sequences for leads who answered and to count
bounces. Each INBOX message becomes an ``InboxItem`` of one kind, decided in this order (a DSN
carries ``Auto-Submitted`` too, so bounces are tested first):

- ``BOUNCE``: ``multipart/report`` or from MAILER-DAEMON / postmaster; ``coldrelay.bounces.parse``
  gives the failed recipients and the Message-ID in the returned headers, which links it.
- ``AUTO_REPLY``: ``Auto-Submitted`` other than ``no`` (RFC 3834), the X-Autoreply family,
  ``Precedence: auto_reply``, or an out-of-office subject.
- ``REPLY``: ``In-Reply-To`` or ``References`` names one of our Message-IDs, or (as platforms do for
  clients that drop those headers) it comes from a lead this mailbox wrote to.
- ``OTHER``: anything else (warm-up traffic, newsletters, a stranger).

Messages are fetched with ``BODY.PEEK[]`` so polling never marks anything read, as a platform
that shares the inbox with a person must not.
"""

from __future__ import annotations

import enum
import imaplib
import re
import socket
import ssl
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

from coldrelay.bounces import BounceRecord
from coldrelay.bounces import parse as parse_bounce

from .platform import Address, MailboxAccount, Outcome, SendLog, SendRecord, normalize_id

_MESSAGE_IDS = re.compile(r"<([^<>\s]+)>")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster")
_AUTO_SUBJECTS = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|autoreply|abwesenheit)", re.I)


class ImapError(RuntimeError):
    """A mailbox whose INBOX could not be read; the message names the mailbox and the server's answer."""


class InboxKind(enum.StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto-reply"
    BOUNCE = "bounce"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One INBOX message as the platform understood it."""

    mailbox: str
    uid: int
    kind: InboxKind
    sender: str  # the From address, lower case ("" if none)
    subject: str
    message_id: str  # its own Message-ID, without brackets
    references: tuple[str, ...]  # In-Reply-To then References, without brackets, in order
    linked: SendRecord | None  # the message of ours it answers or reports on
    linked_by: str | None  # "header", "dsn" or "address": how the link was found
    failed_recipients: tuple[str, ...] = ()  # bounces: recipients reported failed (not merely delayed)
    bounce_records: tuple[BounceRecord, ...] = ()

    @property
    def linked_id(self) -> str | None:
        return None if self.linked is None or self.linked.message_id is None else normalize_id(self.linked.message_id)


class MappedIMAP(imaplib.IMAP4_SSL):
    """IMAP4_SSL that connects to ``target`` while verifying TLS as ``host`` (see ``MappedSMTP``)."""

    def __init__(self, target: Address | None, host: str, port: int, *, ssl_context: ssl.SSLContext, timeout: float) -> None:
        self._target = target
        super().__init__(host, port, ssl_context=ssl_context, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        plain = socket.create_connection(self._target or (self.host, self.port), timeout)
        wrapped: socket.socket = self.ssl_context.wrap_socket(plain, server_hostname=self.host)
        return wrapped


def fetch_inbox(
    account: MailboxAccount, target: Address | None, context: ssl.SSLContext, log: SendLog, *, timeout: float = 15.0
) -> list[InboxItem]:
    """Log in with the export's IMAP credentials, read INBOX (read-only) and classify every message."""
    raw_messages = _fetch(account, target, context, timeout)
    index = log.by_message_id()
    leads = {r.lead.email.lower(): r for r in log.records if r.mailbox == account.email and r.outcome is Outcome.SENT}
    return [classify(account.email, uid, raw, index, leads) for uid, raw in raw_messages]


def _fetch(account: MailboxAccount, target: Address | None, context: ssl.SSLContext, timeout: float) -> list[tuple[int, bytes]]:
    try:
        client = MappedIMAP(target, account.imap_host, account.imap_port, ssl_context=context, timeout=timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapError(f"{account.email}: cannot reach IMAP at {account.imap_host}:{account.imap_port}: {exc}") from exc
    try:
        try:
            client.login(account.imap_username, account.imap_password)
        except imaplib.IMAP4.error as exc:
            raise ImapError(f"{account.email}: IMAP login refused: {exc}") from exc
        status, data = client.select("INBOX", readonly=True)
        if status != "OK":
            raise ImapError(f"{account.email}: SELECT INBOX failed: {data!r}")
        if int(data[0] or b"0") == 0:
            return []
        status, fetched = client.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        if status != "OK":
            raise ImapError(f"{account.email}: FETCH failed: {fetched!r}")
        messages = []
        for part in fetched:
            if isinstance(part, tuple):
                found = _FETCH_UID.search(part[0])
                if found is not None:
                    messages.append((int(found.group(1)), part[1]))
        return sorted(messages)
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            client.shutdown()


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    return "" if value is None else " ".join(str(value).split())


def _referenced_ids(message: Message) -> tuple[str, ...]:
    found: list[str] = []
    for name in ("In-Reply-To", "References"):
        for match in _MESSAGE_IDS.findall(_header(message, name)):
            if match not in found:
                found.append(match)
    return tuple(found)


def is_bounce(message: Message, sender: str) -> bool:
    content_type = message.get_content_type()
    return content_type == "multipart/report" or sender.partition("@")[0] in _BOUNCE_SENDERS


def is_auto_reply(message: Message) -> bool:
    auto_submitted = _header(message, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if any(message.get(name) is not None for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse")):
        return True
    if _header(message, "Precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECTS.match(_header(message, "Subject")))


def classify(mailbox: str, uid: int, raw: bytes, by_id: dict[str, SendRecord], by_lead: dict[str, SendRecord]) -> InboxItem:
    """One message's kind and link; ``by_id`` maps our Message-IDs (no brackets), ``by_lead`` this mailbox's
    sent records by lead address."""
    message = BytesParser(policy=compat32).parsebytes(raw)
    sender = parseaddr(_header(message, "From"))[1].lower()
    references = _referenced_ids(message)
    header_link = next((by_id[ref] for ref in references if ref in by_id), None)

    def item(kind: InboxKind, linked: SendRecord | None, how: str | None, records: tuple[BounceRecord, ...] = ()) -> InboxItem:
        failed = tuple(dict.fromkeys(r.recipient for r in records if r.action != "delayed"))
        subject, own_id = _header(message, "Subject"), normalize_id(_header(message, "Message-ID"))
        return InboxItem(
            mailbox, uid, kind, sender, subject, own_id, references, linked, how if linked else None, failed, records
        )

    if is_bounce(message, sender):
        records = tuple(parse_bounce(raw))
        returned = (by_id.get(normalize_id(r.message_id)) for r in records if r.message_id)
        dsn_link = next((record for record in returned if record is not None), None)
        if dsn_link is not None:
            return item(InboxKind.BOUNCE, dsn_link, "dsn", records)
        if header_link is not None:
            return item(InboxKind.BOUNCE, header_link, "header", records)
        # No returned headers: a recipient this mailbox wrote to is the best remaining clue.
        recipient_link = next((by_lead[r.recipient] for r in records if r.recipient in by_lead), None)
        return item(InboxKind.BOUNCE, recipient_link, "address", records)
    kind = InboxKind.AUTO_REPLY if is_auto_reply(message) else InboxKind.REPLY
    if header_link is not None:
        return item(kind, header_link, "header")
    senders = [address.lower() for _name, address in getaddresses([_header(message, "From"), _header(message, "Reply-To")])]
    address_link = next((by_lead[address] for address in senders if address in by_lead), None)
    if address_link is not None:
        return item(kind, address_link, "address")
    return item(InboxKind.OTHER if kind is InboxKind.REPLY else kind, None, None)
