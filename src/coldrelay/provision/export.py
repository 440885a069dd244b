"""CSV files that sending platforms import: Instantly, Smartlead, and a plain generic one.

Passwords are stored only as argon2id hashes, so an export can hold a password only when the
same run has just created or reset it; the rows are built from ``MailboxCredentials`` that the
caller fills with those clear-text passwords, and the file is written owner-only (0600).

Host names and ports are what the platforms connect to from the internet: ``box.<domain>`` on
587 (STARTTLS) for SMTP and 993 (implicit TLS) for IMAP. The listen addresses in the settings
are bind addresses (loopback and 2587 in a development setup, often behind a port forward in
production), so they are never exported; ``ExportEndpoints`` overrides exist for unusual setups.

Warm-up columns. The platforms' warm-up mail is sent through our submission service too and
counts against the mailbox's daily cap, so the cap is split: warm-up gets ``min(20, cap // 2)``
a day and campaigns the rest (a cap of 50 gives 30 campaign + 20 warm-up). Ramp-up is 1 more
warm-up message a day on Instantly and 5 on Smartlead (its API's smallest allowed step), with a
30 % reply rate on both: the values the platforms' own guides suggest for new mailboxes.
"""

from __future__ import annotations

import csv
import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from coldrelay.config import Settings

WARMUP_LIMIT = 20
INSTANTLY_WARMUP_INCREMENT = 1
SMARTLEAD_DAILY_RAMPUP = 5
WARMUP_REPLY_RATE = 30  # percent


class ExportFormat(enum.StrEnum):
    """The file layouts ``coldrelay mailbox ... --format`` writes."""

    INSTANTLY = "instantly"
    SMARTLEAD = "smartlead"
    CSV = "csv"


INSTANTLY_COLUMNS: tuple[str, ...] = (
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
    "Warmup Enabled",
    "Warmup Limit",
    "Warmup Increment",
    "Reply Rate",
)

SMARTLEAD_COLUMNS: tuple[str, ...] = (
    "from_name",
    "from_email",
    "user_name",
    "password",
    "smtp_host",
    "smtp_port",
    "imap_host",
    "imap_port",
    "max_email_per_day",
    "custom_tracking_url",
    "warmup_enabled",
    "total_warmup_per_day",
    "daily_rampup",
    "reply_rate_percentage",
    "bcc",
    "signature",
    "different_reply_to_address",
)
SMARTLEAD_BLANK_COLUMNS = frozenset({"custom_tracking_url", "bcc", "signature", "different_reply_to_address"})
"""Left empty on purpose: a tracking domain, BCC, signature and reply-to are campaign choices we cannot guess."""

GENERIC_COLUMNS: tuple[str, ...] = (
    "address",
    "name",
    "password",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "imap_host",
    "imap_port",
    "imap_security",
    "daily_limit",
)

COLUMNS: dict[ExportFormat, tuple[str, ...]] = {
    ExportFormat.INSTANTLY: INSTANTLY_COLUMNS,
    ExportFormat.SMARTLEAD: SMARTLEAD_COLUMNS,
    ExportFormat.CSV: GENERIC_COLUMNS,
}


class ExportError(ValueError):
    """An export that cannot be written; the message is meant for the person."""


def security_for(port: int, implicit_tls_port: int) -> str:
    """``SSL/TLS`` on the protocol's implicit-TLS port (465, 993), ``STARTTLS`` on any other."""
    return "SSL/TLS" if port == implicit_tls_port else "STARTTLS"


@dataclass(frozen=True, slots=True)
class ExportEndpoints:
    """Where a platform reaches a mailbox's SMTP and IMAP; a host of ``None`` means ``box.<the mailbox's domain>``."""

    smtp_host: str | None = None
    smtp_port: int = 587
    imap_host: str | None = None
    imap_port: int = 993
    imap_enabled: bool = True

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        smtp_host: str | None = None,
        smtp_port: int | None = None,
        imap_host: str | None = None,
        imap_port: int | None = None,
    ) -> ExportEndpoints:
        """The public endpoints, with any flag overrides; from the settings only whether IMAP is on.

        Not the listen addresses: see the module docstring for why those never reach an export.
        """
        for label, port in (("SMTP", smtp_port), ("IMAP", imap_port)):
            if port is not None and not 1 <= port <= 65535:
                raise ExportError(f"The {label} port must be 1 to 65535, got {port}.")
        defaults = cls()
        return cls(
            smtp_host=_host(smtp_host),
            smtp_port=smtp_port or defaults.smtp_port,
            imap_host=_host(imap_host),
            imap_port=imap_port or defaults.imap_port,
            imap_enabled=settings.imap.enabled,
        )

    def smtp_host_for(self, address: str) -> str:
        return self.smtp_host or f"box.{address.rpartition('@')[2]}"

    def imap_host_for(self, address: str) -> str:
        return self.imap_host or f"box.{address.rpartition('@')[2]}"

    @property
    def smtp_security(self) -> str:
        return security_for(self.smtp_port, 465)

    @property
    def imap_security(self) -> str:
        return security_for(self.imap_port, 993)


