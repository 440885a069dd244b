"""The world's DNS: coldrelay's sending domains as its own record plan renders them, and the recipients' MX.

Sending domains are written with ``render(plan, "bind")``: the receivers then judge SPF, DKIM and
DMARC against exactly the records coldrelay tells its users to publish, so a wrong plan fails the
end-to-end test the way it would fail at Gmail. Recipient domains get an MX whose host name looks
like the provider's (``gmail-smtp-in.l.google.com``), because coldrelay names the provider and picks
its politeness limits from the MX host name; every address is 127.0.0.1.

One zone file per domain in ``zone_dir``, served by the tests' ``LoopbackDNS``. Domains added after
``start()`` are served at once (the server's record table is rebuilt from the directory).
"""

from __future__ import annotations

from pathlib import Path

from coldrelay.dns.resolver import reverse_name
from coldrelay.provision.records import RecordPlan, mail_host
from coldrelay.provision.render import render
from dns_server import LoopbackDNS, ZoneFilesResolver

__all__ = ["LOOPBACK", "WorldZones"]

LOOPBACK = "127.0.0.1"
TTL = 300


class WorldZones:
    """Zone files in ``zone_dir`` plus the loopback DNS server that serves them (a context manager)."""

    def __init__(self, zone_dir: Path) -> None:
        self.zone_dir = zone_dir
        self.zone_dir.mkdir(parents=True, exist_ok=True)
        self._dns: LoopbackDNS | None = None
        self._ptrs: dict[str, list[str]] = {}  # one IP may be the sending IP of several domains

    # ------------------------------------------------------------------ writing

    def add_sending_domain(self, domain: RecordPlan | str, *, dmarc_policy: str = "none") -> Path:
        """A plan's records as coldrelay renders them; a bare name gets a minimal loopback sender.

        The minimal form (mail host on 127.0.0.1, SPF for it, DMARC ``p=<dmarc_policy>``, no DKIM key)
        is for domains coldrelay does not host, e.g. a From domain whose DMARC policy rejects.
        """
        if isinstance(domain, RecordPlan):
            name, text = domain.domain, render(domain, "bind")
            for ptr in domain.ptr_records:
                names = self._ptrs.setdefault(ptr.ip, [])
                if ptr.value not in names:
                    names.append(ptr.value)
        else:
            name = domain.strip().rstrip(".").lower()
            if not name or "." not in name:
                raise ValueError(f"{domain!r} is not a domain name")
            host = mail_host(name)
            text = "\n".join(
                [
                    f"$ORIGIN {name}.",
                    f"@ {TTL} IN MX 10 {host}.",
                    f"{host}. {TTL} IN A {LOOPBACK}",
                    f'@ {TTL} IN TXT "v=spf1 ip4:{LOOPBACK} -all"',
                    f'_dmarc {TTL} IN TXT "v=DMARC1; p={dmarc_policy}"',
                    "",
                ]
            )
        path = self._write(f"send-{name}.zone", text)
        self._write_ptrs()
        return path

    def add_recipient_domain(self, domain: str, mx_host: str) -> Path:
        """``domain`` MX -> ``mx_host`` A 127.0.0.1, plus SPF for loopback so the world's replies authenticate."""
        domain, mx_host = domain.rstrip(".").lower(), mx_host.rstrip(".").lower()
        text = "\n".join(
            [
                f"{domain}. {TTL} IN MX 10 {mx_host}.",
                f"{mx_host}. {TTL} IN A {LOOPBACK}",
                f'{domain}. {TTL} IN TXT "v=spf1 ip4:{LOOPBACK} ~all"',
                "",
            ]
        )
        return self._write(f"recv-{domain}.zone", text)

    def _write_ptrs(self) -> None:
        lines = [f"{reverse_name(ip)}. {TTL} IN PTR {name}." for ip, names in self._ptrs.items() for name in names]
        self._write("reverse.zone", "\n".join([*lines, ""]))

    def _write(self, filename: str, text: str) -> Path:
        path = self.zone_dir / filename
        path.write_text(text, encoding="utf-8")
        if self._dns is not None:
            self._dns.resolver.records = ZoneFilesResolver(self.zone_dir).records
        return path

    # ------------------------------------------------------------------ serving

    def start(self) -> WorldZones:
        self._dns = LoopbackDNS(self.zone_dir).start()
        return self

    def stop(self) -> None:
        if self._dns is not None:
            self._dns.stop()
            self._dns = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` of the running server (for ``[dns] nameservers``)."""
        if self._dns is None:
            raise RuntimeError("the world's DNS server is not running: call start() first")
        return self._dns.address

    def __enter__(self) -> WorldZones:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
