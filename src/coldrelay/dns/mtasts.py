"""MTA-STS (RFC 8461): the ``_mta-sts`` TXT record, the HTTPS policy file, and its mx patterns against the real MX.

A sending server that supports MTA-STS reads ``_mta-sts.<domain>`` TXT, then
fetches ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (valid certificate
for that name, no redirects, ``text/plain``) and, in ``enforce`` mode, refuses
to deliver to an MX host the policy's ``mx`` patterns do not cover. A policy
that leaves out a real MX host therefore bounces mail; this check says which.

The HTTPS fetch goes through :class:`PolicyFetcher`, which BIMI reuses for the
logo: a CA bundle, a port override and a host->address map make it testable
against a loopback server, and every network problem comes back as a
:class:`FetchResult`, never as an exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx2

from coldrelay.dns.report import Finding, Section, Severity
from coldrelay.dns.resolver import Lookup, Resolver

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_POLICY_BYTES = 64 * 1024
"""RFC 8461 lets senders refuse policy bodies larger than 64 KiB."""
MAX_AGE_LIMIT = 31_557_600
"""The largest ``max_age`` RFC 8461 allows (about one year)."""
SHORT_MAX_AGE = 86_400
"""Below one day a cached policy expires between fetches, which weakens the protection against downgrade."""
SUGGESTED_MAX_AGE = 604_800
STS_MODES = ("enforce", "testing", "none")

_TXT_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_TXT_FIELD_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_POLICY_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31})[ \t]*:[ \t]*(.*?)[ \t]*")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_MX_PATTERN = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})+")
_MAX_AGE = re.compile(r"[0-9]{1,10}")


# --- the HTTPS fetcher -------------------------------------------------------------------------------------------


class FetchStatus(StrEnum):
    OK = "ok"
    """An HTTP response arrived (any status code: look at ``status_code``)."""
    NO_ADDRESS = "no-address"
    """The host name has no A or AAAA record."""
    DNS_FAILED = "dns-failed"
    """Looking up the host's address failed (SERVFAIL, timeout)."""
    TIMEOUT = "timeout"
    CERTIFICATE = "certificate"
    """The TLS certificate is not valid for the host (wrong name, untrusted issuer, expired)."""
    CONNECT = "connect"
    """Connection refused or reset, or a TLS handshake failure other than the certificate."""
    TOO_LARGE = "too-large"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str
    status: FetchStatus
    status_code: int = 0
    content_type: str = ""
    body: bytes = b""
    location: str = ""
    """The ``Location`` header of a redirect (redirects are reported, never followed)."""
    address: str = ""
    """The IP address connected to, when known."""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is FetchStatus.OK

    @property
    def media_type(self) -> str:
        """The content type without parameters, lower-case (``text/plain; charset=utf-8`` -> ``text/plain``)."""
        return self.content_type.split(";", 1)[0].strip().lower()

    def describe(self) -> str:
        """A short phrase for messages: what went wrong with this fetch."""
        if self.status is FetchStatus.OK:
            return f"HTTP {self.status_code}"
        if self.status is FetchStatus.NO_ADDRESS:
            return "the host name has no A or AAAA record"
        if self.status is FetchStatus.DNS_FAILED:
            return "the host name could not be resolved"
        if self.status is FetchStatus.TIMEOUT:
            return "no complete answer in time"
        if self.status is FetchStatus.CERTIFICATE:
            return f"the HTTPS certificate was rejected ({self.error})"
        if self.status is FetchStatus.TOO_LARGE:
            return "the file is larger than allowed"
        return f"the connection failed ({self.error})"