def _host(value: str | None) -> str | None:
    if value is None:
        return None
    host = value.strip().lower().rstrip(".")
    if not host or any(char.isspace() or char in ",/:@" for char in host):
        raise ExportError(f"{value!r} is not a host name; give one such as box.example.com")
    return host


@dataclass(frozen=True, slots=True)
class MailboxCredentials:
    """One export row's facts: ``daily_cap`` is the effective cap (the mailbox's own or the default)."""

    address: str
    display_name: str | None
    password: str
    daily_cap: int

    @property
    def first_name(self) -> str:
        """The display name's first word; without a display name, the local part's first piece, capitalised."""
        if self.display_name and self.display_name.split():
            return self.display_name.split()[0]
        local = self.address.partition("@")[0]
        return local.replace("_", ".").replace("-", ".").split(".")[0].capitalize()

    @property
    def last_name(self) -> str:
        """The rest of the display name; empty for a one-word name or no name (the only cell that can be)."""
        if not self.display_name:
            return ""
        return " ".join(self.display_name.split()[1:])

    @property
    def from_name(self) -> str:
        return self.display_name or self.first_name

    @property
    def warmup_limit(self) -> int:
        return min(WARMUP_LIMIT, self.daily_cap // 2)

    @property
    def campaign_limit(self) -> int:
        return self.daily_cap - self.warmup_limit


def _flag(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def instantly_row(item: MailboxCredentials, endpoints: ExportEndpoints) -> dict[str, str]:
    return {
        "Email": item.address,
        "First Name": item.first_name,
        "Last Name": item.last_name,
        "IMAP Username": item.address,
        "IMAP Password": item.password,
        "IMAP Host": endpoints.imap_host_for(item.address),
        "IMAP Port": str(endpoints.imap_port),
        "SMTP Username": item.address,
        "SMTP Password": item.password,
        "SMTP Host": endpoints.smtp_host_for(item.address),
        "SMTP Port": str(endpoints.smtp_port),
        "Daily Limit": str(item.campaign_limit),
        "Warmup Enabled": _flag(item.warmup_limit > 0),
        "Warmup Limit": str(item.warmup_limit),
        "Warmup Increment": str(INSTANTLY_WARMUP_INCREMENT),
        "Reply Rate": str(WARMUP_REPLY_RATE),
    }


def smartlead_row(item: MailboxCredentials, endpoints: ExportEndpoints) -> dict[str, str]:
    return {
        "from_name": item.from_name,
        "from_email": item.address,
        "user_name": item.address,
        "password": item.password,
        "smtp_host": endpoints.smtp_host_for(item.address),
        "smtp_port": str(endpoints.smtp_port),
        "imap_host": endpoints.imap_host_for(item.address),
        "imap_port": str(endpoints.imap_port),
        "max_email_per_day": str(item.campaign_limit),
        "custom_tracking_url": "",
        "warmup_enabled": _flag(item.warmup_limit > 0),
        "total_warmup_per_day": str(item.warmup_limit),
        "daily_rampup": str(SMARTLEAD_DAILY_RAMPUP),
        "reply_rate_percentage": str(WARMUP_REPLY_RATE),
        "bcc": "",
        "signature": "",
        "different_reply_to_address": "",
    }


def generic_row(item: MailboxCredentials, endpoints: ExportEndpoints) -> dict[str, str]:
    """The plain layout has no warm-up columns, so its daily limit is the whole cap."""
    return {
        "address": item.address,
        "name": item.display_name or "",
        "password": item.password,
        "smtp_host": endpoints.smtp_host_for(item.address),
        "smtp_port": str(endpoints.smtp_port),
        "smtp_security": endpoints.smtp_security,
        "imap_host": endpoints.imap_host_for(item.address),
        "imap_port": str(endpoints.imap_port),
        "imap_security": endpoints.imap_security,
        "daily_limit": str(item.daily_cap),
    }


_ROW_BUILDERS = {ExportFormat.INSTANTLY: instantly_row, ExportFormat.SMARTLEAD: smartlead_row, ExportFormat.CSV: generic_row}


def export_rows(fmt: ExportFormat, items: Sequence[MailboxCredentials], endpoints: ExportEndpoints) -> list[dict[str, str]]:
    """The rows of ``fmt`` for ``items``, keyed by that format's column names."""
    build = _ROW_BUILDERS[fmt]
    return [build(item, endpoints) for item in items]


def write_export(out: TextIO, fmt: ExportFormat, items: Sequence[MailboxCredentials], endpoints: ExportEndpoints) -> None:
    """Write the header and rows as CSV (RFC 4180 quoting, CRLF line ends, as spreadsheets write them)."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS[fmt], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(export_rows(fmt, items, endpoints))


def write_export_file(path: Path, fmt: ExportFormat, items: Sequence[MailboxCredentials], endpoints: ExportEndpoints) -> None:
    """Write a new export file, owner-only; an existing file is never replaced.

    Refusing to overwrite matters here: an older export may be the only copy of passwords that
    are in use, and nothing can recover them from the database.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ExportError(f"{path} exists already; it may hold passwords in use, so give a new file name") from None
    except OSError as exc:
        raise ExportError(f"{path}: cannot be created: {exc.strerror or exc}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as out:
            write_export(out, fmt, items, endpoints)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
