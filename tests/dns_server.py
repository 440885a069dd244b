"""A real authoritative DNS server on 127.0.0.1 for the tests (dnslib), serving tests/zones/*.zone.

Behaviour follows what checks must tell apart:
- a name with records of the asked type: the answer (CNAMEs inside the zones are followed);
- a name that exists with other types only: NOERROR and no answer (NODATA);
- any other name: NXDOMAIN;
- names under ``servfail.test.``: SERVFAIL; under ``timeout.test.``: no reply at all.
UDP answers over 1232 bytes are truncated so the client retries over TCP, as on the internet.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from coldrelay.dns import Lookup, LookupStatus, Resolver

ZONES = Path(__file__).parent / "zones"


class ZoneFilesResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, zone_dir: Path = ZONES) -> None:
        self.records: dict[str, list[RR]] = defaultdict(list)
        for path in sorted(zone_dir.glob("*.zone")):
            for rr in RR.fromZone(path.read_text(encoding="utf-8")):
                self.records[str(rr.rname).lower()].append(rr)
        self.hits = 0
        self.tcp_hits = 0

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        self.hits += 1
        if getattr(handler, "protocol", "udp") == "tcp":
            self.tcp_hits += 1
        reply = self._answer(request)
        if getattr(handler, "protocol", "udp") == "udp" and len(reply.pack()) > 1232:
            truncated = request.reply()
            truncated.header.tc = 1  # too big for UDP: the client must ask again over TCP
            return truncated
        return reply

    def _answer(self, request: DNSRecord) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).lower()
        qtype = request.q.qtype
        if qname.endswith("servfail.test."):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if qname.endswith("timeout.test."):
            time.sleep(10)
            return reply
        name = qname
        for _ in range(8):  # follow CNAMEs inside our zones
            found = self.records.get(name, [])
            wanted = [rr for rr in found if rr.rtype == qtype or qtype == QTYPE.ANY]
            if wanted:
                for rr in wanted:
                    reply.add_answer(rr)
                return reply
            cname = [rr for rr in found if rr.rtype == QTYPE.CNAME]
            if cname and qtype != QTYPE.CNAME:
                reply.add_answer(cname[0])
                name = str(cname[0].rdata.label).lower()
                continue
            if found:
                return reply  # NODATA
            if name == qname:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
        return reply


class _Quiet(DNSLogger):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)


class LoopbackDNS:
    """UDP and TCP servers on one 127.0.0.1 port, in background threads."""

    def __init__(self, zone_dir: Path = ZONES) -> None:
        self.resolver = ZoneFilesResolver(zone_dir)
        self.host = "127.0.0.1"
        self.port = 0
        self._servers: list[DNSServer] = []

    def start(self) -> LoopbackDNS:
        for _attempt in range(20):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind((self.host, 0))
                port = probe.getsockname()[1]
            try:
                udp = DNSServer(self.resolver, port=port, address=self.host, logger=_Quiet())
                tcp = DNSServer(self.resolver, port=port, address=self.host, tcp=True, logger=_Quiet())
            except OSError:
                continue
            self.port = port
            self._servers = [udp, tcp]
            for server in self._servers:
                server.start_thread()
            return self
        raise RuntimeError("no free port for the loopback DNS server")

    def stop(self) -> None:
        for server in self._servers:
            server.stop()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def serve_forever() -> None:  # pragma: no cover - a manual helper: python tests/dns_server.py
    server = LoopbackDNS().start()
    print(f"serving {ZONES} on {server.address}")
    threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    serve_forever()


class FailingResolver(Resolver):
    """The real resolver on the loopback server, except for chosen questions.

    The test server cannot fail one record type of a name while answering the
    others, so a test names the (name, type) pairs to fail and the status to
    report; every other question goes to the real server.
    """

    def __init__(self, address: str, fail: set[tuple[str, str]], status: LookupStatus = LookupStatus.SERVFAIL) -> None:
        super().__init__([address], timeout=1.0, retries=0)
        self.fail = fail
        self.status = status

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        if (name, rdtype) in self.fail:
            return Lookup(name, rdtype, self.status, error="injected by the test")
        return await super().lookup(name, rdtype)
