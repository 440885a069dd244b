"""``explain(reply) -> Diagnosis``: which provider said it, why, and what to do.

Every knowledge-base pattern that the reply's words allow is run; each matching
entry is scored on how well its codes and provider agree with the reply, and the
best one wins. When no pattern matches, the provider's own entry for the same
codes, then the generic entry for the codes, then the IANA registry speak.
A reply that matches nothing still gets the meaning of its codes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from coldrelay.errors.entry import Entry
from coldrelay.errors.knowledge_base import KnowledgeBase, default_knowledge_base
from coldrelay.errors.phrases import VAGUE_REASONS, reason_from_wording
from coldrelay.errors.providers import provider_from_host, provider_from_text
from coldrelay.errors.reasons import REASON_INFO, Reason, WhoActs, is_hard_bounce
from coldrelay.errors.reply import ParsedReply, parse_reply
from coldrelay.errors.status_codes import BASIC_CODES, describe_enhanced, reason_for_codes

_RECIPIENT_REASONS = {
    Reason.USERUNKNOWN,
    Reason.HOSTUNKNOWN,
    Reason.SUSPEND,
    Reason.HASMOVED,
    Reason.NOTACCEPT,
    Reason.MAILBOXFULL,
}
_RECEIVER_REASONS = {Reason.SYSTEMERROR, Reason.MAILERERROR, Reason.SYSTEMFULL}
_RETRY_REASONS = {Reason.ONHOLD, Reason.NETWORKERROR, Reason.SPEEDING, Reason.TOOMANYCONN}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """What a reply means for the sender, ready for a page, the API or the delivery log."""

    text: str
    basic_code: int | None
    enhanced_code: str | None
    provider: str | None
    reason: Reason
    permanent: bool
    hard_bounce: bool
    who_acts: WhoActs
    confidence: float
    meaning: str
    """The standard meaning of the codes (RFC 5321 and the IANA registry)."""
    entry: Entry | None
    matched_by: str
    """``pattern`` (the entry's wording matched), ``codes`` (chosen by codes alone) or ``none``."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, for the API and ``--json``."""
        entry = None
        if self.entry is not None:
            entry = {
                "slug": self.entry.slug,
                "title": self.entry.title,
                "url": self.entry.url,
                "summary": self.entry.summary,
                "fix_steps": [{"title": s.title, "instructions": s.instructions} for s in self.entry.fix_steps],
            }
        return {
            "text": self.text,
            "basic_code": self.basic_code,
            "enhanced_code": self.enhanced_code,
            "provider": self.provider,
            "reason": self.reason.value,
            "reason_meaning": REASON_INFO[self.reason].meaning,
            "permanent": self.permanent,
            "hard_bounce": self.hard_bounce,
            "who_acts": self.who_acts.value,
            "confidence": round(self.confidence, 2),
            "meaning": self.meaning,
            "matched_by": self.matched_by,
            "entry": entry,
        }


def _code_score(entry: Entry, reply: ParsedReply) -> float:
    """How well the entry's codes agree with the reply's (negative when they clash)."""
    score = 0.0
    if reply.enhanced_code and entry.enhanced_code:
        if entry.enhanced_code == reply.enhanced_code:
            score += 30
        elif entry.enhanced_code[1:] == reply.enhanced_code[1:]:
            score += 15  # same subject.detail, other class: a provider's 4xx and 5xx twins
        elif entry.enhanced_code.split(".")[1] == reply.enhanced_code.split(".")[1]:
            score -= 5
        else:
            score -= 25
    if reply.basic_code and entry.basic_code:
        if entry.basic_code == reply.basic_code:
            score += 10
        elif entry.basic_code // 100 != reply.basic_code // 100:
            score -= 8
    return score


def _provider_score(entry: Entry, provider: str | None) -> float:
    if provider is None or entry.provider is None:
        return 0.0
    return 30.0 if entry.provider == provider else -45.0


def _best_entry(reply: ParsedReply, provider: str | None, kb: KnowledgeBase) -> tuple[Entry | None, str, float]:
    """The best-scoring entry, how it was found, and its score.

    Equal scores go to the more specific article (a provider's or a program's
    over a generic one), then to the first slug, so the answer never depends on
    the order candidates were found in.
    """
    best: tuple[float, bool, int] | None = None
    chosen: tuple[Entry, str] | None = None

    def consider(score: float, position: int, how: str) -> None:
        nonlocal best, chosen
        entry = kb.entries[position]
        rank = (score, not entry.is_generic, -position)
        if best is None or rank > best:
            best, chosen = rank, (entry, how)

    for position, pattern in kb.pattern_index.candidates(reply.text):
        found = pattern.search(reply.text)
        if found is not None:
            entry = kb.entries[position]
            score = 100 + min(len(found.group()), 60) / 2 + _code_score(entry, reply) + _provider_score(entry, provider)
            consider(score, position, "pattern")
    if provider is not None:
        own = [e for e in kb.with_codes(reply.basic_code, reply.enhanced_code) if e.provider == provider and e.enhanced_code]
        if len(own) == 1:  # several articles share these codes: only wording can choose between them
            consider(45 + _code_score(own[0], reply) + _provider_score(own[0], provider), kb.position[own[0].slug], "codes")
    generic = kb.generic_for(reply.basic_code, reply.enhanced_code)
    if generic is not None:
        consider(20 + _code_score(generic, reply), kb.position[generic.slug], "codes")
    if best is None or chosen is None:
        return None, "none", 0.0
    return chosen[0], chosen[1], best[0]


def _confidence(matched_by: str, score: float, reply: ParsedReply) -> float:
    if matched_by == "pattern":
        return max(0.5, min(0.99, 0.55 + score / 400))
    if matched_by == "codes":
        return 0.6 if score >= 60 else 0.4
    return 0.25 if reply.enhanced_code else 0.15 if reply.basic_code else 0.05


def _who_acts_for(reason: Reason, permanent: bool) -> WhoActs:
    if reason in _RECIPIENT_REASONS:
        return WhoActs.RECIPIENT
    if reason in _RECEIVER_REASONS:
        return WhoActs.RECEIVER
    if reason in _RETRY_REASONS or not permanent:
        return WhoActs.RETRY
    return WhoActs.SENDER


@functools.lru_cache(maxsize=1024)
def _meaning(basic_code: int | None, enhanced_code: str | None) -> str:
    parts = []
    if basic_code is not None:
        basic = BASIC_CODES.get(basic_code)
        parts.append(f"{basic_code}: {basic[0] if basic else 'non-standard reply code'}")
    if enhanced_code is not None:
        parts.append(f"{enhanced_code}: {describe_enhanced(enhanced_code) or 'unknown enhanced code'}")
    return "; ".join(parts) if parts else "The text carries no SMTP reply code."


def _reason_from_wording(
    reply: ParsedReply, reason: Reason, entry: Entry | None, kb: KnowledgeBase
) -> tuple[Reason, Entry | None, bool]:
    """When no article recognised the wording, let the wording (or a precise code) name the reason.

    An exact generic match on a precise enhanced code (``452 4.3.1``) outranks
    loose wording ("temporary system error"); otherwise the wording wins, and the
    article shown becomes the generic one about that reason.
    """
    worded = reason_from_wording(reply.text)
    exact_code = entry is not None and entry.enhanced_code is not None and entry.enhanced_code == reply.enhanced_code
    if worded is not None and exact_code and worded in VAGUE_REASONS:
        worded = None
    if worded is None and entry is not None and entry.enhanced_code is None and reply.enhanced_code:
        worded = reason_for_codes(reply.basic_code, reply.enhanced_code)
    if worded is None or worded is reason:
        return reason, entry, False
    return worded, kb.generic_for_reason(worded, reply.basic_code, reply.enhanced_code) or entry, True


def diagnose(text: str, *, remote_host: str | None = None, knowledge_base: KnowledgeBase | None = None) -> Diagnosis:
    """Explain a reply against a given knowledge base (no caching)."""
    kb = knowledge_base if knowledge_base is not None else default_knowledge_base()
    reply = parse_reply(text)
    provider = provider_from_host(remote_host) or provider_from_text(reply.text)
    entry, matched_by, score = _best_entry(reply, provider, kb)
    reply_class = reply.reply_class
    if entry is not None:
        reason = entry.reason
        permanent = entry.permanent
        entry_class = (entry.basic_code // 100) if entry.basic_code else None
        if reply_class == 4:
            permanent = False
        elif reply_class == 5 and entry_class == 4:
            permanent = True
        hard_bounce = is_hard_bounce(reason, permanent)
        who_acts = entry.who_acts
        if reply_class == 4 and who_acts is WhoActs.RECIPIENT and entry_class != 4:
            who_acts = WhoActs.RETRY
        provider = provider or entry.provider
    else:
        reason = reason_for_codes(reply.basic_code, reply.enhanced_code)
        permanent = reply_class == 5
        hard_bounce = is_hard_bounce(reason, permanent)
        who_acts = _who_acts_for(reason, permanent)
    if entry is None or (matched_by == "codes" and entry.is_generic):
        reason, entry, changed = _reason_from_wording(reply, reason, entry, kb)
        if changed:
            hard_bounce = is_hard_bounce(reason, permanent)
            who_acts = _who_acts_for(reason, permanent)
    if reply_class == 2:
        # A 2xx is an acceptance whatever its enhanced code says: Exchange Online queues with
        # "250 2.6.0 <id> Queued mail for delivery", and X.6.0 would otherwise read as a content error.
        reason, permanent, hard_bounce = Reason.DELIVERED, False, False
        who_acts = _who_acts_for(reason, permanent)
        entry = None
    return Diagnosis(
        text=reply.text,
        basic_code=reply.basic_code,
        enhanced_code=reply.enhanced_code,
        provider=provider,
        reason=reason,
        permanent=permanent,
        hard_bounce=hard_bounce,
        who_acts=who_acts,
        confidence=_confidence(matched_by, score, reply),
        meaning=_meaning(reply.basic_code, reply.enhanced_code),
        entry=entry,
        matched_by=matched_by,
    )


@functools.lru_cache(maxsize=8192)
def _cached(text: str, remote_host: str | None) -> Diagnosis:
    return diagnose(text, remote_host=remote_host)


def explain(text: str, *, remote_host: str | None = None) -> Diagnosis:
    """Diagnose an SMTP reply (bare, multi-line, or inside a DSN line) with the shipped knowledge base.

    ``remote_host`` is the server that sent the reply; it names the provider more
    reliably than the text. Results are cached: delivery logs repeat the same
    replies many times.
    """
    return _cached(text, remote_host.lower() if remote_host else None)
