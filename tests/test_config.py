"""Settings: defaults, coldrelay.toml overrides, flags on top, and a clear error for every broken file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from coldrelay.config import (
    CONFIG_FILE_NAME,
    KNOWN_KEYS,
    ConfigError,
    ListenAddress,
    Settings,
    ensure_data_dir,
    load_settings,
)


def write_config(data_dir: Path, text: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CONFIG_FILE_NAME
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    settings = load_settings(data_dir)
    assert settings.data_dir == data_dir
    assert settings.database_url == f"sqlite:///{data_dir}/coldrelay.db"
    assert settings.hostname
    assert settings.smtp.mx_listen == ListenAddress("127.0.0.1", 2525)
    assert settings.smtp.submission_listen == ListenAddress("127.0.0.1", 2587)
    assert settings.smtp.submissions_listen == ListenAddress("127.0.0.1", 2465)
    assert settings.smtp.tls_cert is None
    assert settings.smtp.tls_key is None
    assert settings.limits.daily_cap == 50
    assert settings.limits.max_message_size == 26_214_400
    assert settings.limits.max_recipients == 100
    assert settings.web.listen == ListenAddress("127.0.0.1", 8080)
    assert settings.dkim.selector == "s1"
    assert settings.config_path == data_dir / "coldrelay.toml"
    assert not data_dir.exists(), "reading settings must not create the data directory"


def test_relative_data_dir_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("data"))
    assert settings.data_dir == tmp_path / "data"
    assert settings.database_url == f"sqlite:///{tmp_path}/data/coldrelay.db"


def test_every_key_from_the_file(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
database_url = "postgresql+psycopg://coldrelay@db.internal/coldrelay"
hostname = "Box.Example.COM."

[smtp]
mx_listen = "0.0.0.0:25"
submission_listen = "[::]:587"
submissions_listen = "192.0.2.10:465"
tls_cert = "tls/cert.pem"
tls_key = "/etc/ssl/private/box.key"

[limits]
daily_cap = 30
max_message_size = 10485760
max_recipients = 50

[web]
listen = "127.0.0.1:9000"

[dkim]
selector = "Mail2025"
""",
    )
    settings = load_settings(tmp_path)
    assert settings.database_url == "postgresql+psycopg://coldrelay@db.internal/coldrelay"
    assert settings.hostname == "box.example.com"
    assert settings.smtp.mx_listen == ListenAddress("0.0.0.0", 25)
    assert settings.smtp.submission_listen == ListenAddress("::", 587)
    assert str(settings.smtp.submission_listen) == "[::]:587"
    assert settings.smtp.submissions_listen == ListenAddress("192.0.2.10", 465)
    assert settings.smtp.tls_cert == tmp_path / "tls" / "cert.pem", "relative paths are inside the data directory"
    assert settings.smtp.tls_key == Path("/etc/ssl/private/box.key")
    assert settings.limits.daily_cap == 30
    assert settings.limits.max_message_size == 10_485_760
    assert settings.limits.max_recipients == 50
    assert settings.web.listen == ListenAddress("127.0.0.1", 9000)
    assert settings.dkim.selector == "mail2025"


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, "[limits]\ndaily_cap = 10\n")
    settings = load_settings(tmp_path)
    assert settings.limits.daily_cap == 10
    assert settings.limits.max_recipients == 100
    assert settings.smtp.mx_listen == ListenAddress("127.0.0.1", 2525)


def test_flags_override_the_file(tmp_path: Path) -> None:
    write_config(tmp_path, '[limits]\ndaily_cap = 10\n[smtp]\nmx_listen = "127.0.0.1:2526"\n')
    settings = load_settings(tmp_path, {"limits.daily_cap": 20, "smtp.mx_listen": "0.0.0.0:25", "hostname": None})
    assert settings.limits.daily_cap == 20
    assert settings.smtp.mx_listen == ListenAddress("0.0.0.0", 25)
    assert isinstance(settings, Settings)


def test_flags_are_validated_like_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, {"web.listen": "nowhere"})
    assert caught.value.source == "command line"
    assert caught.value.key == "web.listen"
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(tmp_path, {"smtp.listen": "127.0.0.1:25"})


