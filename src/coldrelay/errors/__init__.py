"""The SMTP error knowledge base and the diagnoser every other package calls.

``explain(reply)`` turns any SMTP reply into a ``Diagnosis``; the entries behind
it are also the articles of the public reference site.
"""

from coldrelay.errors.entry import Entry, EntryError, FixStep, Question, Reference
from coldrelay.errors.explain import Diagnosis, diagnose, explain
from coldrelay.errors.knowledge_base import KnowledgeBase, default_knowledge_base, load_knowledge_base
from coldrelay.errors.providers import PROVIDER_BY_SLUG, PROVIDERS, Provider, provider_from_host
from coldrelay.errors.reasons import HARD_REASONS, REASON_INFO, WHO_ACTS_MEANING, Reason, WhoActs, is_hard_bounce
from coldrelay.errors.reply import ParsedReply, parse_reply
from coldrelay.errors.status_codes import describe_enhanced, reason_for_codes

__all__ = [
    "HARD_REASONS",
    "PROVIDERS",
    "PROVIDER_BY_SLUG",
    "REASON_INFO",
    "WHO_ACTS_MEANING",
    "Diagnosis",
    "Entry",
    "EntryError",
    "FixStep",
    "KnowledgeBase",
    "ParsedReply",
    "Provider",
    "Question",
    "Reason",
    "Reference",
    "WhoActs",
    "default_knowledge_base",
    "describe_enhanced",
    "diagnose",
    "explain",
    "is_hard_bounce",
    "load_knowledge_base",
    "parse_reply",
    "provider_from_host",
    "reason_for_codes",
]
