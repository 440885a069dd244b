"""The mail host's settings: one typed object, loaded once and passed down.

Sources, each overriding the one before: built-in defaults, ``<data-dir>/coldrelay.toml``,
then command-line flags. The data directory itself comes from ``--data-dir`` or the
``COLDRELAY_DATA_DIR`` environment variable, which only the CLI entry reads; no other module
looks at the environment, so a test or an embedding program sees exactly the settings it built.

Every key is validated when the file is read, not when a listener first uses it: a typo in
``coldrelay.toml`` stops the start with a ``ConfigError`` that names the file, the key and what
was expected, instead of a traceback minutes later.
"""

from __future__ import annotations

import difflib
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from coldrelay.config.delivery import (
    DeliverySettings,
    DnsSettings,
    ReputationSettings,
    parse_destinations,
    parse_transports,
)
from coldrelay.config.pricing import PricingSettings, parse_tiers
from coldrelay.config.values import (
    HOSTNAME,
    Invalid,
    ListenAddress,
    boolean,
    database_url,
    duration,
    durations,
    fraction,
    hostname,
    listen,
    money,
    nameservers,
    positive_int,
    selector,
    string,
)

CONFIG_FILE_NAME = "coldrelay.toml"
DEFAULT_DATA_DIR_NAME = "data"


class ConfigError(Exception):
    """A settings source that cannot be used: says where, which key and what is expected."""

    def __init__(self, source: str, message: str, key: str | None = None) -> None:
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}: key '{key}'" if key else source
        super().__init__(f"{where}: {message}")