def _is_certificate_error(exc: BaseException) -> tuple[bool, str]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True, str(current.verify_message or current.reason or current)
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return True, text
    return False, text


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class PolicyFetcher:
    """Fetch one small file over HTTPS the way an MTA-STS sender does: verified certificate, no redirects, a size cap.

    ``ca_bundle`` is a PEM file (or an ``ssl.SSLContext``) to trust instead of the system store; ``port``
    replaces 443 for every request; ``hosts`` maps host names to the address to connect to (the certificate
    is still checked against the host name). Without a map entry, addresses come from the shared
    ``Resolver`` when one is given, so a user's ``--nameserver`` applies to the web host as well.
    """

    def __init__(
        self,
        ca_bundle: str | os.PathLike[str] | ssl.SSLContext | None = None,
        *,
        port: int | None = None,
        hosts: Mapping[str, str] | None = None,
        timeout: float = 8.0,
        user_agent: str = "coldrelay-domain-check/1",
    ) -> None:
        if isinstance(ca_bundle, ssl.SSLContext):
            self._ssl = ca_bundle
        elif ca_bundle is not None:
            self._ssl = ssl.create_default_context(cafile=os.fspath(ca_bundle))
        else:
            self._ssl = httpx2.create_ssl_context(verify=True, trust_env=False)
        self.port = port
        self.hosts = {name.rstrip(".").lower(): address for name, address in (hosts or {}).items()}
        self.timeout = timeout
        self.user_agent = user_agent

    async def _address(self, host: str, resolver: Resolver | None) -> tuple[str | None, FetchStatus | None]:
        mapped = self.hosts.get(host)
        if mapped is not None:
            return mapped, None
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return host, None
        if resolver is None:
            return None, None  # let the HTTP client resolve the name itself
        a, aaaa = await resolver.lookup_many([(host, "A"), (host, "AAAA")])
        for lookup in (a, aaaa):
            if lookup.ok and lookup.records:
                return lookup.records[0], None
        if a.failed and aaaa.failed:
            return None, FetchStatus.DNS_FAILED
        return None, FetchStatus.NO_ADDRESS

    async def get(self, url: str, *, resolver: Resolver | None = None, max_bytes: int = MAX_POLICY_BYTES) -> FetchResult:
        """GET ``url`` (https only); never raises for network, TLS or HTTP trouble."""
        try:
            parsed = httpx2.URL(url)
        except (httpx2.InvalidURL, ValueError, TypeError) as exc:
            return FetchResult(url, FetchStatus.ERROR, error=f"invalid URL: {exc}")
        if parsed.scheme != "https" or not parsed.host:
            return FetchResult(url, FetchStatus.ERROR, error="only https:// URLs are fetched")
        host = parsed.host.rstrip(".").lower()
        port = self.port or parsed.port or 443
        address, problem = await self._address(host, resolver)
        if problem is not None:
            return FetchResult(url, problem)
        target = f"https://{_url_host(address or host)}:{port}{parsed.raw_path.decode('ascii')}"
        host_header = host if port == 443 else f"{host}:{port}"
        headers = {"Host": host_header, "User-Agent": self.user_agent, "Accept": "*/*"}
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(url, target, host, headers, address or "", max_bytes)
        except TimeoutError:
            return FetchResult(url, FetchStatus.TIMEOUT, address=address or "", error=f"no answer within {self.timeout:g} s")
        except httpx2.TimeoutException as exc:
            return FetchResult(url, FetchStatus.TIMEOUT, address=address or "", error=str(exc)[:200] or "timed out")
        except (httpx2.HTTPError, OSError, ssl.SSLError, ValueError) as exc:
            is_cert, text = _is_certificate_error(exc)
            status = FetchStatus.CERTIFICATE if is_cert else FetchStatus.CONNECT
            return FetchResult(url, status, address=address or "", error=text[:200] or type(exc).__name__)

    async def _fetch(
        self, url: str, target: str, host: str, headers: dict[str, str], address: str, max_bytes: int
    ) -> FetchResult:
        timeout = httpx2.Timeout(self.timeout)
        async with (
            httpx2.AsyncClient(verify=self._ssl, timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", target, headers=headers, extensions={"sni_hostname": host}) as response,
        ):
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    return FetchResult(
                        url,
                        FetchStatus.TOO_LARGE,
                        response.status_code,
                        response.headers.get("content-type", ""),
                        address=address,
                        error=f"more than {max_bytes} bytes",
                    )
            return FetchResult(
                url,
                FetchStatus.OK,
                response.status_code,
                response.headers.get("content-type", ""),
                bytes(body),
                response.headers.get("location", ""),
                address,
            )


# --- the TXT record ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StsRecord:
    """A parsed ``v=STSv1`` TXT record; ``problems`` holds the finding codes its syntax earned."""

    text: str
    policy_id: str | None
    extensions: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def is_sts_like(text: str) -> bool:
    """A TXT string that is meant as an MTA-STS record (right or wrong version)."""
    return text.lstrip().lower().startswith("v=sts")


def is_sts_record(text: str) -> bool:
    """Begins exactly with ``v=STSv1`` followed by ``;`` or the end, as senders require."""
    return re.match(r"v=STSv1[ \t]*(;|$)", text) is not None


def parse_sts_record(text: str) -> StsRecord:
    """Parse a record that :func:`is_sts_record` accepted."""
    problems: list[str] = []
    parts = [p.strip(" \t") for p in text.split(";")]
    if parts and parts[-1] == "":
        parts.pop()  # a trailing ";" is allowed
    policy_id: str | None = None
    extensions: dict[str, str] = {}
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        if not eq or not _TXT_FIELD_NAME.fullmatch(name) or not _TXT_FIELD_VALUE.fullmatch(value):
            problems.append("mta_sts.record-syntax")
            continue
        if name == "id":
            if policy_id is not None:
                problems.append("mta_sts.record-syntax")
            elif _STS_ID.fullmatch(value):
                policy_id = value
            else:
                problems.append("mta_sts.record-bad-id")
                policy_id = value
        elif name == "v":
            problems.append("mta_sts.record-syntax")
        else:
            extensions[name] = value
    if policy_id is None:
        problems.append("mta_sts.record-missing-id")
    return StsRecord(text, policy_id, extensions, tuple(dict.fromkeys(problems)))


# --- the policy file ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StsPolicy:
    version: str | None = None
    mode: str | None = None
    max_age: int | None = None
    max_age_text: str | None = None
    mx: tuple[str, ...] = ()
    extensions: dict[str, str] = field(default_factory=dict)
    bad_lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "mode": self.mode, "max_age": self.max_age, "mx": list(self.mx)}


