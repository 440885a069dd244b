"""SMTP TLS Reporting (RFC 8460): the ``_smtp._tls`` TXT record that tells senders where to report TLS failures.

Without it, a broken certificate or an MTA-STS policy that leaves out an MX
host fails silently: senders that honour MTA-STS refuse to deliver and nobody
tells the domain owner. The record is ``v=TLSRPTv1; rua=<uri>[,<uri>]`` with
``mailto:`` or ``https:`` URIs; more than one such record means no reporting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from coldrelay.dns.report import Section, Severity
from coldrelay.dns.resolver import Resolver

_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_MAILBOX = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")


@dataclass(frozen=True, slots=True)
class TlsRptRecord:
    """A parsed ``v=TLSRPTv1`` record; ``problems`` lists finding codes its syntax earned."""

    text: str
    rua: tuple[str, ...] = ()
    bad_uris: tuple[str, ...] = ()
    extensions: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def is_tlsrpt_like(text: str) -> bool:
    """Meant as a TLS-RPT record, right or wrong (a version tag anywhere mentioning TLSRPT)."""
    return re.search(r"(^|;)\s*v\s*=\s*tlsrpt", text, re.IGNORECASE) is not None


def is_tlsrpt_record(text: str) -> bool:
    """Begins exactly with ``v=TLSRPTv1`` followed by ``;``, as senders require."""
    return re.match(r"v=TLSRPTv1[ \t]*;", text) is not None


def valid_report_uri(uri: str) -> bool:
    """``mailto:`` with one address, or ``https://`` with a host name."""
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower()
    if scheme == "mailto":
        address = unquote(rest.split("?", 1)[0])
        return _MAILBOX.fullmatch(address) is not None
    if scheme == "https":
        parts = urlsplit(uri)
        host = parts.hostname or ""
        return bool(rest.startswith("//")) and _HOST.fullmatch(host) is not None and "." in host
    return False


def parse_tlsrpt_record(text: str) -> TlsRptRecord:
    """Parse a record that :func:`is_tlsrpt_record` accepted."""
    problems: list[str] = []
    parts = [p.strip(" \t") for p in text.split(";")]
    if parts and parts[-1] == "":
        parts.pop()
    rua: list[str] | None = None
    extensions: dict[str, str] = {}
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        name = name.strip(" \t")
        if not eq or not _FIELD_NAME.fullmatch(name) or not value.strip():
            problems.append("tls_rpt.syntax")
            continue
        if name == "rua":
            if rua is not None:
                problems.append("tls_rpt.syntax")
                continue
            rua = [u.strip(" \t") for u in value.split(",")]
        elif name == "v":
            problems.append("tls_rpt.syntax")
        else:
            extensions[name] = value.strip()
    uris = tuple(u for u in (rua or []) if u)
    bad = tuple(u for u in uris if not valid_report_uri(u))
    if rua is not None and len(uris) != len(rua):
        problems.append("tls_rpt.syntax")  # an empty entry between commas
    if not uris:
        problems.append("tls_rpt.no-rua")
    if bad:
        problems.append("tls_rpt.bad-uri")
    return TlsRptRecord(text, uris, bad, extensions, tuple(dict.fromkeys(problems)))


async def check_tls_rpt(resolver: Resolver, domain: str) -> Section:
    """The TLS-RPT section: one valid ``v=TLSRPTv1`` record at ``_smtp._tls.<domain>`` with reporting URIs."""
    domain = domain.strip().rstrip(".").lower()
    section = Section("tls_rpt")
    name = f"_smtp._tls.{domain}"
    example = f'{name}. TXT "v=TLSRPTv1; rua=mailto:tls-reports@{domain}"'
    txt, sts = await resolver.lookup_many([(name, "TXT"), (f"_mta-sts.{domain}", "TXT")])
    if txt.failed:
        section.add(
            Severity.WARNING,
            "tls_rpt.lookup-failed",
            f"The DNS lookup of {name} failed ({txt.status.value}), so TLS reporting could not be checked.",
            "Make sure every authoritative nameserver of the domain answers TXT questions, then run the check again.",
        )
        return section
    candidates = [r for r in txt.records if is_tlsrpt_like(r)]
    section.records.extend(candidates)
    if not candidates:
        has_sts = sts.ok and any(r.lstrip().startswith("v=STSv1") for r in sts.records)
        section.details["mta_sts_published"] = has_sts
        if has_sts:
            section.add(
                Severity.WARNING,
                "tls_rpt.missing",
                f"{domain} publishes MTA-STS but no TLS-RPT record, so nobody hears when senders cannot deliver over TLS.",
                f"Publish {example}.",
            )
        else:
            section.add(
                Severity.INFO,
                "tls_rpt.missing",
                f"{domain} publishes no TLS-RPT record, so senders do not report TLS delivery problems to you.",
                f"Publish {example}.",
            )
        return section
    exact = [r for r in candidates if is_tlsrpt_record(r)]
    if len(exact) > 1:
        section.add(
            Severity.ERROR,
            "tls_rpt.multiple-records",
            f"{name} has {len(exact)} TLS-RPT records; senders then send no reports at all.",
            f"Merge them into one record; list several destinations in one rua separated by commas, e.g. {example}.",
        )
        return section
    if not exact:
        section.add(
            Severity.ERROR,
            "tls_rpt.bad-version",
            f'The record at {name} does not begin with "v=TLSRPTv1;", so senders ignore it.',
            f"Replace it with {example} (the version is case-sensitive and must come first).",
        )
        return section
    record = parse_tlsrpt_record(exact[0])
    section.details["rua"] = list(record.rua)
    if "tls_rpt.syntax" in record.problems:
        section.add(
            Severity.ERROR,
            "tls_rpt.syntax",
            f"The TLS-RPT record at {name} is malformed (fields are name=value separated by semicolons, rua only once).",
            f"Replace it with {example}.",
        )
    if "tls_rpt.no-rua" in record.problems:
        section.add(
            Severity.ERROR,
            "tls_rpt.no-rua",
            f"The TLS-RPT record at {name} has no rua destination, so reports have nowhere to go.",
            f"Add a rua tag: {example}.",
        )
    if "tls_rpt.bad-uri" in record.problems:
        section.add(
            Severity.ERROR,
            "tls_rpt.bad-uri",
            f"These rua destinations are not mailto: addresses or https:// URLs: {', '.join(record.bad_uris)}.",
            f"Use mailto:address@domain or an https:// endpoint, e.g. {example}.",
        )
    if not record.problems:
        section.add(
            Severity.OK,
            "tls_rpt.valid",
            f"TLS reports for {domain} go to {', '.join(record.rua)}.",
        )
    return section


__all__ = ["TlsRptRecord", "check_tls_rpt", "is_tlsrpt_record", "parse_tlsrpt_record", "valid_report_uri"]
