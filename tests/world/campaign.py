"""A cold-email campaign as a sending platform holds it: leads, templates, which mailbox writes to whom.

Pure data and message building, no network: ``Campaign.plan`` deals the leads to mailboxes
round-robin in a fixed order and ``build_message`` writes the message a platform would submit, so a
test can predict exactly which mailbox sends to which lead and how many each may send.

Assignment is strict round-robin (lead ``i`` goes to mailbox ``i % n``, mailboxes in export order)
and is never re-balanced: a lead whose mailbox has no room left today is held back for tomorrow,
as Instantly and Smartlead do with a lead already bound to a sender, rather than moved to another
mailbox. That keeps "sent + held" per mailbox equal to what was assigned to it.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

TEMPLATE_FIELDS = frozenset({"first_name", "last_name", "company", "email", "sender_first_name", "sender_last_name"})
"""Placeholders a subject or body may use: the lead's fields and the sending mailbox's name."""

UNSUBSCRIBE_HOST = "unsubscribe.platform.test"
"""Where the one-click unsubscribe link points: a name that never resolves, the link is only a header."""


class CampaignError(ValueError):
    """A campaign that cannot run as given (bad template, no mailboxes); the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Lead:
    """One prospect from the platform's lead list."""

    email: str
    first_name: str = ""
    last_name: str = ""
    company: str = ""

    def __post_init__(self) -> None:
        local, at, domain = self.email.partition("@")
        if not (local and at and "." in domain) or any(char.isspace() for char in self.email):
            raise CampaignError(f"{self.email!r} is not an email address")


@dataclass(frozen=True, slots=True)
class Sender:
    """What message building needs to know about a sending mailbox."""

    address: str
    first_name: str
    last_name: str

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class Assignment:
    """The leads one mailbox writes to in a campaign: ``send`` now, ``held`` kept for another day."""

    mailbox: str
    send: tuple[Lead, ...]
    held: tuple[Lead, ...]


def _check_template(name: str, template: str) -> None:
    """Refuse unknown placeholders and broken braces up front, not halfway through a send."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise CampaignError(f"the {name} template is malformed: {exc}") from None
    for _text, placeholder, _spec, _conversion in parsed:
        if placeholder is not None and placeholder not in TEMPLATE_FIELDS:
            known = ", ".join(sorted(TEMPLATE_FIELDS))
            raise CampaignError(f"the {name} template uses {{{placeholder}}}; known placeholders: {known}")


@dataclass(frozen=True)
class Campaign:
    """Leads, a per-mailbox allowance for this campaign, and the templates every message is written from.

    ``per_mailbox`` is the most this campaign sends from one mailbox; the platform also applies
    each mailbox's Daily Limit from the export (less what it already sent today), whichever is lower.
    """

    leads: Sequence[Lead]
    per_mailbox: int
    subject: str = "Quick question, {first_name}"
    body: str = "Hi {first_name},\r\n\r\nWould {company} like fewer bounced emails?\r\n\r\n{sender_first_name}\r\n"
    name: str = "campaign"
    unsubscribe: bool = True
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.per_mailbox < 0:
            raise CampaignError(f"per_mailbox must be 0 or more, got {self.per_mailbox}")
        _check_template("subject", self.subject)
        _check_template("body", self.body)

    def plan(self, mailboxes: Sequence[str], room: Mapping[str, int]) -> list[Assignment]:
        """Deal the leads round-robin over ``mailboxes`` (in that order); each sends at most
        ``min(per_mailbox, room[mailbox])`` of its share, in lead order, and holds back the rest."""
        if not mailboxes:
            raise CampaignError("a campaign needs at least one mailbox")
        shares: dict[str, list[Lead]] = {address: [] for address in mailboxes}
        for index, lead in enumerate(self.leads):
            shares[mailboxes[index % len(mailboxes)]].append(lead)
        plans = []
        for address in mailboxes:
            allowed = max(0, min(self.per_mailbox, room.get(address, 0)))
            share = shares[address]
            plans.append(Assignment(address, tuple(share[:allowed]), tuple(share[allowed:])))
        return plans

    def render(self, lead: Lead, sender: Sender) -> tuple[str, str]:
        """(subject, body) for one lead; an empty first name reads "there", as platforms' fallbacks do."""
        values = {
            "first_name": lead.first_name or "there",
            "last_name": lead.last_name,
            "company": lead.company or "your team",
            "email": lead.email,
            "sender_first_name": sender.first_name,
            "sender_last_name": sender.last_name,
        }
        return self.subject.format_map(values), self.body.format_map(values)


def new_message_id(sender: Sender) -> str:
    """``<...@mailbox domain>``, as platforms set it so replies thread and DSNs carry it back."""
    return make_msgid(idstring=uuid.uuid4().hex[:12], domain=sender.domain)


def build_message(campaign: Campaign, lead: Lead, sender: Sender, message_id: str, now: datetime | None = None) -> bytes:
    """The message as submitted: CRLF line ends, plain text UTF-8, the headers a platform adds.

    ``List-Unsubscribe`` with ``List-Unsubscribe-Post`` is the RFC 8058 one-click form the large
    mailbox providers require of bulk senders; the token is the Message-ID, so it is unique per lead.
    """
    subject, body = campaign.render(lead, sender)
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((sender.display_name, sender.address)) if sender.display_name else sender.address
    to_name = f"{lead.first_name} {lead.last_name}".strip()
    message["To"] = formataddr((to_name, lead.email)) if to_name else lead.email
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(now or datetime.now(UTC))
    if campaign.unsubscribe:
        token = message_id.strip("<>").partition("@")[0]
        message["List-Unsubscribe"] = f"<https://{UNSUBSCRIBE_HOST}/u/{token}>, <mailto:unsubscribe+{token}@{sender.domain}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in campaign.extra_headers.items():
        message[name] = value
    message.set_content(body.replace("\r\n", "\n"), charset="utf-8")
    return message.as_bytes()
