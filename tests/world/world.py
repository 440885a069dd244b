"""``World``: the receiving side of the end-to-end test, started and stopped as one.

    with World(tmp / "world", our_mx="127.0.0.1:2525", sending_domains=[plan]) as world:
        # coldrelay.toml: [dns] nameservers = [world.dns_address]; [transports] = world.transports();
        #                 [delivery] tls_ca_file = world.ca_file
        ...  # coldrelay delivers
        world.send_async_events()  # bounces and replies travel to coldrelay's MX
        assert log_counts == world.ledger.expected_reasons()

Ports are chosen at construction (``transports()`` is known before ``start()``), the DNS port at
``start()``. Everything runs in background threads, so a test or a script drives it synchronously.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme

from coldrelay.provision.records import RecordPlan
from world.ledger import AsyncEvent, Ledger
from world.profiles import profile_named
from world.receivers import ProviderMX
from world.responders import Responder
from world.zones import WorldZones

__all__ = ["DEFAULT_RECIPIENT_DOMAINS", "RecipientDomain", "World"]


@dataclass(frozen=True, slots=True)
class RecipientDomain:
    """One recipient domain of the world and how its MX behaves."""

    domain: str
    profile: str
    """google, microsoft, yahoo or generic."""
    mx_host: str
    rate_limit: int | None = None
    """Accepted messages per ``World.rate_window`` seconds per client IP before the rate-limit reply."""
    require_tls: bool | None = None
    """None: the profile's default (Google requires STARTTLS)."""


DEFAULT_RECIPIENT_DOMAINS: tuple[RecipientDomain, ...] = (
    RecipientDomain("gmail.test", "google", "gmail-smtp-in.l.google.com"),
    RecipientDomain("outlook.test", "microsoft", "outlook-test.mail.protection.outlook.com"),
    RecipientDomain("yahoo.test", "yahoo", "mta5.am0.yahoodns.net"),
    RecipientDomain("acme.test", "generic", "mx.acme.test"),
)


class World:
    """DNS, CA, one ProviderMX per recipient domain, the responder and the ledger (a context manager)."""

    def __init__(
        self,
        base_dir: Path,
        *,
        our_mx: str | None = None,
        sending_domains: Sequence[RecordPlan | str] = (),
        recipient_domains: Sequence[RecipientDomain] = DEFAULT_RECIPIENT_DOMAINS,
        rate_window: float = 60.0,
    ) -> None:
        names = [r.domain.lower() for r in recipient_domains]
        if len(set(names)) != len(names):
            raise ValueError(f"recipient domains must be distinct: {names}")
        self.base_dir = base_dir
        base_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger()
        self.responder = Responder(self.ledger, our_mx)
        self.ca = trustme.CA()
        self.ca_file = base_dir / "world-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.zones = WorldZones(base_dir / "zones")
        for sending in sending_domains:
            self.zones.add_sending_domain(sending)
        for recipient in recipient_domains:
            self.zones.add_recipient_domain(recipient.domain, recipient.mx_host)
        self._recipient_domains = tuple(recipient_domains)
        self._rate_window = rate_window
        self.receivers: dict[str, ProviderMX] = {}
        self._started = False

    def start(self) -> World:
        self.zones.start()
        try:
            for recipient in self._recipient_domains:
                mx = ProviderMX(
                    profile_named(recipient.profile),
                    domain=recipient.domain,
                    mx_host=recipient.mx_host,
                    ca=self.ca,
                    dns_address=self.zones.address,
                    ledger=self.ledger,
                    responder=self.responder,
                    rate_limit=recipient.rate_limit,
                    rate_window=self._rate_window,
                    require_tls=recipient.require_tls,
                )
                self.receivers[recipient.domain.lower()] = mx.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        for mx in self.receivers.values():
            mx.stop()
        self.receivers.clear()
        self.zones.stop()
        self._started = False

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ what coldrelay's config needs

    @property
    def dns_address(self) -> str:
        return self.zones.address

    def transports(self) -> dict[str, str]:
        """Recipient domain -> ``mxhost:port`` for coldrelay's ``[transports]`` table (after start())."""
        if not self._started:
            raise RuntimeError("start the world first: the receivers' ports are bound by start()")
        return {domain: mx.address for domain, mx in self.receivers.items()}

    def transports_toml(self) -> str:
        """The ``[transports]`` table as TOML text."""
        lines = ["[transports]", *(f'"{domain}" = "{target}"' for domain, target in self.transports().items())]
        return "\n".join(lines) + "\n"

    def add_sending_domain(self, domain: RecordPlan | str, *, dmarc_policy: str = "none") -> None:
        """Publish another sending domain (served at once, also while running)."""
        self.zones.add_sending_domain(domain, dmarc_policy=dmarc_policy)

    # ------------------------------------------------------------------ after delivery

    def send_async_events(self, our_mx: str | None = None) -> list[AsyncEvent]:
        """Deliver every pending bounce, auto-reply and reply to coldrelay's MX; each is also in the ledger."""
        return self.responder.flush(our_mx)
