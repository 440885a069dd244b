"""An unnamed gateway's "There was an error sending your mail" notice.

One sentence per failure group, with the command and the server's reply in it::

    We had trouble delivering your message. Full details follow:
    ...
    The following recipients returned permanent errors: a@example.org, b@example.org.
    Reason: SMTP Server <192.0.2.1> refused to accept your message (DATA), with the
    following error message: [554 5.4.6 Hop count exceeded - possible mail loop]
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "x6"
PRIORITY = 35
# Skipped by core.py unless a marker occurs: parse() requires this sentence.
MARKERS = ("we had trouble delivering your message. full details follow:",)

_INTRO = re.compile(r"^We had trouble delivering your message\. Full details follow:", re.IGNORECASE | re.MULTILINE)
_FAILURE = re.compile(
    r"The following recipients returned (?P<kind>permanent|temporary|transient) errors:\s*(?P<recipients>.*?)\.\s+"
    r"Reason:\s*(?P<reason>.*?)(?=\n\s*\n|The following recipients returned|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_REFUSAL = re.compile(
    r"SMTP Server <(?P<host>[^>]*)> refused to accept your message \((?P<command>[A-Z ]+)\),?"
    r"\s*with the following error message:\s*\[?(?P<reply>.*?)\]?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _INTRO.search(bounce.body):
        return None
    findings: list[Finding] = []
    for failure in _FAILURE.finditer(bounce.body):
        reason = " ".join(failure.group("reason").split())
        refusal = _REFUSAL.search(reason)
        for recipient in addresses_in(failure.group("recipients")):
            findings.append(
                Finding(
                    recipient=recipient,
                    action="failed" if failure.group("kind").lower() == "permanent" else "delayed",
                    diagnostic=refusal.group("reply") if refusal else reason,
                    remote_mta=refusal.group("host") if refusal else "",
                    smtp_command=refusal.group("command").strip().upper() if refusal else "",
                )
            )
    return findings or None
