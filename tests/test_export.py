"""The export files sending platforms import: exact headers, every value, endpoints, and the file's safety."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from coldrelay.config import load_settings
from coldrelay.provision.export import (
    ExportEndpoints,
    ExportError,
    ExportFormat,
    MailboxCredentials,
    write_export,
    write_export_file,
)

ANNA = MailboxCredentials("anna@one.test", "Anna Berg", "Pw0rdPw0rdPw0rdPw0rd", 50)


def parse(fmt: ExportFormat, items: list[MailboxCredentials], endpoints: ExportEndpoints | None = None) -> csv.DictReader[str]:
    out = io.StringIO(newline="")
    write_export(out, fmt, items, endpoints or ExportEndpoints())
    return csv.DictReader(io.StringIO(out.getvalue(), newline=""))


def test_instantly_header_and_row() -> None:
    reader = parse(ExportFormat.INSTANTLY, [ANNA])
    assert reader.fieldnames == [
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
    ]
    assert list(reader) == [
        {
            "Email": "anna@one.test",
            "First Name": "Anna",
            "Last Name": "Berg",
            "IMAP Username": "anna@one.test",
            "IMAP Password": "Pw0rdPw0rdPw0rdPw0rd",
            "IMAP Host": "box.one.test",
            "IMAP Port": "993",
            "SMTP Username": "anna@one.test",
            "SMTP Password": "Pw0rdPw0rdPw0rdPw0rd",
            "SMTP Host": "box.one.test",
            "SMTP Port": "587",
            "Daily Limit": "30",
            "Warmup Enabled": "TRUE",
            "Warmup Limit": "20",
            "Warmup Increment": "1",
            "Reply Rate": "30",
        }
    ]


def test_smartlead_header_and_documented_blanks() -> None:
    reader = parse(ExportFormat.SMARTLEAD, [ANNA])
    assert reader.fieldnames == [
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
    ]
    [row] = list(reader)
    assert {column for column, value in row.items() if value == ""} == {
        "custom_tracking_url",
        "bcc",
        "signature",
        "different_reply_to_address",
    }
    assert (row["from_name"], row["from_email"], row["user_name"], row["password"]) == (
        "Anna Berg",
        "anna@one.test",
        "anna@one.test",
        "Pw0rdPw0rdPw0rdPw0rd",
    )
    assert (row["smtp_host"], row["smtp_port"], row["imap_host"], row["imap_port"]) == (
        "box.one.test",
        "587",
        "box.one.test",
        "993",
    )
    assert (row["max_email_per_day"], row["warmup_enabled"], row["total_warmup_per_day"]) == ("30", "TRUE", "20")
    assert (row["daily_rampup"], row["reply_rate_percentage"]) == ("5", "30")


def test_generic_header_and_security_labels() -> None:
    endpoints = ExportEndpoints(smtp_port=465, imap_port=143)
    reader = parse(ExportFormat.CSV, [ANNA], endpoints)
    assert reader.fieldnames == [
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
    ]
    [row] = list(reader)
    assert (row["smtp_port"], row["smtp_security"]) == ("465", "SSL/TLS")
    assert (row["imap_port"], row["imap_security"]) == ("143", "STARTTLS")
    assert row["daily_limit"] == "50"  # no warm-up columns here, so the whole cap


@pytest.mark.parametrize(
    ("cap", "campaign", "warmup", "enabled"),
    [(50, "30", "20", "TRUE"), (30, "15", "15", "TRUE"), (1, "1", "0", "FALSE"), (0, "0", "0", "FALSE")],
)
def test_warmup_never_pushes_past_the_daily_cap(cap: int, campaign: str, warmup: str, enabled: str) -> None:
    item = MailboxCredentials("anna@one.test", "Anna Berg", "x" * 20, cap)
    [instantly] = list(parse(ExportFormat.INSTANTLY, [item]))
    assert (instantly["Daily Limit"], instantly["Warmup Limit"], instantly["Warmup Enabled"]) == (campaign, warmup, enabled)
    [smartlead] = list(parse(ExportFormat.SMARTLEAD, [item]))
    assert (smartlead["max_email_per_day"], smartlead["total_warmup_per_day"]) == (campaign, warmup)


def test_names_without_a_display_name_and_awkward_characters() -> None:
    no_name = MailboxCredentials("jan.de-vries@one.test", None, "x" * 20, 50)
    comma = MailboxCredentials("bob@one.test", 'Bob "The Builder", Jr.', "y" * 20, 50)
    rows = list(parse(ExportFormat.INSTANTLY, [no_name, comma]))
    assert (rows[0]["First Name"], rows[0]["Last Name"]) == ("Jan", "")
    assert (rows[1]["First Name"], rows[1]["Last Name"]) == ("Bob", '"The Builder", Jr.')  # quoted, not split
    [smartlead] = list(parse(ExportFormat.SMARTLEAD, [no_name]))
    assert smartlead["from_name"] == "Jan"


def test_endpoints_from_dev_settings_stay_public(tmp_path: Path) -> None:
    # A development setup listens on loopback and high ports; the export must still name the public endpoints.
    (tmp_path / "coldrelay.toml").write_text(
        '[smtp]\nsubmission_listen = "127.0.0.1:2587"\n[imap]\nlisten = "127.0.0.1:2993"\nenabled = false\n'
    )
    settings = load_settings(tmp_path)
    endpoints = ExportEndpoints.from_settings(settings)
    assert (endpoints.smtp_host_for("a@one.test"), endpoints.smtp_port, endpoints.smtp_security) == (
        "box.one.test",
        587,
        "STARTTLS",
    )
    assert (endpoints.imap_host_for("a@two.test"), endpoints.imap_port, endpoints.imap_security) == (
        "box.two.test",
        993,
        "SSL/TLS",
    )
    assert endpoints.imap_enabled is False
    custom = ExportEndpoints.from_settings(
        settings, smtp_host="Mail.Example.NET.", smtp_port=2587, imap_host="imap.example.net", imap_port=2993
    )
    assert (custom.smtp_host_for("a@one.test"), custom.smtp_port) == ("mail.example.net", 2587)
    assert (custom.imap_host_for("a@one.test"), custom.imap_port) == ("imap.example.net", 2993)
    with pytest.raises(ExportError, match="port must be 1 to 65535"):
        ExportEndpoints.from_settings(settings, smtp_port=70000)
    with pytest.raises(ExportError, match="is not a host name"):
        ExportEndpoints.from_settings(settings, imap_host="imap.example.net:993")


def test_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_export_file(path, ExportFormat.CSV, [ANNA], ExportEndpoints())
    assert path.stat().st_mode & 0o777 == 0o600
    data = path.read_bytes()
    assert data.startswith(b"address,name,password,") and data.endswith(b"\r\n")
    with pytest.raises(ExportError, match="exists already"):
        write_export_file(path, ExportFormat.INSTANTLY, [ANNA], ExportEndpoints())
    assert path.read_bytes() == data
    with pytest.raises(ExportError, match="cannot be created"):
        write_export_file(tmp_path / "missing" / "out.csv", ExportFormat.CSV, [ANNA], ExportEndpoints())
