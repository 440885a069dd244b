"""The web app through its real routes: pages, the diagnoser form and the JSON API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coldrelay.dns.dnsbl import BlocklistConfig
from coldrelay.errors import KnowledgeBase
from coldrelay.web import create_app
from coldrelay.web.tools import ToolSettings


@pytest.fixture(scope="module")
def client(dns_server) -> TestClient:  # type: ignore[no-untyped-def]
    """The app with its tools pointed at the loopback DNS server: no test query leaves the machine."""
    tools = ToolSettings([dns_server.address], timeout=1.0, blocklists=BlocklistConfig().under("blocklist.test"))
    return TestClient(create_app(tools=tools))


def test_home(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Every SMTP error" in page.text


def test_index_groups_by_class_and_provider(client: TestClient, kb: KnowledgeBase) -> None:
    page = client.get("/smtp-errors")
    assert page.status_code == 200
    assert "5xx: permanent failures" in page.text and "4xx: temporary failures" in page.text
    assert 'id="provider-google"' in page.text and 'id="provider-microsoft"' in page.text
    assert page.text.count('href="/smtp-errors/') >= 2 * len(kb)


def test_index_search(client: TestClient) -> None:
    page = client.get("/smtp-errors", params={"q": "TSS04"})
    assert page.status_code == 200
    assert "tss04" in page.text.lower()
    assert "microsoft-550-5-7-1-unable-to-relay" not in page.text
    empty = client.get("/smtp-errors", params={"q": "no-such-words-anywhere"})
    assert "Nothing matches" in empty.text


def test_every_article_renders(client: TestClient, kb: KnowledgeBase) -> None:
    for entry in kb:
        page = client.get(entry.url)
        assert page.status_code == 200, entry.slug
        for heading in ("What it means", "Who you will see it from", "Why it happens", "How to fix it", "In cold email", "FAQ",
                        "References", "Related errors"):  # fmt: skip
            assert f">{heading}</h2>" in page.text, (entry.slug, heading)


def test_unknown_article_is_a_friendly_404(client: TestClient) -> None:
    page = client.get("/smtp-errors/no-such-thing")
    assert page.status_code == 404
    assert "There is no article" in page.text


def test_diagnose_form_post(client: TestClient) -> None:
    page = client.post("/diagnose", data={"text": "550 5.7.1 Unable to relay", "remote_host": ""})
    assert page.status_code == 200
    assert 'data-slug="microsoft-550-5-7-1-unable-to-relay"' in page.text
    assert 'data-reason="norelaying"' in page.text


def test_diagnose_empty_post_explains(client: TestClient) -> None:
    page = client.post("/diagnose", data={"text": "   "})
    assert page.status_code == 422
    assert "Paste an SMTP reply or a whole bounce email first" in page.text


def test_api_explain(client: TestClient) -> None:
    response = client.post("/api/v1/explain", json={"text": "550 5.7.1 Unable to relay"})
    assert response.status_code == 200
    data = response.json()
    assert data["provider"] == "microsoft" and data["reason"] == "norelaying" and data["who_acts"] == "sender"
    assert data["entry"]["slug"] == "microsoft-550-5-7-1-unable-to-relay"


def test_api_rejects_bad_input_clearly(client: TestClient) -> None:
    assert client.post("/api/v1/explain", json={"text": ""}).status_code == 422
    assert client.post("/api/v1/explain", content=b"not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/api/v1/explain", json={"text": "x" * 30_000}).status_code == 422


def test_api_errors_listing_and_detail(client: TestClient) -> None:
    listing = client.get("/api/v1/errors", params={"provider": "yahoo"}).json()
    assert listing and {item["provider"] for item in listing} == {"yahoo"}
    detail = client.get(f"/api/v1/errors/{listing[0]['slug']}").json()
    assert detail["fix_steps"] and len(detail["faq"]) >= 3 and detail["references"]
    missing = client.get("/api/v1/errors/nope")
    assert missing.status_code == 404 and missing.json() == {"detail": "No entry 'nope'"}


def test_openapi_describes_explain(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    assert "/api/v1/explain" in spec["paths"]
    assert client.get("/api/docs").status_code == 200


def test_no_internal_link_is_dead(client: TestClient, kb: KnowledgeBase) -> None:
    """Every link an article makes to our own site must answer; unserved tool pages are never linked."""
    targets: set[str] = set()
    for entry in kb:
        targets.update(re.findall(r'href="(/[^"#]*)', client.get(entry.url).text))
    dead = sorted(target for target in targets if client.get(target).status_code != 200)
    assert dead == []


CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "bounces" / "maildir" / "bsd"


def test_diagnose_takes_a_pasted_bounce(client: TestClient) -> None:
    raw = (CORPUS / "lhost-postfix-03.eml").read_text(encoding="utf-8")
    page = client.post("/diagnose", data={"text": raw})
    assert page.status_code == 200
    assert 'data-recipient="kijitora@example.net"' in page.text


def test_diagnose_takes_an_uploaded_bounce(client: TestClient) -> None:
    raw = (CORPUS / "lhost-postfix-03.eml").read_bytes()
    page = client.post("/diagnose", files={"bounce_file": ("bounce.eml", raw, "message/rfc822")})
    assert page.status_code == 200
    assert 'data-recipient="kijitora@example.net"' in page.text


def test_diagnose_says_when_a_message_is_no_bounce(client: TestClient) -> None:
    message = "From: a@example.org\nTo: b@example.org\nSubject: lunch\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nSee you at noon.\n"
    page = client.post("/diagnose", data={"text": message})
    assert page.status_code == 422
    assert "No bounce found" in page.text


def test_api_bounces(client: TestClient) -> None:
    raw = (CORPUS / "lhost-postfix-03.eml").read_bytes()
    response = client.post("/api/v1/bounces", content=raw, headers={"content-type": "message/rfc822"})
    assert response.status_code == 200
    data = response.json()
    assert data["count"] == len(data["records"]) >= 1
    assert data["records"][0]["recipient"] == "kijitora@example.net"
    assert client.post("/api/v1/bounces", content=b"   ").status_code == 422
    assert client.post("/api/v1/bounces", content=b"x" * 10_000_001).status_code == 413


def test_domain_check_page_names_the_problems(client: TestClient) -> None:
    page = client.get("/tools/domain-check", params={"domain": "example.test", "selector": "default"})
    assert page.status_code == 200
    assert 'data-grade="' in page.text
    for code in ("spf.too-many-lookups", "dkim.rsa-short", "dmarc.missing"):
        assert f'data-code="{code}"' in page.text


def test_domain_check_api_shape(client: TestClient) -> None:
    data = client.get("/api/v1/domain-check", params={"domain": "example.test", "selector": ["default"]}).json()
    assert set(data) == {"domain", "grade", "sections"}
    assert list(data["sections"]) == ["mx", "spf", "dkim", "dmarc", "ptr", "mta_sts", "tls_rpt", "bimi", "dnssec", "blocklists"]
    for section in data["sections"].values():
        assert section["status"] in {"pass", "warn", "fail", "info"}
        for finding in section["findings"]:
            assert set(finding) == {"severity", "code", "message", "fix"}
    assert client.get("/api/v1/domain-check", params={"domain": "not a domain"}).status_code == 422
    assert client.get("/api/v1/domain-check", params={"domain": "example.test", "ip": ["999.1.1.1"]}).status_code == 422


def test_mx_lookup_page_and_api(client: TestClient) -> None:
    page = client.get("/tools/mx-lookup", params={"domain": "example.test"})
    assert page.status_code == 200 and "box.example.test" in page.text
    data = client.get("/api/v1/mx", params={"domain": "example.test"}).json()
    assert data["details"]["hosts"] == [{"preference": 10, "host": "box.example.test", "addresses": ["192.0.2.25"]}]


def test_blocklist_page_and_api(client: TestClient) -> None:
    page = client.get("/tools/blocklist", params={"target": "192.0.2.25"})
    assert page.status_code == 200 and 'data-code="blocklists.clean"' in page.text
    assert client.get("/api/v1/blocklist", params={"target": ""}).status_code == 422
