"""``parse(bytes)`` and ``parse_path(path)``: bounces in, records out, never an exception."""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Iterator
from pathlib import Path

from coldrelay.bounces.classify import classify
from coldrelay.bounces.formats import FORMATS
from coldrelay.bounces.message import read_bounce
from coldrelay.bounces.record import BounceRecord

log = logging.getLogger(__name__)


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
    for module in FORMATS:
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
