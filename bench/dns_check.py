"""coldrelay's domain check against checkdmarc, on the same zones, in one run.

Set-up (once): ``.venv/bin/pip install checkdmarc``. Then:

    .venv/bin/python bench/dns_check.py [--rounds 3] [DOMAIN ...]

Starts the loopback DNS server of the test suite (tests/zones/*.zone on
127.0.0.1), points both tools at it, times a full check of each domain, and
prints what each found for SPF, DMARC and the rest. Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from coldrelay.dns import Resolver  # noqa: E402
from coldrelay.dns.dnsbl import BlocklistConfig  # noqa: E402
from coldrelay.dns.health import check_domain  # noqa: E402
from dns_server import LoopbackDNS  # noqa: E402

DEFAULT_DOMAINS = ["example.test", "good.spf.test", "toomany.spf.test", "dmarc.test", "external.dmarc.test"]


def ours(address: str, domain: str) -> tuple[float, dict[str, Any]]:
    resolver = Resolver([address], timeout=2.0)
    started = time.perf_counter()
    report = asyncio.run(
        check_domain(resolver, domain, selectors=["default", "s1", "s2"], blocklists=BlocklistConfig().under("blocklist.test"))
    )
    return time.perf_counter() - started, report.to_dict()


def theirs(host: str, port: int, domain: str) -> tuple[float, dict[str, Any]] | None:
    try:
        import checkdmarc
        import dns.resolver
    except ImportError:
        return None
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.lifetime = 2.0
    started = time.perf_counter()
    result = checkdmarc.check_domains([domain], resolver=resolver, skip_tls=True, timeout=2.0)
    elapsed = time.perf_counter() - started
    data = result if isinstance(result, dict) else dict(result)
    return elapsed, data


def _summary_ours(report: dict[str, Any]) -> str:
    parts = []
    for name in ("spf", "dmarc", "dkim", "mx"):
        codes = [
            f["code"].split(".", 1)[1] for f in report["sections"][name]["findings"] if f["severity"] in ("error", "warning")
        ]
        parts.append(f"{name}={report['sections'][name]['status']}{'(' + ','.join(codes[:3]) + ')' if codes else ''}")
    return f"grade {report['grade']} " + " ".join(parts)


def _summary_theirs(data: dict[str, Any]) -> str:
    parts = []
    for name in ("spf", "dmarc", "mx"):
        section = data.get(name) or {}
        valid = section.get("valid")
        error = str(section.get("error", ""))[:60]
        warnings = section.get("warnings") or []
        detail = f"({error})" if error else ""
        warned = f"+{len(warnings)}w" if warnings else ""
        parts.append(f"{name}={'ok' if valid else 'fail'}{detail}{warned}")
    return " ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("domains", nargs="*", default=DEFAULT_DOMAINS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = LoopbackDNS().start()
    try:
        total_ours = total_theirs = 0.0
        compared = True
        for domain in args.domains:
            our_times, their_times = [], []
            our_report: dict[str, Any] = {}
            their_report: dict[str, Any] | None = None
            for _ in range(args.rounds):
                elapsed, our_report = ours(server.address, domain)
                our_times.append(elapsed)
                measured = theirs(server.host, server.port, domain)
                if measured is None:
                    compared = False
                else:
                    their_times.append(measured[0])
                    their_report = measured[1]
            best_ours = min(our_times)
            total_ours += best_ours
            print(f"{domain}")
            print(f"  coldrelay  {best_ours * 1000:8.1f} ms  all 10 sections  {_summary_ours(our_report)}")
            if their_times and their_report is not None:
                best_theirs = min(their_times)
                total_theirs += best_theirs
                print(f"  checkdmarc {best_theirs * 1000:8.1f} ms  spf/dmarc/mx/ns  {_summary_theirs(their_report)}")
        print(f"total (best of {args.rounds}): coldrelay {total_ours * 1000:.1f} ms", end="")
        print(f", checkdmarc {total_theirs * 1000:.1f} ms" if compared else ", checkdmarc not installed (pip install checkdmarc)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
