"""Findings, sections and the report: the shape every check returns and ``--json`` prints.

The JSON shape is a contract other tools rely on:
``{"domain", "grade", "sections": {NAME: {"status", "findings": [{"severity",
"code", "message", "fix"}], "records"}}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    OK = "ok"
    """Something that is right, worth saying (a record found, a policy that enforces)."""
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class SectionStatus(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str
    """A stable identifier (``spf.too-many-lookups``): tools and tests key on it, never on the wording."""
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity.value, "code": self.code, "message": self.message, "fix": self.fix}


@dataclass(slots=True)
class Section:
    """One check's result: its findings and the raw records it read."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    status: SectionStatus | None = None
    """Set by a check that knows better; otherwise the worst finding decides."""
    details: dict[str, Any] = field(default_factory=dict)
    """Structured extras a check wants to show (an SPF tree, MX hosts); not part of the contract."""

    def add(self, severity: Severity, code: str, message: str, fix: str = "") -> None:
        self.findings.append(Finding(severity, code, message, fix))

    @property
    def effective_status(self) -> SectionStatus:
        if self.status is not None:
            return self.status
        severities = {f.severity for f in self.findings}
        if Severity.ERROR in severities:
            return SectionStatus.FAIL
        if Severity.WARNING in severities:
            return SectionStatus.WARN
        if Severity.OK in severities:
            return SectionStatus.PASS
        return SectionStatus.INFO

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.effective_status.value,
            "findings": [f.to_dict() for f in self.findings],
            "records": list(self.records),
        }
        if self.details:
            data["details"] = self.details
        return data


SECTION_ORDER = ("mx", "spf", "dkim", "dmarc", "ptr", "mta_sts", "tls_rpt", "bimi", "dnssec", "blocklists")
_WEIGHT = {
    "mx": 3,
    "spf": 3,
    "dkim": 3,
    "dmarc": 3,
    "ptr": 2,
    "blocklists": 3,
    "mta_sts": 1,
    "tls_rpt": 1,
    "bimi": 1,
    "dnssec": 1,
}


@dataclass(slots=True)
class Report:
    domain: str
    sections: dict[str, Section] = field(default_factory=dict)

    @property
    def grade(self) -> str:
        """A to F: each failing section costs its weight x 8 points, each warning its weight x 3."""
        score = 100
        for name, section in self.sections.items():
            status = section.effective_status
            weight = _WEIGHT.get(name, 1)
            if status is SectionStatus.FAIL:
                score -= 8 * weight
            elif status is SectionStatus.WARN:
                score -= 3 * weight
        for limit, grade in ((90, "A"), (80, "B"), (65, "C"), (50, "D")):
            if score >= limit:
                return grade
        return "F"

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.sections, key=lambda n: SECTION_ORDER.index(n) if n in SECTION_ORDER else 99)
        return {"domain": self.domain, "grade": self.grade, "sections": {n: self.sections[n].to_dict() for n in ordered}}
