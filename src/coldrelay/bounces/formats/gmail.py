"""Gmail and Google Workspace notices from ``mailer-daemon@googlemail.com``.

Two layouts over the years, both from "Mail Delivery Subsystem":

- the old plain text: "Delivery to the following recipient failed permanently:"
  (or "has been delayed:"), the addresses indented below, then "Technical
  details of permanent failure:" and, when a server refused the message,
  "The error that the other server returned was: <reply>";
- the current one: a "** Address not found **" style heading, a sentence that
  names the recipient, then "The response (from the remote server) was:" and
  the reply, usually followed by a ``message/delivery-status`` part.

Google Groups notices come from the same address; ``googlegroups`` reads them.
"""

from __future__ import annotations

import re

from coldrelay.bounces.addresses import addresses_in, clean_address
from coldrelay.bounces.formats.rfc3464 import findings_from_dsn
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "gmail"
PRIORITY = 20
# Skipped by core.py unless a marker occurs: parse() requires one of these senders.
MARKERS = ("mailer-daemon@googlemail.com", "mailer-daemon@google.com", "mailer-daemon@gmail.com")

_SENDER = re.compile(r"^mailer-daemon@(?:googlemail|google|gmail)\.com$", re.IGNORECASE)
_GROUPS = re.compile(r"groups\.google\.com/support", re.IGNORECASE)
_OLD_LIST = re.compile(
    r"^Delivery to the following recipients? (failed permanently|has been delayed):[ \t]*\n"
    r"(?P<list>(?:[ \t]*\n|[ \t]+\S+@\S+[ \t]*\n)+)",
    re.IGNORECASE | re.MULTILINE,
)
_DETAILS = re.compile(r"^Technical details of (?:permanent|temporary) failure:[ \t]*\n", re.IGNORECASE | re.MULTILINE)
_OTHER_SERVER = re.compile(r"The error that the other server returned was:\s*", re.IGNORECASE)
_REMOTE = re.compile(r"\bby ([A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9])\.? \[[0-9A-Fa-f.:]+\]")
_RETRY = re.compile(r"^Message will be retried for .*$", re.IGNORECASE | re.MULTILINE)
_HEADING = re.compile(r"^\*\* (.+?) \*\*[ \t]*$", re.MULTILINE)
_RESPONSE = re.compile(r"^The response (?:from the remote server )?was:[ \t]*\n", re.IGNORECASE | re.MULTILINE)
_LEARN_MORE = re.compile(r"^(?:Learn more here:.*|\(Warning: This link will take you to a third-party site\))$", re.I | re.M)
_DELAY_HEADING = re.compile(r"delivery incomplete|delayed|temporary problem", re.IGNORECASE)


def _is_google(bounce: Bounce) -> bool:
    if not _SENDER.match(clean_address(bounce.sender) or ""):
        return False
    subject = bounce.subject.lower()
    return subject.startswith("delivery status notification") or bool(bounce.header("X-Failed-Recipients"))


def _flat(text: str) -> str:
    return " ".join(text.split())


def _old_layout(body: str) -> list[Finding]:
    found = _OLD_LIST.search(body)
    if not found:
        return []
    delayed = "delayed" in found.group(1).lower()
    rest = body[found.end() :]
    details = ""
    remote = ""
    marker = _DETAILS.search(rest)
    if marker:
        details = rest[marker.end() :]
        other = _OTHER_SERVER.search(details)
        host = _REMOTE.search(details[: other.start()] if other else details)
        remote = host.group(1) if host else ""
        if other:
            details = details[other.end() :]
    elif delayed:
        retry = _RETRY.search(rest)
        details = retry.group(0) if retry else ""
    diagnostic = _flat(details)
    return [
        Finding(
            recipient=address,
            action="delayed" if delayed else "failed",
            diagnostic=diagnostic,
            remote_mta=remote,
        )
        for address in addresses_in(found.group("list"))
    ]


def _new_layout_text(body: str) -> tuple[str, str, bool]:
    """(the notice's own sentence, the response, whether it is a delay) of the current layout."""
    heading = _HEADING.search(body)
    response = _RESPONSE.search(body)
    if not heading and not response:
        return "", "", False
    start = heading.end() if heading else 0
    end = response.start() if response else len(body)
    sentence = _flat(_LEARN_MORE.sub("", body[start:end]))
    reply = _flat(body[response.end() :]) if response else ""
    delayed = bool(heading and _DELAY_HEADING.search(heading.group(1)))
    return sentence, reply, delayed


def parse(bounce: Bounce) -> list[Finding] | None:
    if not _is_google(bounce) or _GROUPS.search(bounce.body):
        return None
    body = bounce.body
    old = _old_layout(body)
    if old:
        return old
    sentence, reply, delayed = _new_layout_text(body)
    own = " ".join(part for part in (reply, sentence) if part)
    findings = [f for text in bounce.delivery_status for f in findings_from_dsn(text) if f.recipient]
    for finding in findings:
        if not finding.diagnostic:
            finding.diagnostic = own
    if findings:
        return findings
    if not own:
        return None
    failed = [clean_address(a) for a in bounce.header("X-Failed-Recipients").split(",")]
    recipients = [a for a in failed if a] or [a for a in addresses_in(sentence) if a != clean_address(bounce.header("To"))]
    action = "delayed" if delayed else "failed"
    return [Finding(recipient=address, action=action, diagnostic=own) for address in recipients] or None
