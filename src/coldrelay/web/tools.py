"""The public tools (MX lookup, domain check, blocklist, SMTP test) and their JSON twins.

Every page calls the same functions as the CLI, through the resolver the app
was built with, so a test (or an operator behind split DNS) points them all at
one nameserver.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from coldrelay.dns import Resolver
from coldrelay.dns.dnsbl import BlocklistConfig, lookup_blocklists
from coldrelay.dns.health import check_domain, normalise_domain
from coldrelay.dns.mtasts import PolicyFetcher
from coldrelay.dns.mx import lookup_mx, mx_section
from coldrelay.web.rendering import templates

tools_router = APIRouter(include_in_schema=False)
tools_api = APIRouter(prefix="/api/v1", tags=["Domain tools"])

MAX_SELECTORS = 10
MAX_IPS = 5


class ToolSettings:
    """What the tools need from the app: where to resolve, how to fetch policies, which lists to ask."""

    def __init__(
        self,
        nameservers: list[str] | None = None,
        *,
        timeout: float = 3.0,
        fetcher: PolicyFetcher | None = None,
        blocklists: BlocklistConfig | None = None,
        allow_private_targets: bool = False,
        smtp_ports: frozenset[int] | None = None,
    ) -> None:
        self.nameservers = nameservers
        self.timeout = timeout
        self.fetcher = fetcher
        self.blocklists = blocklists
        self.allow_private_targets = allow_private_targets
        self.smtp_ports = smtp_ports
        """SMTP tests against private or loopback addresses; off on a public site (no probing of internal hosts)."""

    def resolver(self) -> Resolver:
        return Resolver(self.nameservers, timeout=self.timeout)


def _settings(request: Request) -> ToolSettings:
    settings: ToolSettings = request.app.state.tools
    return settings


def _split(value: str, limit: int) -> list[str]:
    items = [item.strip() for item in value.replace(";", ",").replace(" ", ",").split(",") if item.strip()]
    return items[:limit]


def _valid_domain(domain: str) -> bool:
    labels = domain.split(".")
    return len(labels) > 1 and len(domain) <= 253 and all(0 < len(label) <= 63 for label in labels)


def _bad_ips(ips: list[str]) -> list[str]:
    bad = []
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            bad.append(ip)
    return bad


async def _domain_report(request: Request, domain: str, selector: str, ip: str) -> dict[str, Any]:
    settings = _settings(request)
    name = normalise_domain(domain)
    if not _valid_domain(name):
        raise ValueError(f"'{domain}' is not a domain name.")
    ips = _split(ip, MAX_IPS)
    bad = _bad_ips(ips)
    if bad:
        raise ValueError(f"Not an IP address: {', '.join(bad)}")
    report = await check_domain(
        settings.resolver(),
        name,
        selectors=_split(selector, MAX_SELECTORS),
        ips=ips,
        fetcher=settings.fetcher,
        blocklists=settings.blocklists,
    )
    return report.to_dict()


@tools_router.get("/tools/domain-check", response_class=HTMLResponse)
async def domain_check_page(request: Request, domain: str = "", selector: str = "", ip: str = "") -> Response:
    report = None
    error = None
    if domain.strip():
        try:
            report = await _domain_report(request, domain, selector, ip)
        except ValueError as exc:
            error = str(exc)
    context = {"domain": domain, "selectors": selector, "ips": ip, "report": report, "error": error}
    return templates.TemplateResponse(request, "tools_domain_check.html", context, status_code=422 if error else 200)


@tools_api.get("/domain-check", summary="Check a sending domain")
async def domain_check_api(
    request: Request,
    domain: str,
    selector: list[str] = Query(default=[]),  # noqa: B008 - FastAPI's way to declare a repeatable parameter
    ip: list[str] = Query(default=[]),  # noqa: B008
) -> dict[str, Any]:
    """`{"domain", "grade", "sections": {NAME: {"status", "findings": [...], "records"}}}` (see the README)."""
    try:
        return await _domain_report(request, domain, ",".join(selector), ",".join(ip))
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


async def _mx(request: Request, domain: str) -> dict[str, Any]:
    name = normalise_domain(domain)
    if not _valid_domain(name):
        raise ValueError(f"'{domain}' is not a domain name.")
    result = await lookup_mx(_settings(request).resolver(), name)
    data = mx_section(result).to_dict()
    data["details"] = {
        **data.get("details", {}),
        "hosts": [{"preference": h.preference, "host": h.host, "addresses": list(h.addresses)} for h in result.hosts],
    }
    data["domain"] = name
    return data


@tools_router.get("/tools/mx-lookup", response_class=HTMLResponse)
async def mx_page(request: Request, domain: str = "") -> Response:
    mx = None
    error = None
    if domain.strip():
        try:
            mx = await _mx(request, domain)
        except ValueError as exc:
            error = str(exc)
    return templates.TemplateResponse(
        request, "tools_mx.html", {"domain": domain, "mx": mx, "error": error}, status_code=422 if error else 200
    )


@tools_api.get("/mx", summary="MX lookup")
async def mx_api(request: Request, domain: str) -> dict[str, Any]:
    """The domain's MX hosts in delivery order with their addresses, and the mx section's findings."""
    try:
        return await _mx(request, domain)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


async def _blocklist(request: Request, target: str) -> dict[str, Any]:
    target = target.strip()
    if not target or len(target) > 253:
        raise ValueError("Give an IP address or a domain.")
    settings = _settings(request)
    section = await lookup_blocklists(settings.resolver(), target, settings.blocklists)
    return section.to_dict()


@tools_router.get("/tools/blocklist", response_class=HTMLResponse)
async def blocklist_page(request: Request, target: str = "") -> Response:
    section = None
    error = None
    if target.strip():
        try:
            section = await _blocklist(request, target)
        except ValueError as exc:
            error = str(exc)
    return templates.TemplateResponse(
        request, "tools_blocklist.html", {"target": target, "section": section, "error": error}, status_code=422 if error else 200
    )


@tools_api.get("/blocklist", summary="Blocklist lookup")
async def blocklist_api(request: Request, target: str) -> dict[str, Any]:
    """An IP against the DNS blocklists, or a domain against the domain lists (and its mail hosts' IPs)."""
    try:
        return await _blocklist(request, target)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


SMTP_PORTS = frozenset({25, 465, 587, 2525})
"""Ports the public SMTP test connects to: mail ports only, so the page cannot scan other services."""


async def _public_target(request: Request, target: str) -> tuple[str, int]:
    """Refuse targets a public page must not reach: other ports, private and loopback addresses."""
    from coldrelay.smtpcheck import split_host_port

    try:
        host, port = split_host_port(target)
    except ValueError:
        raise ValueError(f"'{target}' is not a host or host:port.") from None
    settings = _settings(request)
    ports = settings.smtp_ports or SMTP_PORTS
    if not host or port not in ports:
        raise ValueError(f"Only mail ports can be tested ({', '.join(map(str, sorted(ports)))}).")
    if settings.allow_private_targets:
        return host, port
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        resolver = settings.resolver()
        found = await resolver.lookup_many([(host, "A"), (host, "AAAA")])
        addresses = [ipaddress.ip_address(r) for lookup in found for r in lookup.records]
        if not addresses:
            raise ValueError(f"{host} has no address.") from None
    if any(not address.is_global for address in addresses):
        raise ValueError(f"{host} is a private or local address; this public tool only tests servers on the internet.")
    return host, port


async def _smtp(request: Request, target: str, relay: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from coldrelay.smtpcheck import probe_smtp, relay_test

    host, port = await _public_target(request, target)
    probe = await probe_smtp(host, port, timeout=10.0)
    relay_section = (await relay_test(host, port, timeout=10.0)).section.to_dict() if relay else None
    return probe.section.to_dict(), relay_section


@tools_router.get("/tools/smtp-test", response_class=HTMLResponse)
async def smtp_page(request: Request, host: str = "", relay: bool = False) -> Response:
    probe = relay_section = None
    error = None
    if host.strip():
        try:
            probe, relay_section = await _smtp(request, host, relay)
        except ValueError as exc:
            error = str(exc)
    context = {"host": host, "relay": relay, "probe": probe, "relay_section": relay_section, "error": error}
    return templates.TemplateResponse(request, "tools_smtp.html", context, status_code=422 if error else 200)


@tools_api.get("/smtp-test", summary="Probe an SMTP server")
async def smtp_api(request: Request, host: str, relay: bool = False) -> dict[str, Any]:
    """The probe's section (banner, EHLO, STARTTLS, certificate) and, with relay=true, the open-relay test's."""
    try:
        probe, relay_section = await _smtp(request, host, relay)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"smtp": probe, "relay": relay_section}