def parse_policy(text: str) -> StsPolicy:
    """Read ``key: value`` lines (LF or CRLF); the first version/mode/max_age wins, every mx line counts."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    extensions: dict[str, str] = {}
    bad: list[str] = []
    for raw in re.split(r"\r?\n", text):
        line = raw.strip(" \t")
        if not line:
            continue
        match = _POLICY_LINE.fullmatch(line)
        if match is None or not match.group(2):
            bad.append(raw)
            continue
        key, value = match.group(1), match.group(2)
        if key == "mx":
            mx.append(value)
        elif key in ("version", "mode", "max_age"):
            fields.setdefault(key, value)
        else:
            extensions.setdefault(key, value)
    max_age_text = fields.get("max_age")
    max_age = int(max_age_text) if max_age_text is not None and _MAX_AGE.fullmatch(max_age_text) else None
    return StsPolicy(fields.get("version"), fields.get("mode"), max_age, max_age_text, tuple(mx), extensions, tuple(bad))


def valid_mx_pattern(pattern: str) -> bool:
    """A host name, or ``*.`` plus a host name (the wildcard covers exactly one leftmost label)."""
    return _MX_PATTERN.fullmatch(pattern.lower()) is not None


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 matching: exact name, or ``*.example.com`` for ``x.example.com`` (one label, never deeper)."""
    pattern = pattern.lower()
    host = host.rstrip(".").lower()
    if pattern.startswith("*."):
        _, dot, rest = host.partition(".")
        return bool(dot) and rest == pattern[2:]
    return host == pattern


def parse_mx(records: tuple[str, ...]) -> list[str]:
    """MX rdata text (``10 mx1.example.com.``) to host names, lowest preference first; a null MX yields nothing."""
    hosts: list[tuple[int, str]] = []
    for record in records:
        pref, _, target = record.strip().partition(" ")
        target = target.strip().rstrip(".").lower()
        if not target:
            continue
        try:
            hosts.append((int(pref), target))
        except ValueError:
            hosts.append((65536, target))
    return [host for _, host in sorted(hosts)]


def suggested_policy(mx_hosts: list[str], mode: str = "enforce") -> str:
    """The exact policy file to publish for these MX hosts."""
    lines = ["version: STSv1", f"mode: {mode}"]
    lines += [f"mx: {host}" for host in (mx_hosts or ["mail.example.com"])]
    lines.append(f"max_age: {SUGGESTED_MAX_AGE}")
    return "\n".join(lines)


# --- the check ---------------------------------------------------------------------------------------------------