DEFAULT_MX_LISTEN = ListenAddress("127.0.0.1", 2525)  # production: port 25
DEFAULT_SUBMISSION_LISTEN = ListenAddress("127.0.0.1", 2587)  # production: port 587, STARTTLS
DEFAULT_SUBMISSIONS_LISTEN = ListenAddress("127.0.0.1", 2465)  # production: port 465, implicit TLS
DEFAULT_WEB_LISTEN = ListenAddress("127.0.0.1", 8080)
DEFAULT_IMAP_LISTEN = ListenAddress("127.0.0.1", 2993)  # production: port 993, implicit TLS


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """The three SMTP listeners and their TLS certificate (``None``: a self-signed one is made at first start)."""

    mx_listen: ListenAddress = DEFAULT_MX_LISTEN
    submission_listen: ListenAddress = DEFAULT_SUBMISSION_LISTEN
    submissions_listen: ListenAddress = DEFAULT_SUBMISSIONS_LISTEN
    tls_cert: Path | None = None
    tls_key: Path | None = None


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Named limits with safe defaults, in the manner of Postfix's parameters."""

    daily_cap: int = 50  # messages a mailbox may submit per day, unless the mailbox overrides it
    max_message_size: int = 26_214_400  # bytes, announced in EHLO SIZE (RFC 1870)
    max_recipients: int = 100  # RCPT TO per transaction; RFC 5321 4.5.3.1.8 asks servers to take at least 100


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The web app (reference site, tools and admin dashboard)."""

    listen: ListenAddress = DEFAULT_WEB_LISTEN


@dataclass(frozen=True, slots=True)
class DkimSettings:
    """How new DKIM keys are made."""

    selector: str = "s1"


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """IMAP for the sending platforms (Dovecot over the Maildirs), when Dovecot is installed."""

    enabled: bool = True
    listen: ListenAddress = DEFAULT_IMAP_LISTEN


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """The admin dashboard's sessions."""

    session_lifetime: float = 12 * 3600.0  # seconds a login lasts


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the mail host is configured by; build it with ``load_settings``."""

    data_dir: Path
    database_url: str
    hostname: str
    smtp: SmtpSettings = SmtpSettings()
    limits: LimitSettings = LimitSettings()
    web: WebSettings = WebSettings()
    dkim: DkimSettings = DkimSettings()
    dns: DnsSettings = field(default_factory=DnsSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    reputation: ReputationSettings = field(default_factory=ReputationSettings)
    imap: ImapSettings = ImapSettings()
    admin: AdminSettings = AdminSettings()
    pricing: PricingSettings = field(default_factory=PricingSettings)

    @property
    def config_path(self) -> Path:
        """The file these settings were read from (it may not exist: then all are defaults or flags)."""
        return self.data_dir / CONFIG_FILE_NAME


_Parser = Callable[[object], object]

# section ("" = top level) -> key -> parser. The only keys coldrelay.toml may hold; the README lists them.
_SCHEMA: dict[str, dict[str, _Parser]] = {
    "": {"database_url": database_url, "hostname": hostname},
    "smtp": {
        "mx_listen": listen,
        "submission_listen": listen,
        "submissions_listen": listen,
        "tls_cert": string,
        "tls_key": string,
    },
    "limits": {"daily_cap": positive_int, "max_message_size": positive_int, "max_recipients": positive_int},
    "web": {"listen": listen},
    "dkim": {"selector": selector},
    "dns": {"nameservers": nameservers, "timeout": duration},
    "delivery": {
        "concurrency": positive_int,
        "batch_size": positive_int,
        "lease_seconds": duration,
        "poll_interval": duration,
        "retry_schedule": durations,
        "give_up_after": duration,
        "connect_timeout": duration,
        "command_timeout": duration,
        "idle_connection_seconds": duration,
        "smarthost": listen,
        "tls_ca_file": string,
    },
    "transports": {},  # free keys: recipient domain = "host:port" (parsed as one table)
    "destinations": {},  # tables [destinations.NAME] (parsed as one table)
    "reputation": {
        "hard_bounce_threshold": fraction,
        "window": positive_int,
        "min_sends": positive_int,
        "pause_on_blocklist": boolean,
    },
    "imap": {"enabled": boolean, "listen": listen},
    "admin": {"session_lifetime": duration},
    "pricing": {
        "tiers": parse_tiers,
        "floor": money,
        "minimum_monthly": money,
        "currency": string,
        "emails_per_mailbox": positive_int,
        "mailboxes_per_domain": positive_int,
        "google_workspace_seat": money,
        "microsoft_365_seat": money,
    },
}

# Sections read whole, as one value: their keys are the user's (domains, destination names).
_WHOLE_TABLES: dict[str, _Parser] = {"transports": parse_transports, "destinations": parse_destinations}

_PLAIN_KEYS = tuple(f"{section}.{key}" if section else key for section, keys in _SCHEMA.items() for key in keys)
KNOWN_KEYS: tuple[str, ...] = _PLAIN_KEYS + tuple(f"{section}.*" for section in _WHOLE_TABLES)


def _parse(source: str, dotted: str, value: object) -> object:
    section, _, key = dotted.rpartition(".")
    parser = _SCHEMA.get(section, {}).get(key)
    if parser is None:
        close = difflib.get_close_matches(dotted, KNOWN_KEYS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(source, f"unknown key; {hint}known keys: {', '.join(KNOWN_KEYS)}", key=dotted)
    try:
        return parser(value)
    except Invalid as exc:
        raise ConfigError(source, f"expected {exc}, got {value!r}", key=dotted) from None


def _read_file(path: Path) -> dict[str, object]:
    """The file's keys flattened to ``section.key``, each already validated."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise ConfigError(source, "not valid TOML: the file must be UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(source, f"cannot be read: {exc.strerror or exc}") from None
    values: dict[str, object] = {}
    for name, value in data.items():
        if name in _WHOLE_TABLES:
            try:
                values[name] = _WHOLE_TABLES[name](value)
            except Invalid as exc:
                raise ConfigError(source, f"expected {exc}", key=name) from None
        elif name in _SCHEMA and name:
            if not isinstance(value, dict):
                raise ConfigError(source, f"expected a table [{name}], got {value!r}", key=name)
            for key, inner in value.items():
                dotted = f"{name}.{key}"
                values[dotted] = _parse(source, dotted, inner)
        else:
            values[name] = _parse(source, name, value)
    return values


def default_data_dir() -> Path:
    """``./data`` under the current directory: where a fresh checkout keeps its state (git-ignored)."""
    return Path.cwd() / DEFAULT_DATA_DIR_NAME


def ensure_data_dir(data_dir: Path) -> Path:
    """Create the data directory on first use, readable by its owner only (it holds keys and mail)."""
    if not data_dir.exists():
        data_dir.mkdir(mode=0o700, parents=True)
        data_dir.chmod(0o700)  # mkdir's mode is masked by the umask
    elif not data_dir.is_dir():
        raise ConfigError(str(data_dir), "the data directory is a file, not a directory")
    return data_dir


