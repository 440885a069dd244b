"""Pull the codes and the words out of an SMTP reply as people actually paste it.

Replies arrive bare (``550 5.7.1 Unable to relay``), multi-line with continuation
prefixes (``550-5.7.26 ...``), wrapped in a DSN's ``Diagnostic-Code: smtp;``, or
inside an MTA's sentence (``host mx.example.com said: 550 ...``). This module
turns any of them into one normalised line plus its codes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_CONTINUATION = re.compile(r"^\s*([245]\d\d)(?:[ -]|$)\s*(?:#?([245]\.\d{1,3}\.\d{1,3})(?![.\d])\s*)?(.*)$")
_DSN_PREFIX = re.compile(r"^\s*(?:diagnostic-code\s*:\s*)?(?:smtp|x-postfix|x-unix|x-local|mailer|x-exim)\s*;\s*", re.IGNORECASE)
_EMBEDDED_CODE = re.compile(r"(?:^|[\s:;(\[<'\"#=])([245][0-5]\d)(?=[ -][^\s.]|[ -]?$|-)", re.MULTILINE)
_ENHANCED = re.compile(r"(?<![\w.])#?([245])\.(\d{1,3})\.(\d{1,3})(?![.\d]\d|\d)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """A reply reduced to what diagnosis needs."""

    basic_code: int | None
    enhanced_code: str | None
    text: str
    """The whole reply on one line: continuation prefixes removed, whitespace collapsed."""

    @property
    def reply_class(self) -> int | None:
        """2, 4 or 5: success, temporary or permanent, from whichever code is present."""
        if self.basic_code is not None:
            return self.basic_code // 100
        if self.enhanced_code is not None:
            return int(self.enhanced_code[0])
        return None


@functools.lru_cache(maxsize=512)
def _continuation_marker(basic: int, enhanced: str | None) -> re.Pattern[str]:
    codes = re.escape(str(basic))
    if enhanced:
        detail = re.escape(enhanced)
        return re.compile(rf"(?<=\s){codes}-(?:#?{detail}\s+)?|(?<=\s){codes} #?{detail}(?:\s+|$)")
    return re.compile(rf"(?<=\s){codes}-")


def _strip_inline_continuations(body: str, basic: int, enhanced: str | None, *, keep_first: bool) -> str:
    """Drop ``550-5.7.26`` markers left inside text when a multi-line reply was unfolded onto one line.

    DSNs often carry ``smtp; 550-5.7.26 first part 550-5.7.26 second part``: the
    repeated codes split phrases that patterns and readers expect in one piece.
    """
    code = str(basic)
    if f"{code}-" not in body and (enhanced is None or f"{code} " not in body):
        return body
    marker = _continuation_marker(basic, enhanced)
    hits = list(marker.finditer(body))
    if keep_first:  # the code was found inside the text: its first occurrence is the reply itself
        hits = hits[1:]
    for hit in reversed(hits):
        body = body[: hit.start()] + body[hit.end() :]
    return _SPACES.sub(" ", body).strip()


def parse_reply(raw: str) -> ParsedReply:
    """Find the reply code, the enhanced status code and the text of a reply."""
    lines = [_DSN_PREFIX.sub("", line, count=1) if ";" in line else line for line in raw.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line.strip()]
    basic: int | None = None
    enhanced: str | None = None
    parts: list[str] = []
    for line in lines:
        found = _CONTINUATION.match(line)
        if found:
            if basic is None:
                basic = int(found.group(1))
            if enhanced is None and found.group(2):
                enhanced = found.group(2)
            parts.append(found.group(3))
        else:
            parts.append(line)
    body = _SPACES.sub(" ", " ".join(parts)).strip()
    code_at_line_start = basic is not None
    if basic is None:
        embedded = _EMBEDDED_CODE.search(body)
        if embedded:
            basic = int(embedded.group(1))
    if enhanced is None:
        found_enhanced = _ENHANCED.search(body)
        if found_enhanced:
            enhanced = ".".join(found_enhanced.groups())
    if enhanced is not None and basic is not None and enhanced[0] != str(basic)[0] and basic // 100 in (4, 5):
        # A 4xx reply carrying a 5.x.x code (or the reverse) is a server bug; the basic code decides.
        enhanced = f"{basic // 100}{enhanced[1:]}"
    if basic is not None:
        body = _strip_inline_continuations(body, basic, enhanced, keep_first=not code_at_line_start)
    head = " ".join(str(code) for code in (basic, enhanced) if code is not None)
    text = f"{head} {body}".strip() if head and not body.startswith(head) else body
    return ParsedReply(basic, enhanced, text)
