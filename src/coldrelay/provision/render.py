"""A record plan as text: a zone-file fragment to paste, JSON for scripts, CSV for spreadsheets and DNS panel imports.

The zone-file form is what BIND, NSD and most panels' "import zone" accept: owner names relative
to ``$ORIGIN``, targets absolute with the trailing dot (so a paste into any zone cannot turn them
into ``box.example.com.example.com``), and TXT values split into quoted strings of at most 255
bytes (RFC 1035 3.3.14), which a 2048-bit DKIM key needs. PTR records belong to the IP's
provider, so they appear as comments with the exact value to ask for.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from coldrelay.db import txt_strings
from coldrelay.provision.records import DnsRecord, RecordPlan

__all__ = ["FORMATS", "render", "to_bind", "to_csv", "to_json", "zone_rdata"]

FORMATS = ("bind", "json", "csv")


def _quote(text: str) -> str:
    """One character-string in zone-file syntax: backslash and double quote escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def zone_rdata(record: DnsRecord) -> str:
    """The record's data as a zone file writes it (absolute targets, quoted and split TXT)."""
    if record.rtype == "TXT":
        return " ".join(_quote(part) for part in txt_strings(record.value))
    if record.rtype == "MX":
        preference, _, host = record.value.partition(" ")
        return f"{preference} {host}."
    if record.rtype == "CNAME":
        return f"{record.value}."
    return record.value


def to_bind(plan: RecordPlan) -> str:
    """Zone-file lines for the plan, relative to ``$ORIGIN <domain>.``; each record preceded by its purpose."""
    lines = [f"; DNS records for {plan.domain} (coldrelay)", f"$ORIGIN {plan.domain}.", ""]
    width = max((len(r.relative_name(plan.domain)) for r in plan.records), default=1)
    for record in plan.records:
        flag = "" if record.required else " (recommended)"
        lines.append(f"; {record.purpose}{flag}")
        owner = record.relative_name(plan.domain).ljust(width)
        lines.append(f"{owner} {record.ttl} IN {record.rtype:<5} {zone_rdata(record)}")
    if plan.ptr_records:
        lines.append("")
        lines.append("; Reverse DNS: not part of this zone; ask the provider of each IP for these PTR records.")
        for ptr in plan.ptr_records:
            lines.append(f";   {ptr.name}. IN PTR {ptr.value}.  ({ptr.ip}, {ptr.where})")
    if plan.notes:
        lines.append("")
        lines.extend(f"; Note: {note}" for note in plan.notes)
    return "\n".join(lines) + "\n"


def plan_dict(plan: RecordPlan) -> dict[str, Any]:
    """The plan as plain JSON-able data; TXT values are whole strings (JSON has no 255-byte limit)."""
    return {
        "domain": plan.domain,
        "mail_host": plan.mail_host,
        "records": [
            {
                "name": r.name,
                "type": r.rtype,
                "value": r.value,
                "ttl": r.ttl,
                "purpose": r.purpose,
                "required": r.required,
            }
            for r in plan.records
        ],
        "ptr": [{"ip": p.ip, "name": p.name, "value": p.value, "where": p.where} for p in plan.ptr_records],
        "mta_sts_policy": plan.mta_sts_policy,
        "notes": list(plan.notes),
    }


def to_json(plan: RecordPlan) -> str:
    return json.dumps(plan_dict(plan), indent=2) + "\n"


def to_csv(plan: RecordPlan) -> str:
    """One row per record with the owner name relative to the domain, as most DNS panels ask for it.

    PTR rows carry their reverse name and say where they are set, so the sheet is the whole checklist.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "fqdn", "type", "value", "ttl", "required", "purpose"])
    for r in plan.records:
        writer.writerow([r.relative_name(plan.domain), r.name, r.rtype, r.value, r.ttl, "yes" if r.required else "no", r.purpose])
    for p in plan.ptr_records:
        writer.writerow([p.name, p.name, "PTR", p.value, "", "yes", f"reverse DNS of {p.ip}: {p.where}"])
    return out.getvalue()


def render(plan: RecordPlan, fmt: str) -> str:
    """The plan in one of ``FORMATS``; raises ``ValueError`` for any other name."""
    if fmt == "bind":
        return to_bind(plan)
    if fmt == "json":
        return to_json(plan)
    if fmt == "csv":
        return to_csv(plan)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
