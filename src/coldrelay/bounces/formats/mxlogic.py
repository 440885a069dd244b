"""MX Logic (McAfee SaaS Email Protection): Exim-style notices from ``mxl_mta``.

The body is Exim's ("A message that you have sent could not be delivered to
one or more recipients. ... The following address failed:" then
``  <address>: reply``, possibly folded onto the next lines), with the copy of
the message after "Included is a copy of the message header:". What tells it
apart: ``X-MX-Bounce`` / ``X-MXL-*`` headers, ``<mxl~...>`` message ids, and
the ``mxl_mta`` in the Received lines the gateway writes.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import ADDRESS
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "mxlogic"
PRIORITY = 25
# Skipped by core.py unless a marker occurs: parse() requires an MX Logic header, mxl~ Message-ID or mxl_mta stamp.
MARKERS = ("x-mx-bounce", "x-mxl-notehash", "mxl~", "(mxl_mta-")

_STAMP = re.compile(r"\(mxl_mta-[\w.-]+\)", re.IGNORECASE)
_FAILED = re.compile(r"following address(?:\(es\)|es)? failed:[ \t]*$", re.IGNORECASE | re.MULTILINE)
_DELAYED = re.compile(r"address(?:\(es\)|es)? to which the message has not yet been delivered (?:is|are):[ \t]*$", re.I | re.M)
_STOP = re.compile(r"^\s*(?:-{5,}|Included is a copy of the message header|-+ ?This is a copy of the message)", re.IGNORECASE)
_ENTRY = re.compile(rf"^\s*<?({ADDRESS.pattern})>?:?\s*(.*)$")


def _stamped(bounce: Bounce) -> bool:
    """MX Logic's own headers, its ``mxl~`` message ids, or ``mxl_mta`` in a trace line."""
    if bounce.message.get("X-MX-Bounce") is not None or bounce.message.get("X-MXL-NoteHash") is not None:
        return True
    if bounce.header("Message-ID").lstrip("<").startswith("mxl~"):
        return True
    traces = [str(v) for v in bounce.message.get_all("Received") or []]
    traces += [bounce.original[:4000], bounce.body]
    return any(_STAMP.search(value) for value in traces)


def parse(bounce: Bounce) -> list[Finding] | None:
    start = _FAILED.search(bounce.body) or _DELAYED.search(bounce.body)
    if start is None or not _stamped(bounce):
        return None
    action = "failed" if _FAILED.fullmatch(start.group(0)) else "delayed"
    findings: list[Finding] = []
    for line in bounce.body[start.end() :].split("\n"):
        if _STOP.match(line):
            break
        if not line.strip():
            continue
        entry = _ENTRY.match(line)
        if entry and line.startswith((" ", "\t", "<")) and not (findings and line.strip().startswith("<") and not entry.group(2)):
            findings.append(Finding(recipient=entry.group(1), action=action, diagnostic=entry.group(2).strip()))
        elif findings:
            findings[-1].diagnostic = f"{findings[-1].diagnostic} {line.strip()}".strip()
    return findings or None
