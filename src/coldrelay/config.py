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
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

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


class ListenAddress(NamedTuple):
    """Where a listener binds: ``host:port``, with IPv6 hosts written in brackets (``[::1]:25``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


DEFAULT_MX_LISTEN = ListenAddress("127.0.0.1", 2525)  # production: port 25
DEFAULT_SUBMISSION_LISTEN = ListenAddress("127.0.0.1", 2587)  # production: port 587, STARTTLS
DEFAULT_SUBMISSIONS_LISTEN = ListenAddress("127.0.0.1", 2465)  # production: port 465, implicit TLS
DEFAULT_WEB_LISTEN = ListenAddress("127.0.0.1", 8080)


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
class Settings:
    """Everything the mail host is configured by; build it with ``load_settings``."""

    data_dir: Path
    database_url: str
    hostname: str
    smtp: SmtpSettings = SmtpSettings()
    limits: LimitSettings = LimitSettings()
    web: WebSettings = WebSettings()
    dkim: DkimSettings = DkimSettings()

    @property
    def config_path(self) -> Path:
        """The file these settings were read from (it may not exist: then all are defaults or flags)."""
        return self.data_dir / CONFIG_FILE_NAME


class _Invalid(Exception):
    """Raised by a key's parser with the wording of what it expected."""


def _string(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-empty string")
    return value.strip()


def _positive_int(value: object) -> int:
    # bool is an int subclass: `daily_cap = true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid("a positive integer")
    return value


_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def _hostname(value: object) -> str:
    if not isinstance(value, str) or not _HOSTNAME.match(value.strip().lower().rstrip(".")):
        raise _Invalid("a host name such as box.example.com")
    return value.strip().lower().rstrip(".")


def _listen(value: object) -> ListenAddress:
    expected = 'an address "host:port" such as "127.0.0.1:2525" or "[::1]:2525", port 1-65535'
    if not isinstance(value, str):
        raise _Invalid(expected)
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", value.strip())
    if not match:
        raise _Invalid(expected)
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise _Invalid(expected)
    return ListenAddress(host, port)


def _database_url(value: object) -> str:
    if not isinstance(value, str) or not re.match(r"^[a-z][a-z0-9+]*://", value.strip()):
        raise _Invalid(
            'a database URL such as "sqlite:////var/lib/coldrelay/coldrelay.db" or "postgresql+psycopg://user@host/db"'
        )
    return value.strip()


def _selector(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", value.strip().lower()):
        raise _Invalid("a DKIM selector: one DNS label of letters, digits and hyphens, such as s1")
    return value.strip().lower()


_Parser = Callable[[object], object]

# section ("" = top level) -> key -> parser. The only keys coldrelay.toml may hold; the README lists them.
_SCHEMA: dict[str, dict[str, _Parser]] = {
    "": {"database_url": _database_url, "hostname": _hostname},
    "smtp": {
        "mx_listen": _listen,
        "submission_listen": _listen,
        "submissions_listen": _listen,
        "tls_cert": _string,
        "tls_key": _string,
    },
    "limits": {"daily_cap": _positive_int, "max_message_size": _positive_int, "max_recipients": _positive_int},
    "web": {"listen": _listen},
    "dkim": {"selector": _selector},
}

KNOWN_KEYS: tuple[str, ...] = tuple(f"{section}.{key}" if section else key for section, keys in _SCHEMA.items() for key in keys)


def _parse(source: str, dotted: str, value: object) -> object:
    section, _, key = dotted.rpartition(".")
    parser = _SCHEMA.get(section, {}).get(key)
    if parser is None:
        close = difflib.get_close_matches(dotted, KNOWN_KEYS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(source, f"unknown key; {hint}known keys: {', '.join(KNOWN_KEYS)}", key=dotted)
    try:
        return parser(value)
    except _Invalid as exc:
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
        if name in _SCHEMA and name:
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
    )


def _as_listen(value: object) -> ListenAddress:
    assert isinstance(value, ListenAddress)
    return value


def _as_int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _default_hostname() -> str:
    """This machine's name, lower-cased; production sets ``hostname = "box.<domain>"`` in the file."""
    name = socket.gethostname().lower().rstrip(".")
    return name if _HOSTNAME.match(name) else "localhost"
