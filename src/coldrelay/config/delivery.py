"""Settings of outbound delivery: DNS, routing overrides, politeness per destination, retries and
the reputation guard. Defaults are what a careful sender would choose; every one can be changed in
``coldrelay.toml`` (the README lists the keys)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from coldrelay.config.values import Invalid, ListenAddress, domain_name, listen, positive_int

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """The resolver delivery and the inbound checks use (``None``: the system's nameservers)."""

    nameservers: tuple[str, ...] | None = None
    timeout: float = 3.0


@dataclass(frozen=True, slots=True)
class DestinationLimits:
    """Politeness towards one receiver: how many connections at once and how many messages a minute.

    A destination is recognised by the suffix of the MX host we connect to (every Google MX ends in
    ``google.com``), so all of a provider's MX hosts share one budget. Hosts no destination claims
    each get the ``default`` limits on their own.
    """

    name: str
    mx_suffixes: tuple[str, ...] = ()
    max_connections: int = 10
    messages_per_minute: int = 600
    messages_per_connection: int = 100  # then the connection is closed and a fresh one opened

    def claims(self, mx_host: str) -> bool:
        host = mx_host.lower().rstrip(".")
        return any(host == suffix or host.endswith("." + suffix) for suffix in self.mx_suffixes)


# The large receivers throttle (421 4.7.28 at Google, 451 4.7.500 at Microsoft, 421 4.7.0 [TS0x]
# at Yahoo) well before these figures for a new sender; a cold-email host sends tens of messages
# per mailbox a day, so these leave ample room while never opening a burst of connections.
DEFAULT_DESTINATIONS: tuple[DestinationLimits, ...] = (
    DestinationLimits("google", ("google.com", "googlemail.com"), max_connections=5, messages_per_minute=120),
    DestinationLimits(
        "microsoft",
        ("outlook.com", "protection.outlook.com", "hotmail.com", "olc.protection.outlook.com"),
        max_connections=4,
        messages_per_minute=60,
    ),
    DestinationLimits("yahoo", ("yahoodns.net", "yahoo.com", "aol.com"), max_connections=3, messages_per_minute=60),
    DestinationLimits("default", (), max_connections=10, messages_per_minute=600),
)

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (300.0, 600.0, 1200.0, 2400.0, 3600.0, 7200.0, 14400.0)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How the delivery workers run and retry."""

    concurrency: int = 50  # messages in delivery at once in one process
    batch_size: int = 50  # messages leased per round trip to the queue
    lease_seconds: float = 300.0  # a dead worker's messages go to others after this
    poll_interval: float = 1.0  # seconds between queue polls when it is empty
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE  # delay after try 1, 2, ...; the last repeats
    give_up_after: float = 5 * DAY  # then a deferred message bounces
    connect_timeout: float = 30.0
    command_timeout: float = 300.0  # RFC 5321 4.5.3.2: at least 5 minutes for most replies
    idle_connection_seconds: float = 10.0  # how long an open connection waits for the next message
    smarthost: ListenAddress | None = None  # every message goes here instead of the MX
    transports: Mapping[str, ListenAddress] = field(default_factory=dict)  # recipient domain -> host:port
    destinations: tuple[DestinationLimits, ...] = DEFAULT_DESTINATIONS
    tls_ca_file: Path | None = None  # extra CA certificates trusted when a policy requires verified TLS

    def retry_delay(self, tries: int) -> float:
        """Seconds to wait after the ``tries``-th failed try (1-based)."""
        schedule = self.retry_schedule
        return schedule[min(max(tries, 1), len(schedule)) - 1]

    def destination_for(self, mx_host: str) -> DestinationLimits:
        """The named destination that claims this MX host, else ``default``."""
        for destination in self.destinations:
            if destination.name != "default" and destination.claims(mx_host):
                return destination
        return self.default_destination

    @property
    def default_destination(self) -> DestinationLimits:
        for destination in self.destinations:
            if destination.name == "default":
                return destination
        return DestinationLimits("default")


@dataclass(frozen=True, slots=True)
class ReputationSettings:
    """When the reputation guard pauses a mailbox or a domain."""

    hard_bounce_threshold: float = 0.05  # share of hard bounces among the recent sends
    window: int = 100  # how many recent sends the share is computed over
    min_sends: int = 20  # no verdict on fewer sends than this
    pause_on_blocklist: bool = True  # a reply saying the IP or domain is blocklisted pauses at once


def parse_transports(value: object) -> dict[str, ListenAddress]:
    """``[transports]``: recipient domain -> ``"host:port"`` of the server that takes its mail."""
    if not isinstance(value, dict):
        raise Invalid('a table of domain = "host:port" pairs')
    transports: dict[str, ListenAddress] = {}
    for domain, target in value.items():
        try:
            transports[domain_name(domain)] = listen(target)
        except Invalid as exc:
            raise Invalid(f'for "{domain}": {exc}') from None
    return transports


_DESTINATION_KEYS = ("mx_suffixes", "max_connections", "messages_per_minute", "messages_per_connection")


def parse_destinations(value: object) -> tuple[DestinationLimits, ...]:
    """``[destinations.NAME]`` tables: change a built-in destination's limits or add one."""
    if not isinstance(value, dict):
        raise Invalid("tables [destinations.NAME] with max_connections, messages_per_minute, mx_suffixes")
    merged = {destination.name: destination for destination in DEFAULT_DESTINATIONS}
    for name, table in value.items():
        if not isinstance(table, dict):
            raise Invalid(f"a table [destinations.{name}]")
        unknown = sorted(set(table) - set(_DESTINATION_KEYS))
        if unknown:
            raise Invalid(f"[destinations.{name}] keys among {', '.join(_DESTINATION_KEYS)}; unknown: {', '.join(unknown)}")
        current = merged.get(name, DestinationLimits(name))
        changes: dict[str, object] = {}
        for key in ("max_connections", "messages_per_minute", "messages_per_connection"):
            if key in table:
                try:
                    changes[key] = positive_int(table[key])
                except Invalid as exc:
                    raise Invalid(f"[destinations.{name}] {key}: {exc}") from None
        if "mx_suffixes" in table:
            suffixes = table["mx_suffixes"]
            if not isinstance(suffixes, list) or not all(isinstance(item, str) and item.strip() for item in suffixes):
                raise Invalid(f'[destinations.{name}] mx_suffixes: a list of host suffixes such as ["google.com"]')
            changes["mx_suffixes"] = tuple(domain_name(item) for item in suffixes)
        updated = replace(current, **changes)  # type: ignore[arg-type]
        if name not in merged and not updated.mx_suffixes:
            raise Invalid(f"[destinations.{name}] is new: give it mx_suffixes so coldrelay knows its MX hosts")
        merged[name] = updated
    return tuple(merged.values())
