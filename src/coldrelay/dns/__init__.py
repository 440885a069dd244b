"""DNS and domain checks: MX, SPF, DKIM, DMARC, reverse DNS, MTA-STS, TLS-RPT, BIMI, DNSSEC, blocklists.

Every check takes a ``Resolver`` (one place to point at any nameserver, with
timeouts, retries and a small cache) and returns a ``Section`` of findings,
each with a severity, a plain explanation and the fix.
"""

from coldrelay.dns.report import Finding, Report, Section, SectionStatus, Severity
from coldrelay.dns.resolver import Lookup, LookupStatus, Nameserver, Resolver

__all__ = ["Finding", "Lookup", "LookupStatus", "Nameserver", "Report", "Resolver", "Section", "SectionStatus", "Severity"]