def test_bad_toml_names_file_and_position(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[smtp\nmx_listen = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    message = str(caught.value)
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 1" in message


def test_unterminated_string(tmp_path: Path) -> None:
    write_config(tmp_path, 'hostname = "box.example.com\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    tmp_path.joinpath(CONFIG_FILE_NAME).write_bytes(b'hostname = "b\xe9x.example.com"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_settings(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    tmp_path.joinpath(CONFIG_FILE_NAME).mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[limits]\ndaily_cap = "50"\n', "limits.daily_cap", "positive integer"),
        ("[limits]\ndaily_cap = true\n", "limits.daily_cap", "positive integer"),
        ("[limits]\ndaily_cap = 0\n", "limits.daily_cap", "positive integer"),
        ("[limits]\nmax_message_size = -1\n", "limits.max_message_size", "positive integer"),
        ("[limits]\nmax_recipients = 1.5\n", "limits.max_recipients", "positive integer"),
        ("[smtp]\nmx_listen = 25\n", "smtp.mx_listen", "host:port"),
        ('[smtp]\nmx_listen = "127.0.0.1"\n', "smtp.mx_listen", "host:port"),
        ('[smtp]\nsubmission_listen = "127.0.0.1:70000"\n', "smtp.submission_listen", "port 1-65535"),
        ('[smtp]\nsubmissions_listen = "::1:465"\n', "smtp.submissions_listen", "[::1]:2525"),
        ('[web]\nlisten = "127.0.0.1:0"\n', "web.listen", "host:port"),
        ('[smtp]\ntls_cert = ""\ntls_key = "k.pem"\n', "smtp.tls_cert", "non-empty string"),
        ("[smtp]\ntls_key = 5\n", "smtp.tls_key", "non-empty string"),
        ('hostname = "box example com"\n', "hostname", "host name"),
        ("hostname = 1\n", "hostname", "host name"),
        ('database_url = "coldrelay.db"\n', "database_url", "database URL"),
        ('[dkim]\nselector = "s 1"\n', "dkim.selector", "DKIM selector"),
    ],
)
def test_wrong_types_and_values(tmp_path: Path, text: str, key: str, expected: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.key == key
    assert caught.value.source == str(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"'{key}'" in message
    assert expected in message
    assert "got" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    write_config(tmp_path, 'database = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.key == "database"
    assert "unknown key" in str(caught.value)
    assert "did you mean 'database_url'" in str(caught.value)


def test_unknown_key_in_a_section(tmp_path: Path) -> None:
    write_config(tmp_path, "[limits]\ndaily_limit = 40\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.key == "limits.daily_limit"
    assert "did you mean 'limits.daily_cap'" in str(caught.value)
    for known in KNOWN_KEYS:
        assert known in str(caught.value)


def test_unknown_section(tmp_path: Path) -> None:
    write_config(tmp_path, '[pop3]\nlisten = "127.0.0.1:110"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.key == "pop3"


def test_nested_table_in_a_section(tmp_path: Path) -> None:
    write_config(tmp_path, "[smtp.mx]\nport = 25\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.key == "smtp.mx"


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    write_config(tmp_path, "limits = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.key == "limits"
    assert "expected a table [limits]" in str(caught.value)


@pytest.mark.parametrize(("text", "missing"), [('tls_cert = "c.pem"', "smtp.tls_key"), ('tls_key = "k.pem"', "smtp.tls_cert")])
def test_certificate_and_key_go_together(tmp_path: Path, text: str, missing: str) -> None:
    write_config(tmp_path, f"[smtp]\n{text}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.key == missing
    assert "together" in str(caught.value)


def test_ensure_data_dir_creates_private_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "data"
    assert ensure_data_dir(data_dir) == data_dir
    assert data_dir.is_dir()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    ensure_data_dir(data_dir)  # a second start leaves it alone


def test_ensure_data_dir_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_text("not a directory")
    with pytest.raises(ConfigError, match="is a file"):
        ensure_data_dir(target)


# --- delivery, reputation, IMAP, admin and pricing sections ------------------------------------


def test_delivery_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    delivery = settings.delivery
    assert settings.dns.nameservers is None
    assert delivery.give_up_after == 5 * 86400
    assert delivery.retry_schedule[0] == 300 and delivery.retry_schedule[-1] == 4 * 3600
    assert delivery.retry_delay(1) == 300 and delivery.retry_delay(99) == 4 * 3600
    assert delivery.smarthost is None and dict(delivery.transports) == {}
    assert delivery.destination_for("gmail-smtp-in.l.google.com").name == "google"
    assert delivery.destination_for("example-com.mail.protection.outlook.com").name == "microsoft"
    assert delivery.destination_for("mta7.am0.yahoodns.net").name == "yahoo"
    assert delivery.destination_for("mx.notgoogle.com").name == "default"
    assert settings.reputation.hard_bounce_threshold == 0.05 and settings.reputation.window == 100
    assert settings.imap.listen == ListenAddress("127.0.0.1", 2993)
    assert settings.pricing.floor == 0.55 and settings.pricing.minimum_monthly == 50


def test_delivery_keys_from_the_file(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
[dns]
nameservers = ["127.0.0.1:5353", "[::1]:53"]
timeout = "2s"

[delivery]
retry_schedule = ["1s", "2s", "1m"]
give_up_after = "1h"
smarthost = "relay.internal:2525"
lease_seconds = 30
tls_ca_file = "ca.pem"

[transports]
"Example.TEST" = "127.0.0.1:2600"
"other.test" = "[::1]:2601"

[destinations.google]
max_connections = 2

[destinations.corp]
mx_suffixes = ["mx.corp.example"]
messages_per_minute = 10

[reputation]
hard_bounce_threshold = 0.1
min_sends = 10

[imap]
enabled = false
listen = "0.0.0.0:993"

[admin]
session_lifetime = "30m"

[pricing]
tiers = [{from = 1, price = 2.0}, {from = 10, price = 1.0}]
floor = 0.9
google_workspace_seat = 8.4
""",
    )
    settings = load_settings(tmp_path)
    assert settings.dns.nameservers == ("127.0.0.1:5353", "[::1]:53") and settings.dns.timeout == 2
    delivery = settings.delivery
    assert delivery.retry_schedule == (1, 2, 60) and delivery.give_up_after == 3600 and delivery.lease_seconds == 30
    assert delivery.smarthost == ListenAddress("relay.internal", 2525)
    assert delivery.tls_ca_file == tmp_path / "ca.pem"
    assert dict(delivery.transports) == {
        "example.test": ListenAddress("127.0.0.1", 2600),
        "other.test": ListenAddress("::1", 2601),
    }
    assert delivery.destination_for("alt1.aspmx.l.google.com").max_connections == 2
    assert delivery.destination_for("alt1.aspmx.l.google.com").messages_per_minute == 120  # untouched default
    assert delivery.destination_for("a.mx.corp.example").messages_per_minute == 10
    assert settings.reputation.hard_bounce_threshold == 0.1 and settings.reputation.min_sends == 10
    assert not settings.imap.enabled and settings.imap.listen == ListenAddress("0.0.0.0", 993)
    assert settings.admin.session_lifetime == 1800
    assert [(t.min_mailboxes, t.price) for t in settings.pricing.tiers] == [(1, 2.0), (10, 1.0)]
    assert settings.pricing.google_workspace_seat == 8.4


@pytest.mark.parametrize(
    ("text", "key", "wording"),
    [
        ('[delivery]\nretry_schedule = ["soon"]\n', "delivery.retry_schedule", "duration"),
        ("[delivery]\ngive_up_after = -5\n", "delivery.give_up_after", "greater than zero"),
        ('[transports]\n"example.test" = "nohost"\n', "transports", "host:port"),
        ('[transports]\n"bad domain" = "127.0.0.1:25"\n', "transports", "domain name"),
        ("[destinations.newcomer]\nmax_connections = 3\n", "destinations", "mx_suffixes"),
        ("[destinations.google]\nspeed = 3\n", "destinations", "unknown: speed"),
        ("[reputation]\nhard_bounce_threshold = 5\n", "reputation.hard_bounce_threshold", "fraction"),
        ("[dns]\nnameservers = []\n", "dns.nameservers", "nameservers"),
        ("[pricing]\ntiers = [{from = 5, price = 1.0}]\n", "pricing.tiers", "starting at 1"),
        ("[pricing]\nfloor = 3.0\n", "pricing.floor", "cheapest tier"),
    ],
)
def test_broken_delivery_and_pricing_keys(tmp_path: Path, text: str, key: str, wording: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.key == key
    assert wording in str(caught.value)