def load_settings(data_dir: Path, overrides: Mapping[str, object] | None = None) -> Settings:
    """Read ``<data_dir>/coldrelay.toml`` and apply ``overrides`` (flags, keyed ``section.key``) on top.

    The data directory is not created here: reading settings must not leave traces, so a mistyped
    ``--data-dir`` for a read-only command does not litter the disk (see ``ensure_data_dir``).
    """
    data_dir = data_dir.expanduser().absolute()
    path = data_dir / CONFIG_FILE_NAME
    values = _read_file(path)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            values[dotted] = _parse("command line", dotted, value)

    def get(dotted: str, default: object) -> object:
        return values.get(dotted, default)

    def data_path(dotted: str) -> Path | None:
        raw = values.get(dotted)
        return None if raw is None else data_dir / Path(str(raw)).expanduser()

    tls_cert, tls_key = data_path("smtp.tls_cert"), data_path("smtp.tls_key")
    if (tls_cert is None) != (tls_key is None):
        missing = "smtp.tls_key" if tls_key is None else "smtp.tls_cert"
        raise ConfigError(str(path), "set tls_cert and tls_key together (or neither, for a self-signed certificate)", key=missing)
    smtp_defaults, limit_defaults = SmtpSettings(), LimitSettings()
    return Settings(
        data_dir=data_dir,
        database_url=str(get("database_url", f"sqlite:///{data_dir / 'coldrelay.db'}")),
        hostname=str(get("hostname", _default_hostname())),
        smtp=SmtpSettings(
            mx_listen=_as_listen(get("smtp.mx_listen", smtp_defaults.mx_listen)),
            submission_listen=_as_listen(get("smtp.submission_listen", smtp_defaults.submission_listen)),
            submissions_listen=_as_listen(get("smtp.submissions_listen", smtp_defaults.submissions_listen)),
            tls_cert=tls_cert,
            tls_key=tls_key,
        ),
        limits=LimitSettings(
            daily_cap=_as_int(get("limits.daily_cap", limit_defaults.daily_cap)),
            max_message_size=_as_int(get("limits.max_message_size", limit_defaults.max_message_size)),
            max_recipients=_as_int(get("limits.max_recipients", limit_defaults.max_recipients)),
        ),
        web=WebSettings(listen=_as_listen(get("web.listen", WebSettings().listen))),
        dkim=DkimSettings(selector=str(get("dkim.selector", DkimSettings().selector))),
        dns=_section(DnsSettings(), "dns", values),
        delivery=_delivery(values, data_path("delivery.tls_ca_file")),
        reputation=_section(ReputationSettings(), "reputation", values),
        imap=_section(ImapSettings(), "imap", values),
        admin=_section(AdminSettings(), "admin", values),
        pricing=_pricing(values, path),
    )


_Section = TypeVar("_Section", DnsSettings, DeliverySettings, ReputationSettings, ImapSettings, AdminSettings, PricingSettings)


def _section(defaults: _Section, name: str, values: Mapping[str, object], **extra: Any) -> _Section:
    """The section's dataclass with every key the file or flags set (already parsed) put over its defaults."""
    prefix = name + "."
    changes: dict[str, Any] = {dotted[len(prefix) :]: value for dotted, value in values.items() if dotted.startswith(prefix)}
    changes.update(extra)
    return replace(defaults, **changes)


def _delivery(values: Mapping[str, object], tls_ca_file: Path | None) -> DeliverySettings:
    extra: dict[str, Any] = {"tls_ca_file": tls_ca_file}
    if "transports" in values:
        extra["transports"] = values["transports"]
    if "destinations" in values:
        extra["destinations"] = values["destinations"]
    return _section(DeliverySettings(), "delivery", values, **extra)


def _pricing(values: Mapping[str, object], path: Path) -> PricingSettings:
    pricing = _section(PricingSettings(), "pricing", values)
    if pricing.floor > min(tier.price for tier in pricing.tiers):
        raise ConfigError(str(path), "the floor is above the cheapest tier's price", key="pricing.floor")
    return pricing


def _as_listen(value: object) -> ListenAddress:
    assert isinstance(value, ListenAddress)
    return value


def _as_int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _default_hostname() -> str:
    """This machine's name, lower-cased; production sets ``hostname = "box.<domain>"`` in the file."""
    name = socket.gethostname().lower().rstrip(".")
    return name if HOSTNAME.match(name) else "localhost"