def _normalise(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def _record_findings(domain: str, lookup: Lookup, section: Section) -> bool:
    """Judge the TXT record(s); True when something MTA-STS-like is published (so the policy is worth fetching)."""
    name = f"_mta-sts.{domain}"
    example = f'{name}. TXT "v=STSv1; id=20260101000000"'
    if lookup.failed:
        section.add(
            Severity.WARNING,
            "mta_sts.lookup-failed",
            f"The DNS lookup of {name} failed ({lookup.status.value}), so MTA-STS could not be checked.",
            "Make sure every authoritative nameserver of the domain answers TXT questions, then run the check again.",
        )
        return False
    candidates = [r for r in lookup.records if is_sts_like(r)]
    section.records.extend(candidates)
    if not candidates:
        section.add(
            Severity.INFO,
            "mta_sts.missing",
            f"{domain} publishes no MTA-STS record, so senders may deliver to it without verified TLS.",
            f"Serve a policy at https://mta-sts.{domain}{POLICY_PATH} (start in testing mode), then publish {example}.",
        )
        return False
    exact = [r for r in candidates if is_sts_record(r)]
    if len(exact) > 1:
        section.add(
            Severity.ERROR,
            "mta_sts.multiple-records",
            f"{name} has {len(exact)} MTA-STS records; senders then ignore MTA-STS for the domain entirely.",
            f"Delete all but one, keeping a single record such as {example}.",
        )
        return True
    if not exact:
        section.add(
            Severity.ERROR,
            "mta_sts.record-bad-version",
            f'The record at {name} does not begin with "v=STSv1", so senders ignore it.',
            f"Replace it with {example} (the version is case-sensitive and must come first).",
        )
        return True
    record = parse_sts_record(exact[0])
    section.details["record"] = {"id": record.policy_id, "extensions": record.extensions}
    if "mta_sts.record-missing-id" in record.problems:
        section.add(
            Severity.ERROR,
            "mta_sts.record-missing-id",
            f"The MTA-STS record at {name} has no id, so senders treat the record as invalid.",
            f"Publish {example}; change the id each time the policy file changes.",
        )
    if "mta_sts.record-bad-id" in record.problems:
        section.add(
            Severity.ERROR,
            "mta_sts.record-bad-id",
            f'The id "{record.policy_id}" is not 1 to 32 letters and digits, so senders treat the record as invalid.',
            f"Use letters and digits only, for example {example}.",
        )
    if "mta_sts.record-syntax" in record.problems:
        section.add(
            Severity.ERROR,
            "mta_sts.record-syntax",
            f"The MTA-STS record at {name} is malformed (each field must be name=value, separated by semicolons).",
            f"Replace it with {example}.",
        )
    return True


def _fetch_findings(domain: str, url: str, result: FetchResult, section: Section, mx_hosts: list[str]) -> str | None:
    """Judge the HTTPS answer; return the policy text when there is one to read."""
    host = f"mta-sts.{domain}"
    policy = suggested_policy(mx_hosts)
    section.details["policy_fetch"] = {
        "url": url,
        "status": result.status.value,
        "http_status": result.status_code,
        "content_type": result.content_type,
        "address": result.address,
        "error": result.error,
    }
    if result.status is FetchStatus.NO_ADDRESS:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-host-missing",
            f"{host} has no A or AAAA record, so senders cannot download the MTA-STS policy.",
            f"Point {host} (A/AAAA or CNAME) at a web server that serves {url} over HTTPS.",
        )
        return None
    if result.status is FetchStatus.TIMEOUT:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-timeout",
            f"The policy at {url} did not arrive in time ({result.error}), so senders cannot use it.",
            f"Make sure the web server behind {host} accepts HTTPS on port 443 and answers quickly.",
        )
        return None
    if result.status is FetchStatus.CERTIFICATE:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-certificate",
            f"The HTTPS certificate of {host} is not valid for that name ({result.error}), so senders reject the policy.",
            f"Install a certificate from a public CA that lists {host} in its names (e.g. Let's Encrypt) and renew it in time.",
        )
        return None
    if result.status in (FetchStatus.CONNECT, FetchStatus.DNS_FAILED, FetchStatus.ERROR):
        section.add(
            Severity.ERROR,
            "mta_sts.policy-unreachable",
            f"The policy at {url} could not be fetched: {result.describe()}.",
            f"Serve {url} over HTTPS on port 443 from the host {host}.",
        )
        return None
    if result.status is FetchStatus.TOO_LARGE:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-too-large",
            f"The policy at {url} is larger than 64 KiB, which senders may refuse.",
            f"Serve a short policy file:\n{policy}",
        )
        return None
    if 300 <= result.status_code < 400:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-redirect",
            f"{url} answers with a redirect (HTTP {result.status_code}); senders do not follow redirects for MTA-STS.",
            f"Serve the policy directly at {url} with status 200 instead of redirecting"
            + (f" to {result.location}." if result.location else "."),
        )
        return None
    if result.status_code != 200:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-http-status",
            f"{url} answers HTTP {result.status_code} instead of the policy, so senders find no policy.",
            f"Serve this file at {url} with status 200 and Content-Type text/plain:\n{policy}",
        )
        return None
    if result.media_type != "text/plain":
        section.add(
            Severity.ERROR,
            "mta_sts.policy-content-type",
            f'The policy is served as "{result.content_type or "no content type"}" instead of text/plain, which senders reject.',
            "Configure the web server to send Content-Type: text/plain for /.well-known/mta-sts.txt.",
        )
    try:
        return result.body.decode("utf-8")
    except UnicodeDecodeError:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-syntax",
            "The policy file is not readable text (not UTF-8).",
            f"Serve a plain-text policy:\n{policy}",
        )
        return None


