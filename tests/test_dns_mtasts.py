"""MTA-STS against the loopback DNS server and a real HTTPS server on 127.0.0.1 with a trustme certificate."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from coldrelay.dns import Resolver, Section, SectionStatus, Severity
from coldrelay.dns.mtasts import (
    FetchStatus,
    PolicyFetcher,
    check_mta_sts,
    mx_matches,
    parse_mx,
    parse_policy,
    parse_sts_record,
    valid_mx_pattern,
)
from dns_server import FailingResolver


def policy(mode: str, *mx: str, max_age: str = "604800", version: str = "STSv1", newline: str = "\n") -> bytes:
    lines = [f"version: {version}", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return (newline.join(lines) + newline).encode()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


GOOD = policy("enforce", "mx1.good.mtasts.test", "*.backup.good.mtasts.test", newline="\r\n")


def simple(name: str) -> Reply:
    return Reply(body=policy("enforce", f"mx1.{name}.mtasts.test"))


ROUTES: dict[str, Reply] = {
    "good": Reply(body=GOOD, content_type="text/plain; charset=utf-8"),
    "uncovered": Reply(body=policy("enforce", "*.uncovered.mtasts.test", "old.uncovered.mtasts.test")),
    "testing": Reply(body=policy("testing", "mx1.testing.mtasts.test")),
    "testinggap": Reply(body=policy("testing", "mx1.testinggap.mtasts.test")),
    "none": Reply(body=policy("none", max_age="86400")),
    "badversion": Reply(body=policy("enforce", "mx1.badversion.mtasts.test", version="STSv2")),
    "txtversion": simple("txtversion"),
    "noid": simple("noid"),
    "badid": simple("badid"),
    "syntaxrec": simple("syntaxrec"),
    "multi": simple("multi"),
    "othertxt": simple("othertxt"),
    "wrongcert": simple("wrongcert"),
    "notfound": Reply(status=404, body=b"not found"),
    "slow": Reply(body=simple("slow").body, delay=5.0),
    "redirect": Reply(status=301, headers=(("Location", "https://www.redirect.mtasts.test/mta-sts.txt"),)),
    "html": Reply(body=simple("html").body, content_type="text/html"),
    "big": Reply(body=simple("big").body + b"# padding\n" * 7000),
    "binary": Reply(body=b"\xff\xfe\x00version"),
    "alias": simple("alias"),
    "mapped": simple("mapped"),
    "garbage": Reply(
        body=b"version: STSv1\nmode: enforced\nthis line is wrong\nmx: mx1.garbage.mtasts.test\nmax_age: 9999999999\n"
    ),
    "shortage": Reply(body=policy("enforce", "mx1.shortage.mtasts.test", max_age="3600")),
    "nomxlines": Reply(body=policy("enforce")),
    "badpattern": Reply(body=policy("enforce", "mx1.badpattern.mtasts.test", "mail.*.test", "*.*.badpattern.mtasts.test")),
    "nomx": Reply(body=policy("enforce", "mx1.nomx.mtasts.test")),
    "mxfail": simple("mxfail"),
}
CERT_NAMES = [f"mta-sts.{name}.mtasts.test" for name in ROUTES if name != "wrongcert"]


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPSServer

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        name = host.removeprefix("mta-sts.").removesuffix(".mtasts.test")
        reply = ROUTES.get(name) if self.path == "/.well-known/mta-sts.txt" else None
        if reply is None:
            reply = Reply(status=404, body=b"no such policy")
        if reply.delay and self.server.stopping.wait(reply.delay):
            return
        self.server.requests.append(host)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.stopping = threading.Event()
        self.requests: list[str] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that reject our certificate hang up mid-handshake: expected here


@dataclass
class PolicyServer:
    port: int
    ca_file: Path
    server: _HTTPSServer


@pytest.fixture(scope="module")
def policy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyServer]:
    ca = trustme.CA()
    cert = ca.issue_cert(*CERT_NAMES)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path_factory.mktemp("mtasts") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = _HTTPSServer(context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield PolicyServer(server.server_address[1], ca_file, server)
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def fetcher(policy_server: PolicyServer) -> PolicyFetcher:
    return PolicyFetcher(policy_server.ca_file, port=policy_server.port, timeout=1.0)


def check(resolver: Resolver, domain: str, fetcher: PolicyFetcher) -> Section:
    return asyncio.run(check_mta_sts(resolver, domain, fetcher=fetcher))


def severity(section: Section, code: str) -> Severity:
    return next(f.severity for f in section.findings if f.code == code)


# --- pass -------------------------------------------------------------------------------------------------------


def test_good_policy_enforce_covers_every_mx(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "good.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.valid"]
    assert section.effective_status is SectionStatus.PASS
    assert section.records == ["v=STSv1; id=20260101000000"]
    assert section.details["record"] == {"id": "20260101000000", "extensions": {}}
    assert section.details["policy"] == {
        "version": "STSv1",
        "mode": "enforce",
        "max_age": 604800,
        "mx": ["mx1.good.mtasts.test", "*.backup.good.mtasts.test"],
    }
    assert section.details["mx_hosts"] == ["mx1.good.mtasts.test", "mx2.backup.good.mtasts.test"]
    assert section.details["uncovered_mx"] == []
    assert section.details["policy_fetch"]["http_status"] == 200
    assert section.details["policy_fetch"]["address"] == "127.0.0.1"
    assert section.to_dict()["status"] == "pass"
    assert json.loads(json.dumps(section.to_dict()))["details"]["policy"]["mode"] == "enforce"


def test_trailing_semicolon_and_unrelated_txt_are_fine(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "othertxt.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.valid"]
    assert section.records == ["v=STSv1; id=7;"]


def test_policy_host_behind_cname(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "alias.mtasts.test", fetcher).codes() == ["mta_sts.valid"]


def test_host_map_overrides_dns(resolver: Resolver, policy_server: PolicyServer) -> None:
    mapped = PolicyFetcher(policy_server.ca_file, port=policy_server.port, hosts={"MTA-STS.mapped.mtasts.test.": "127.0.0.1"})
    section = check(resolver, "mapped.mtasts.test", mapped)
    assert section.codes() == ["mta_sts.valid"]
    assert section.details["policy_fetch"]["address"] == "127.0.0.1"


def test_testing_mode(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "testing.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.valid", "mta_sts.testing-mode"]
    assert severity(section, "mta_sts.testing-mode") is Severity.INFO
    assert section.details["policy"]["mode"] == "testing"
    assert section.effective_status is SectionStatus.PASS


def test_mode_none(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "none.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.mode-none"]
    assert section.effective_status is SectionStatus.INFO


# --- the MX comparison ------------------------------------------------------------------------------------------


def test_enforce_with_an_mx_not_covered_is_an_error(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "uncovered.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.mx-not-covered", "mta_sts.pattern-unused"]
    assert severity(section, "mta_sts.mx-not-covered") is Severity.ERROR
    assert severity(section, "mta_sts.pattern-unused") is Severity.INFO
    assert section.details["uncovered_mx"] == ["deep.mx.uncovered.mtasts.test"]
    assert section.details["unused_patterns"] == ["old.uncovered.mtasts.test"]
    fix = next(f.fix for f in section.findings if f.code == "mta_sts.mx-not-covered")
    assert "mx: deep.mx.uncovered.mtasts.test" in fix
    assert section.effective_status is SectionStatus.FAIL


def test_testing_with_an_mx_not_covered_is_a_warning(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "testinggap.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.testing-mode", "mta_sts.mx-not-covered"]
    assert severity(section, "mta_sts.mx-not-covered") is Severity.WARNING
    assert section.details["uncovered_mx"] == ["mx.elsewhere.test"]


def test_no_mx_to_compare(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "nomx.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.no-mx"]
    assert section.details["mx_hosts"] == []


def test_mx_lookup_failure_is_reported(dns_server: Any, fetcher: PolicyFetcher) -> None:
    failing = FailingResolver(dns_server.address, {("mxfail.mtasts.test", "MX")})
    section = check(failing, "mxfail.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.mx-lookup-failed"]
    assert severity(section, "mta_sts.mx-lookup-failed") is Severity.WARNING


# --- the TXT record ---------------------------------------------------------------------------------------------


def test_missing_record_is_info_and_nothing_is_fetched(resolver: Resolver, policy_server: PolicyServer) -> None:
    before = len(policy_server.server.requests)
    fetcher = PolicyFetcher(policy_server.ca_file, port=policy_server.port)
    for domain in ("missing.mtasts.test", "unrelated.mtasts.test", "nosuchdomain.mtasts.test"):
        section = check(resolver, domain, fetcher)
        assert section.codes() == ["mta_sts.missing"]
        assert section.effective_status is SectionStatus.INFO
        assert section.records == []
    assert len(policy_server.server.requests) == before


def test_lookup_failure_is_a_finding(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "mtasts.servfail.test", fetcher)
    assert section.codes() == ["mta_sts.lookup-failed"]
    assert severity(section, "mta_sts.lookup-failed") is Severity.WARNING


def test_record_with_wrong_version(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "txtversion.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.record-bad-version"]
    assert section.records == ["v=STSv2; id=1"]


def test_record_without_id(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "noid.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.record-missing-id"]
    assert section.details["record"]["id"] is None
    assert section.effective_status is SectionStatus.FAIL


def test_record_with_bad_id(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "badid.mtasts.test", fetcher).codes() == ["mta_sts.record-bad-id"]


def test_record_syntax(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "syntaxrec.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.record-syntax"]
    assert section.details["record"]["id"] == "abc"


def test_multiple_records(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "multi.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.multiple-records"]
    assert sorted(section.records) == ["v=STSv1; id=1", "v=STSv1; id=2"]


# --- the HTTPS fetch --------------------------------------------------------------------------------------------


def test_wrong_certificate_name(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "wrongcert.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.policy-certificate"]
    assert section.details["policy_fetch"]["status"] == "certificate"


def test_untrusted_certificate(resolver: Resolver, policy_server: PolicyServer) -> None:
    system_trust = PolicyFetcher(port=policy_server.port, timeout=2.0)  # the trustme CA is not a system CA
    assert check(resolver, "good.mtasts.test", system_trust).codes() == ["mta_sts.policy-certificate"]


def test_http_404(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "notfound.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.policy-http-status"]
    assert section.details["policy_fetch"]["http_status"] == 404


def test_timeout(resolver: Resolver, policy_server: PolicyServer) -> None:
    quick = PolicyFetcher(policy_server.ca_file, port=policy_server.port, timeout=0.4)
    section = check(resolver, "slow.mtasts.test", quick)
    assert section.codes() == ["mta_sts.policy-timeout"]
    assert section.details["policy_fetch"]["status"] == "timeout"


def test_redirect_is_not_followed(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "redirect.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.policy-redirect"]
    assert section.details["policy_fetch"]["http_status"] == 301


def test_wrong_content_type(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "html.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.policy-content-type"]
    assert section.details["policy"]["mode"] == "enforce"  # the rest is still read and reported


def test_policy_too_large(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "big.mtasts.test", fetcher).codes() == ["mta_sts.policy-too-large"]


def test_policy_not_text(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "binary.mtasts.test", fetcher).codes() == ["mta_sts.policy-syntax"]


def test_policy_host_without_address(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "nohost.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.policy-host-missing"]
    assert section.details["policy_fetch"]["status"] == "no-address"


def test_connection_refused(resolver: Resolver, policy_server: PolicyServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    nobody = PolicyFetcher(policy_server.ca_file, port=closed_port, timeout=1.0)
    section = check(resolver, "refused.mtasts.test", nobody)
    assert section.codes() == ["mta_sts.policy-unreachable"]
    assert section.details["policy_fetch"]["status"] == "connect"


# --- the policy file --------------------------------------------------------------------------------------------


def test_bad_policy_version(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "badversion.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.policy-bad-version"]
    assert section.details["policy"]["version"] == "STSv2"


def test_garbage_policy(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "garbage.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.policy-syntax", "mta_sts.policy-bad-mode", "mta_sts.policy-bad-max-age"]
    assert section.details["policy"] == {
        "version": "STSv1",
        "mode": "enforced",
        "max_age": 9999999999,
        "mx": ["mx1.garbage.mtasts.test"],
    }


def test_short_max_age(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "shortage.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.max-age-short"]
    assert severity(section, "mta_sts.max-age-short") is Severity.WARNING
    assert section.details["policy"]["max_age"] == 3600


def test_enforce_without_mx_lines(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "nomxlines.mtasts.test", fetcher).codes() == ["mta_sts.policy-no-mx"]


def test_bad_mx_patterns(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "badpattern.mtasts.test", fetcher)
    assert section.codes() == ["mta_sts.policy-bad-mx-pattern"]
    assert section.details["uncovered_mx"] == []


# --- the helpers ------------------------------------------------------------------------------------------------


def test_mx_pattern_matching() -> None:
    assert mx_matches("mail.example.com", "MAIL.example.com.")
    assert mx_matches("*.example.com", "mx1.example.com")
    assert not mx_matches("*.example.com", "example.com")
    assert not mx_matches("*.example.com", "a.b.example.com")
    assert not mx_matches("mail.example.com", "mail2.example.com")
    assert valid_mx_pattern("*.example.com") and valid_mx_pattern("mx-1.example.com")
    assert not valid_mx_pattern("*.*.example.com")
    assert not valid_mx_pattern("mail.*.com")
    assert not valid_mx_pattern("mail.example.com.")
    assert not valid_mx_pattern("-bad.example.com")


def test_record_and_policy_parsing() -> None:
    record = parse_sts_record("v=STSv1;id=abc123 ; ext_1=x;")
    assert record.policy_id == "abc123" and record.extensions == {"ext_1": "x"} and record.problems == ()
    assert parse_sts_record("v=STSv1; id=a; id=b").problems == ("mta_sts.record-syntax",)
    assert parse_sts_record("v=STSv1; id=" + "a" * 33).problems == ("mta_sts.record-bad-id",)
    parsed = parse_policy(
        "version: STSv1\r\nmode: testing\r\nmode: enforce\r\nmx: a.example\r\nmx: b.example\r\nmax_age:86400\r\n"
    )
    assert (parsed.version, parsed.mode, parsed.max_age, parsed.mx) == ("STSv1", "testing", 86400, ("a.example", "b.example"))
    assert parse_policy("version: STSv1\nmax_age: -5\n").max_age is None
    assert parse_mx(("20 b.example.", "10 a.example.", "0 .")) == ["a.example", "b.example"]


def test_fetcher_refuses_plain_http() -> None:
    result = asyncio.run(PolicyFetcher().get("http://mta-sts.example.test/.well-known/mta-sts.txt"))
    assert result.status is FetchStatus.ERROR
