"""``BounceRecord``: one recipient's fate, as a bounce email reported it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from coldrelay.errors import Reason


@dataclass(slots=True)
class Finding:
    """What a format module read about one recipient, before classification.

    Format modules fill what their layout carries and leave the rest empty;
    ``classify`` turns a finding into a ``BounceRecord`` through
    ``coldrelay.errors`` so that bounces and ``explain`` never disagree.
    """

    recipient: str = ""
    action: str = ""
    status: str = ""
    replycode: str = ""
    diagnostic: str = ""
    remote_mta: str = ""
    reporting_mta: str = ""
    smtp_command: str = ""
    reason: Reason | None = None
    """A reason the format itself states (a feedback report, an auto-reply); None lets the text decide."""
    feedback_type: str = ""
    timestamp: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BounceRecord:
    """One recipient reported by a bounce, DSN, feedback report or auto-reply."""

    recipient: str
    addresser: str
    action: str
    status: str
    replycode: str
    diagnostic: str
    remote_mta: str
    reporting_mta: str
    smtp_command: str
    mta: str
    provider: str | None
    reason: Reason
    permanent: bool
    hard_bounce: bool
    feedback_type: str
    timestamp: str
    message_id: str
    subject: str
    article: str | None
    """Slug of the knowledge-base article that explains the diagnostic, if one does."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, field for field."""
        data = asdict(self)
        data["reason"] = self.reason.value
        return data
