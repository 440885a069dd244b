"""BIMI against the loopback DNS server, with logos from a real HTTPS server on 127.0.0.1 (trustme certificate)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from coldrelay.dns import LookupStatus, Resolver, Section, SectionStatus, Severity
from coldrelay.dns.bimi import check_bimi, enforces, https_url_problem, organizational_domain, parse_bimi_record, tiny_ps_problems
from coldrelay.dns.mtasts import PolicyFetcher
from dns_server import FailingResolver

GOOD_SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" version="1.2" baseProfile="tiny-ps" viewBox="0 0 100 100">'
    b'<title>Brand</title><rect width="100" height="100" fill="#1d4ed8"/></svg>\n'
)
NOT_TINY = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><script>alert(1)</script></svg>'
LOGOS: dict[str, tuple[int, str, bytes, tuple[tuple[str, str], ...]]] = {
    "/good.svg": (200, "image/svg+xml", GOOD_SVG, ()),
    "/moved.svg": (302, "text/html", b"", (("Location", "https://logo.bimi.test/good.svg"),)),
    "/plain.svg": (200, "text/plain", GOOD_SVG, ()),
    "/big.svg": (200, "image/svg+xml", GOOD_SVG.replace(b"<title>", b"<!--" + b"x" * 40_000 + b"--><title>"), ()),
    "/huge.svg": (200, "image/svg+xml", b"<svg>" + b" " * 1_100_000 + b"</svg>", ()),
    "/html.svg": (200, "image/svg+xml", b"<html><body>logo</body></html>", ()),
    "/nottiny.svg": (200, "image/svg+xml", NOT_TINY, ()),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, content_type, body, headers = LOGOS.get(self.path, (404, "text/plain", b"not found", ()))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPSServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that reject the certificate hang up mid-handshake: expected


@pytest.fixture(scope="module")
def logo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("logo.bimi.test").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("bimi") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = _HTTPSServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ca_file
    server.shutdown()
    server.server_close()


@pytest.fixture
def fetcher(logo_server: tuple[int, Path]) -> PolicyFetcher:
    port, ca_file = logo_server
    return PolicyFetcher(ca_file, port=port, timeout=2.0)


def check(resolver: Resolver, domain: str, fetcher: PolicyFetcher | None = None, *, fetch_logo: bool = True) -> Section:
    return asyncio.run(check_bimi(resolver, domain, fetcher=fetcher, fetch_logo=fetch_logo))


def severity(section: Section, code: str) -> Severity:
    return next(f.severity for f in section.findings if f.code == code)


# --- pass -------------------------------------------------------------------------------------------------------


def test_valid_record_with_vmc_and_tiny_ps_logo(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "good.bimi.test", fetcher)
    assert section.codes() == ["bimi.valid"]
    assert section.effective_status is SectionStatus.PASS
    assert section.records == ["v=BIMI1; l=https://logo.bimi.test/good.svg; a=https://logo.bimi.test/vmc.pem"]
    assert section.details["record_name"] == "default._bimi.good.bimi.test"
    assert section.details["record"]["l"] == ["https://logo.bimi.test/good.svg"]
    assert section.details["record"]["a"] == "https://logo.bimi.test/vmc.pem"
    assert section.details["dmarc"]["domain"] == "good.bimi.test"
    assert section.details["dmarc"]["effective_policy"] == "reject"
    assert section.details["logo"]["http_status"] == 200
    assert section.details["logo"]["bytes"] == len(GOOD_SVG)
    assert json.loads(json.dumps(section.to_dict()))["status"] == "pass"


def test_without_vmc_is_a_warning(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "novmc.bimi.test", fetcher)
    assert section.codes() == ["bimi.valid", "bimi.no-vmc"]
    assert severity(section, "bimi.no-vmc") is Severity.WARNING
    assert section.effective_status is SectionStatus.WARN


def test_reject_with_pct_below_100_still_qualifies(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "rejectpct.bimi.test", fetcher)
    assert section.codes() == ["bimi.valid"]
    assert section.details["dmarc"]["pct"] == 50


def test_dmarc_inherited_from_the_organisational_domain(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "inherit.bimi.test", fetcher)
    assert section.codes() == ["bimi.valid"]
    assert section.details["dmarc"]["domain"] == "bimi.test"
    assert section.details["dmarc"]["inherited"] is True
    assert section.details["record"]["tags"]["avp"] == "brand"


def test_record_and_sp_policy_from_the_organisational_domain(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "news.brand-bimi.test", fetcher)
    assert section.codes() == ["bimi.valid"]
    assert section.details["record_name"] == "default._bimi.brand-bimi.test"
    assert section.details["dmarc"]["effective_policy"] == "quarantine"


def test_logo_not_fetched_when_asked(resolver: Resolver) -> None:
    section = check(resolver, "logo404.bimi.test", fetch_logo=False)
    assert section.codes() == ["bimi.valid"]
    assert "logo" not in section.details


# --- absent and declined ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["nobimi.test", "other.nobimi.test", "nosuch.nobimi.test"])
def test_no_bimi_is_info(resolver: Resolver, fetcher: PolicyFetcher, domain: str) -> None:
    section = check(resolver, domain, fetcher)
    assert section.codes() == ["bimi.missing"]
    assert severity(section, "bimi.missing") is Severity.INFO
    assert section.effective_status is SectionStatus.INFO
    assert section.records == []


def test_declined(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "declined.bimi.test", fetcher)
    assert section.codes() == ["bimi.declined"]
    assert section.effective_status is SectionStatus.INFO


def test_lookup_failure(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "bimi.servfail.test", fetcher)
    assert section.codes() == ["bimi.lookup-failed"]
    assert severity(section, "bimi.lookup-failed") is Severity.WARNING


# --- the record -------------------------------------------------------------------------------------------------


def test_multiple_records(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "multi.bimi.test", fetcher)
    assert section.codes() == ["bimi.multiple-records"]
    assert len(section.records) == 2


@pytest.mark.parametrize("domain", ["badversion.bimi.test", "lowerv.bimi.test"])
def test_bad_version(resolver: Resolver, fetcher: PolicyFetcher, domain: str) -> None:
    section = check(resolver, domain, fetcher)
    assert section.codes() == ["bimi.bad-version"]
    assert section.effective_status is SectionStatus.FAIL


def test_bad_version_then_organisational_record(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "v2.brand-bimi.test", fetcher)
    assert section.codes() == ["bimi.bad-version"]
    assert section.details["record_name"] == "default._bimi.brand-bimi.test"
    assert section.records == [
        "v=BIMI2; l=https://logo.bimi.test/good.svg",
        "v=BIMI1; l=https://logo.bimi.test/good.svg; a=https://logo.bimi.test/vmc.pem",
    ]


def test_syntax(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "syntax.bimi.test", fetcher).codes() == ["bimi.syntax"]


def test_logo_must_be_https(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "http.bimi.test", fetcher)
    assert section.codes() == ["bimi.logo-not-https"]
    assert "logo" not in section.details


def test_logo_must_be_svg(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "png.bimi.test", fetcher).codes() == ["bimi.logo-not-svg"]


def test_logo_missing_with_evidence(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "nologo.bimi.test", fetcher).codes() == ["bimi.logo-missing"]


def test_vmc_must_be_https(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "vmchttp.bimi.test", fetcher).codes() == ["bimi.vmc-not-https"]


# --- DMARC and SPF ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "policy"),
    [("dmarcnone.bimi.test", "none"), ("pct.bimi.test", "quarantine"), ("testing.bimi.test", "quarantine")],
)
def test_dmarc_not_enforced(resolver: Resolver, fetcher: PolicyFetcher, domain: str, policy: str) -> None:
    section = check(resolver, domain, fetcher)
    assert section.codes() == ["bimi.dmarc-not-enforced"]
    assert section.details["dmarc"]["effective_policy"] == policy
    assert section.effective_status is SectionStatus.FAIL


def test_inherited_sp_none_is_not_enforced(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "news.spnone-bimi.test", fetcher)
    assert section.codes() == ["bimi.dmarc-not-enforced"]
    assert section.details["dmarc"]["effective_policy"] == "none"


def test_sp_none_in_own_record(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "spnone.bimi.test", fetcher).codes() == ["bimi.dmarc-sp-none"]


@pytest.mark.parametrize("domain", ["nodmarc-bimi.test", "dmarcmulti.bimi.test"])
def test_dmarc_missing(resolver: Resolver, fetcher: PolicyFetcher, domain: str) -> None:
    section = check(resolver, domain, fetcher)
    assert section.codes() == ["bimi.dmarc-missing"]
    assert "dmarc" not in section.details


def test_organisational_domain_not_enforcing(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "mail.orgnone-bimi.test", fetcher)
    assert section.codes() == ["bimi.valid", "bimi.dmarc-org-not-enforced"]
    assert severity(section, "bimi.dmarc-org-not-enforced") is Severity.WARNING


def test_dmarc_lookup_failure(dns_server: Any, fetcher: PolicyFetcher) -> None:
    failing = FailingResolver(dns_server.address, {("_dmarc.good.bimi.test", "TXT")}, LookupStatus.TIMEOUT)
    section = asyncio.run(check_bimi(failing, "good.bimi.test", fetcher=fetcher))
    assert section.codes() == ["bimi.valid", "bimi.dmarc-lookup-failed"]
    assert severity(section, "bimi.dmarc-lookup-failed") is Severity.WARNING


def test_spf_plus_all(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "spfall.bimi.test", fetcher).codes() == ["bimi.spf-pass-all"]


# --- the logo ---------------------------------------------------------------------------------------------------


def test_logo_404(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "logo404.bimi.test", fetcher)
    assert section.codes() == ["bimi.logo-http-status"]
    assert section.details["logo"]["http_status"] == 404


def test_logo_redirect(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "logomoved.bimi.test", fetcher)
    assert section.codes() == ["bimi.valid", "bimi.logo-redirect"]
    assert "https://logo.bimi.test/good.svg" in section.findings[1].fix


def test_logo_content_type(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "logoplain.bimi.test", fetcher)
    assert section.codes() == ["bimi.valid", "bimi.logo-content-type"]


@pytest.mark.parametrize("domain", ["logobig.bimi.test", "logohuge.bimi.test"])
def test_logo_too_large(resolver: Resolver, fetcher: PolicyFetcher, domain: str) -> None:
    section = check(resolver, domain, fetcher)
    assert section.codes() == ["bimi.valid", "bimi.logo-too-large"]


def test_logo_not_svg_content(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    assert check(resolver, "logohtml.bimi.test", fetcher).codes() == ["bimi.logo-invalid"]


def test_logo_not_tiny_ps(resolver: Resolver, fetcher: PolicyFetcher) -> None:
    section = check(resolver, "logonottiny.bimi.test", fetcher)
    assert section.codes() == ["bimi.valid", "bimi.logo-not-tiny-ps"]
    assert section.details["logo"]["tiny_ps_problems"] == [
        'the <svg> element lacks baseProfile="tiny-ps"',
        "there is no <title>",
        "it contains a <script>",
    ]


@pytest.mark.parametrize(("domain", "status"), [("logonohost.bimi.test", "no-address"), ("logobadcert.bimi.test", "certificate")])
def test_logo_unreachable(resolver: Resolver, fetcher: PolicyFetcher, domain: str, status: str) -> None:
    section = check(resolver, domain, fetcher)
    assert section.codes() == ["bimi.logo-unreachable"]
    assert section.details["logo"]["status"] == status


# --- helpers ----------------------------------------------------------------------------------------------------


def test_helpers() -> None:
    assert organizational_domain("news.example.co.uk") == "example.co.uk"
    assert organizational_domain("co.uk") == "co.uk"
    record = parse_bimi_record("v=BIMI1; l=https://a.example/x.svg,https://b.example/x.svg; a=")
    assert record.logos == ["https://a.example/x.svg", "https://b.example/x.svg"] and record.evidence == ""
    assert parse_bimi_record("v=BIMI1; l; a=").syntax_errors == ("l",)
    assert https_url_problem("https://example.com/logo.SVG", ".svg") is None
    assert https_url_problem("https:///logo.svg", ".svg") == "no-host"
    assert https_url_problem("https://example.com/logo.svg?v=2", ".svg") is None
    assert enforces("reject", 10) and enforces("quarantine", None) and not enforces("quarantine", 99)
    assert not enforces("quarantine", 100, testing=True) and enforces("reject", None, testing=True)
    assert tiny_ps_problems(GOOD_SVG.decode()) == []
    assert tiny_ps_problems('<svg baseProfile="tiny-ps"><title>x</title><image href="https://x.example/a.png"/></svg>') == [
        "it references external files"
    ]
