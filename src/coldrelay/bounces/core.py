"""``parse(bytes)`` and ``parse_path(path)``: bounces in, records out, never an exception."""

from __future__ import annotations

import logging
import mailbox
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import ahocorasick

from coldrelay.bounces.classify import classify
from coldrelay.bounces.formats import FORMATS
from coldrelay.bounces.message import Bounce, decode_header, read_bounce
from coldrelay.bounces.record import BounceRecord

log = logging.getLogger(__name__)


# Skipping modules that cannot match. Most format modules only answer when the
# message holds some fixed text (a header name, a sentence, a sender domain),
# and trying all of them in turn, each with its own regexes, cost more than
# reading the message. A module's ``MARKERS`` lists such texts, lowercase ASCII,
# at least one of which its parse() needs in order to return anything. One
# Aho-Corasick pass over the bounce finds the markers present; a module whose
# markers are all absent is skipped, a module without MARKERS always runs. The
# order is unchanged, so the records are the same, only sooner.


def _marker_index(formats: tuple[ModuleType, ...]) -> tuple[ahocorasick.Automaton | None, tuple[int, ...]]:
    """An automaton from each marker to the bit mask of its modules, and each module's bit (0: always run it).

    A MARKERS that is not a non-empty tuple of non-empty ASCII strings is not
    trusted (exchange2007 has a regex of that name): that module always runs.
    """
    masks: dict[str, int] = {}
    bits: list[int] = []
    for index, module in enumerate(formats):
        markers = getattr(module, "MARKERS", None)
        if not (isinstance(markers, tuple) and markers and all(isinstance(m, str) and m and m.isascii() for m in markers)):
            bits.append(0)
            continue
        bits.append(1 << index)
        for marker in markers:
            masks[marker.lower()] = masks.get(marker.lower(), 0) | 1 << index
    if not masks:
        return None, tuple(bits)
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
    for marker, mask in masks.items():
        automaton.add_word(marker, mask)
    automaton.make_automaton()
    return automaton, tuple(bits)


_MARKERS, _MODULE_BITS = _marker_index(FORMATS)
# Characters a module reads as ASCII letters that lower() does not make ASCII: re.IGNORECASE matches "s" to the long
# s, "i" to the dotless and dotted I (which lower() turns into "i" plus a combining dot), "k" to the Kelvin sign, and
# upper() turns "ß" into "SS" and "ﬁ" into "FI". Folding them keeps a module from being skipped over such a text.
_FOLD = {char: char.upper().lower() for char in "\u00df\u0131\u0149\u017f\u01f0\u1e96\u1e97\u1e98\u1e99\u1e9a\u212a"}
_FOLD |= {char: char.upper().lower() for char in "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06"} | {"\u0130": "i"}
_FOLDABLE = re.compile(f"[{''.join(_FOLD)}]")


def _haystack(bounce: Bounce) -> str:
    """All the text a module may find its markers in, lowercased: each header's name, raw and decoded value, and texts.

    The parts are joined with spaces, as the modules that join texts (Received
    lines, delivery-status parts) do; a marker spanning two parts only adds a candidate.
    """
    items = bounce.message.items()
    headers = [f"{name} {value}" for name, value in items]
    decoded = [decode_header(value) for _name, value in items if "=?" in value]
    texts = [bounce.subject, bounce.sender, bounce.body, bounce.feedback_report, bounce.original, *bounce.delivery_status]
    text = " ".join([*headers, *decoded, *texts])
    if not text.isascii():
        text = _FOLDABLE.sub(lambda found: _FOLD[found.group()], text)
    return text.lower()


def _candidates(bounce: Bounce) -> int:
    """The bits of the modules whose markers occur in the bounce (modules without markers have no bit)."""
    found = 0
    if _MARKERS is not None:
        for _end, mask in _MARKERS.iter(_haystack(bounce)):
            found |= mask
    return found


def parse(data: bytes) -> list[BounceRecord]:
    """Every recipient a bounce (DSN, MTA notice, feedback report, auto-reply) reports.

    A message that is not a bounce gives an empty list. A format module that
    fails on odd input is skipped, not fatal: the next layout gets its turn.
    """
    return _parse(data, depth=0)


def _parse(data: bytes, depth: int) -> list[BounceRecord]:
    try:
        bounce = read_bounce(data)
    except Exception:
        log.debug("unreadable message", exc_info=True)
        return []
    records: list[BounceRecord] = []
    try:
        candidates = _candidates(bounce)
    except Exception:  # an undecodable header, say: then every module gets its turn, as before
        log.debug("marker search failed", exc_info=True)
        candidates = -1
    for module, bit in zip(FORMATS, _MODULE_BITS, strict=True):
        if bit and not candidates & bit:
            continue  # none of the module's markers occurs: its parse() would return nothing
        try:
            findings = module.parse(bounce)
        except Exception:
            log.debug("format %s failed", module.NAME, exc_info=True)
            continue
        if findings:
            for finding in findings:
                try:
                    records.append(classify(finding, bounce, module.NAME))
                except Exception:
                    log.debug("classifying a %s finding failed", module.NAME, exc_info=True)
            if records:
                break
    if depth == 0 and (not records or all(r.mta == "fallback" for r in records)):
        # A filtering gateway may forward the real bounce as an attachment: read that instead.
        for inner in bounce.attached:
            wrapped = _parse(inner, depth=1)
            if wrapped and any(r.mta != "fallback" for r in wrapped):
                return wrapped
    return records


def clear_caches() -> None:
    """Forget every memoised header, address and reply: for benchmarks that must not flatter repeats."""
    from coldrelay.bounces.addresses import clean_address
    from coldrelay.bounces.message import _headers_of, decode_header
    from coldrelay.errors.explain import _cached

    for cached in (clean_address, decode_header, _headers_of, _cached):
        cached.cache_clear()


def _messages_in_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        box = mailbox.mbox(str(path), create=False)
        try:
            for key in box.iterkeys():
                yield box.get_bytes(key)
        finally:
            box.close()
    else:
        yield path.read_bytes()


def iter_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(source name, raw message) for an .eml file, an mbox, a Maildir or a directory tree."""
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            try:
                for index, data in enumerate(_messages_in_file(child)):
                    yield (f"{child}#{index + 1}" if index else str(child)), data
            except OSError as exc:
                log.warning("cannot read %s: %s", child, exc)
        return
    for index, data in enumerate(_messages_in_file(path)):
        yield (f"{path}#{index + 1}" if index else str(path)), data


def parse_path(path: str | Path) -> Iterator[BounceRecord]:
    """Records from every message under ``path`` (file, mbox, Maildir or tree), in file order."""
    for _source, data in iter_messages(Path(path)):
        yield from parse(data)
