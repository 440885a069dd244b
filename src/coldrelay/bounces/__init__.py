"""Bounce-mail parsing: every DSN, MTA notice, feedback report or auto-reply into records.

``parse(bytes)`` reads one message, ``parse_path(path)`` a file, mbox, Maildir
or tree. One small module per layout lives in ``formats/``; the reason is
always decided by ``coldrelay.errors``.
"""

from coldrelay.bounces.core import iter_messages, parse, parse_path
from coldrelay.bounces.record import BounceRecord, Finding

__all__ = ["BounceRecord", "Finding", "iter_messages", "parse", "parse_path"]