def _policy_findings(domain: str, policy: StsPolicy, section: Section, mx_hosts: list[str]) -> None:
    example = suggested_policy(mx_hosts, policy.mode if policy.mode in ("enforce", "testing") else "enforce")
    if policy.bad_lines:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-syntax",
            f'The policy has {len(policy.bad_lines)} line(s) that are not "key: value", e.g. "{policy.bad_lines[0][:80]}".',
            f"Write one key: value per line, for example:\n{example}",
        )
    if policy.version != "STSv1":
        section.add(
            Severity.ERROR,
            "mta_sts.policy-bad-version",
            f'The policy says version "{policy.version or "(missing)"}" instead of STSv1, so senders discard it.',
            'Make the first line of the policy file "version: STSv1".',
        )
    if policy.mode not in STS_MODES:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-bad-mode",
            f'The policy mode is "{policy.mode or "(missing)"}"; it must be enforce, testing or none.',
            'Add "mode: testing" while you watch TLS reports, then change it to "mode: enforce".',
        )
    if policy.max_age is None or policy.max_age > MAX_AGE_LIMIT:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-bad-max-age",
            f'The policy max_age "{policy.max_age_text or "(missing)"}" is not a number of seconds up to {MAX_AGE_LIMIT}.',
            f'Add "max_age: {SUGGESTED_MAX_AGE}" (one week) to the policy.',
        )
    elif policy.max_age < SHORT_MAX_AGE and policy.mode in ("enforce", "testing"):
        section.add(
            Severity.WARNING,
            "mta_sts.max-age-short",
            f"The policy max_age is {policy.max_age} seconds, so senders forget it quickly and lose downgrade protection.",
            f'Use "max_age: {SUGGESTED_MAX_AGE}" (one week) or more once the policy is stable.',
        )
    bad_patterns = [p for p in policy.mx if not valid_mx_pattern(p)]
    if bad_patterns:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-bad-mx-pattern",
            f"These mx lines are not host names or *.domain patterns: {', '.join(bad_patterns)}.",
            "Write each MX host name in full (mx: mx1.example.com) or as one leading wildcard (mx: *.example.com).",
        )
    if policy.mode in ("enforce", "testing") and not policy.mx:
        section.add(
            Severity.ERROR,
            "mta_sts.policy-no-mx",
            f"The policy is in {policy.mode} mode but lists no mx lines, so it covers none of your mail servers.",
            f"List every MX host:\n{example}",
        )
    if policy.mode == "testing":
        section.add(
            Severity.INFO,
            "mta_sts.testing-mode",
            "The policy is in testing mode: senders report TLS problems but still deliver without verified TLS.",
            'After a few weeks of clean TLS reports, change the policy to "mode: enforce" and update the id in the TXT record.',
        )
    elif policy.mode == "none":
        section.add(
            Severity.INFO,
            "mta_sts.mode-none",
            'The policy is in mode "none": it tells senders MTA-STS is switched off for this domain.',
            'If you want protection, serve "mode: testing" first and later "mode: enforce", updating the TXT id each time.',
        )


