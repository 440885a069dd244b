"""Parsers for single values of ``coldrelay.toml``: each returns the typed value or raises ``Invalid``
with the wording of what it expected, which the loader turns into a ``ConfigError`` naming the key."""

from __future__ import annotations

import re
from typing import NamedTuple


class Invalid(Exception):
    """Raised by a value parser with the wording of what it expected."""


class ListenAddress(NamedTuple):
    """Where a listener binds (or a peer listens): ``host:port``, IPv6 hosts in brackets (``[::1]:25``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def string(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a non-empty string")
    return value.strip()


def positive_int(value: object) -> int:
    # bool is an int subclass: `daily_cap = true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid("a positive integer")
    return value


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def fraction(value: object) -> float:
    """A share between 0 and 1 exclusive of 0 (``0.05`` is 5%)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise Invalid("a fraction greater than 0 and at most 1, such as 0.05 for 5%")
    return float(value)


def money(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise Invalid("an amount of money, 0 or more, such as 0.55")
    return float(value)


HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def hostname(value: object) -> str:
    if not isinstance(value, str) or not HOSTNAME.match(value.strip().lower().rstrip(".")):
        raise Invalid("a host name such as box.example.com")
    return value.strip().lower().rstrip(".")


def listen(value: object) -> ListenAddress:
    expected = 'an address "host:port" such as "127.0.0.1:2525" or "[::1]:2525", port 1-65535'
    if not isinstance(value, str):
        raise Invalid(expected)
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", value.strip())
    if not match:
        raise Invalid(expected)
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise Invalid(expected)
    return ListenAddress(host, port)


def database_url(value: object) -> str:
    if not isinstance(value, str) or not re.match(r"^[a-z][a-z0-9+]*://", value.strip()):
        raise Invalid('a database URL such as "sqlite:////var/lib/coldrelay/coldrelay.db" or "postgresql+psycopg://user@host/db"')
    return value.strip()


def selector(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", value.strip().lower()):
        raise Invalid("a DKIM selector: one DNS label of letters, digits and hyphens, such as s1")
    return value.strip().lower()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: object) -> float:
    """Seconds, from ``"90s"``, ``"5m"``, ``"4h"``, ``"5d"``, ``"1.5h"`` or a plain number of seconds."""
    expected = 'a duration such as "30s", "5m", "4h" or "5d" (or a number of seconds)'
    if isinstance(value, bool):
        raise Invalid(expected)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value.lower())):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise Invalid(expected)
    if seconds <= 0:
        raise Invalid(expected + ", greater than zero")
    return seconds


def durations(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise Invalid('a non-empty list of durations such as ["5m", "15m", "1h"]')
    return tuple(duration(item) for item in value)


def nameservers(value: object) -> tuple[str, ...]:
    """Nameservers as the resolver takes them: ``"IP"`` or ``"IP:PORT"`` (``"[v6]:PORT"``)."""
    expected = 'a list of nameservers such as ["127.0.0.1", "192.0.2.53:5353"]'
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item.strip() for item in value):
        raise Invalid(expected)
    return tuple(str(item).strip() for item in value)


def domain_name(value: object) -> str:
    if not isinstance(value, str) or not HOSTNAME.match(value.strip().lower().rstrip(".")):
        raise Invalid("a domain name such as example.com")
    return value.strip().lower().rstrip(".")