def _coverage_findings(domain: str, policy: StsPolicy, section: Section, mx: Lookup) -> None:
    if policy.mode not in ("enforce", "testing") or not policy.mx:
        return
    patterns = [p for p in policy.mx if valid_mx_pattern(p)]
    if mx.failed:
        section.add(
            Severity.WARNING,
            "mta_sts.mx-lookup-failed",
            f"The MX lookup for {domain} failed ({mx.status.value}), so the policy's mx lines could not be compared.",
            "Make sure every authoritative nameserver answers MX questions, then run the check again.",
        )
        return
    hosts = parse_mx(mx.records) if mx.ok else []
    if not hosts:
        section.add(
            Severity.INFO,
            "mta_sts.no-mx",
            f"{domain} has no MX hosts to compare with the policy's mx lines.",
            "Publish MX records for the domain, or remove the MTA-STS record if it receives no mail.",
        )
        return
    uncovered = [h for h in hosts if not any(mx_matches(p, h) for p in patterns)]
    unused = [p for p in patterns if not any(mx_matches(p, h) for h in hosts)]
    section.details["uncovered_mx"] = uncovered
    section.details["unused_patterns"] = unused
    if uncovered:
        enforce = policy.mode == "enforce"
        consequence = (
            "senders that honour MTA-STS will refuse to deliver to them"
            if enforce
            else "in enforce mode senders would refuse to deliver to them"
        )
        kept = list(dict.fromkeys([*patterns, *uncovered]))
        section.add(
            Severity.ERROR if enforce else Severity.WARNING,
            "mta_sts.mx-not-covered",
            f"MX host(s) {', '.join(uncovered)} match no mx line of the policy; {consequence}.",
            "Add the missing hosts to the policy and change the TXT id:\n" + "\n".join(f"mx: {p}" for p in kept),
        )
    if unused:
        section.add(
            Severity.INFO,
            "mta_sts.pattern-unused",
            f"The policy's mx line(s) {', '.join(unused)} match none of the current MX hosts.",
            "Remove stale mx lines from the policy once those servers are retired, and change the TXT id.",
        )


async def check_mta_sts(resolver: Resolver, domain: str, *, fetcher: PolicyFetcher | None = None) -> Section:
    """The MTA-STS section: the TXT record, the HTTPS policy, and its mx patterns against the real MX hosts."""
    domain = _normalise(domain)
    section = Section("mta_sts")
    host = f"mta-sts.{domain}"
    url = f"https://{host}{POLICY_PATH}"
    # The web host's address questions go out now as well, so the fetch below finds them in the cache.
    txt, mx, _a, _aaaa = await resolver.lookup_many([(f"_mta-sts.{domain}", "TXT"), (domain, "MX"), (host, "A"), (host, "AAAA")])
    if not _record_findings(domain, txt, section):
        return section
    mx_hosts = parse_mx(mx.records) if mx.ok else []
    section.details["mx_hosts"] = mx_hosts
    result = await (fetcher or PolicyFetcher()).get(url, resolver=resolver, max_bytes=MAX_POLICY_BYTES)
    text = _fetch_findings(domain, url, result, section, mx_hosts)
    if text is None:
        return section
    section.details["policy_text"] = text
    policy = parse_policy(text)
    section.details["policy"] = policy.to_dict()
    _policy_findings(domain, policy, section, mx_hosts)
    _coverage_findings(domain, policy, section, mx)
    blocking = [f for f in section.findings if f.severity in (Severity.ERROR, Severity.WARNING)]
    if not blocking and mx_hosts and policy.mode in ("enforce", "testing"):
        what = "requires" if policy.mode == "enforce" else "asks for reports on"
        section.findings.insert(
            0,
            Finding(
                Severity.OK,
                "mta_sts.valid",
                f"MTA-STS is published and valid: the policy {what} verified TLS for all {len(mx_hosts)} MX host(s).",
            ),
        )
    return section


__all__ = [
    "MAX_POLICY_BYTES",
    "FetchResult",
    "FetchStatus",
    "PolicyFetcher",
    "StsPolicy",
    "StsRecord",
    "check_mta_sts",
    "mx_matches",
    "parse_mx",
    "parse_policy",
    "parse_sts_record",
    "suggested_policy",
    "valid_mx_pattern",
]
