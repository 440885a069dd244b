"""The reason a reply's wording gives when no article claims it.

Thousands of servers run home-grown or old software whose replies no article
will ever cover ("550 relay not permitted", "connect to mx...: Connection timed
out"). Their wording still says what happened. These rules read it, in priority
order: the first rule whose phrase occurs decides. Order matters where wordings
overlap: "Sender address rejected: Domain not found" is about the sender, not an
unknown recipient domain, so sender rules come before domain rules.
"""

from __future__ import annotations

import re

from coldrelay.errors.prefilter import PatternIndex
from coldrelay.errors.reasons import Reason
from coldrelay.errors.wording import extra_rules

_RULES: tuple[tuple[Reason, str], ...] = (
    (Reason.VIRUSDETECTED, r"\bvirus\b|\bmalware\b|\binfected\b|\beicar\b|\btrojan\b"),
    (Reason.NOTACCEPT, r"null mx|does not accept (?:any )?mail|doesn'?t receive e?mail|indicated no smtp service"),
    (Reason.NOTCOMPLIANTRFC, r"rfc ?5322|rfc ?2822|\brfc ?822|duplicate header|missing (?:required )?headers?"),
    (
        Reason.EXPIRED,
        r"retry timeout exceeded|message expired|delivery time expired|could not be delivered for \d+ days"
        r"|(?:cannot|could not) send message for (?:the )?(?:past )?\d+ (?:days|hours)|in the queue too long"
        r"|too long in (?:the )?queue|unable to deliver in \d+|giving up on|(?:message|delivery|time) (?:has )?expired",
    ),
    (
        Reason.NORELAYING,
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited|disallowed)|unable to relay"
        r"|not (?:permitted|allowed|configured) to relay|we do not relay|no relaying|allowed rcpthosts"
        r"|(?:not permitted to|cannot) relay|turn on smtp authentication",
    ),
    (
        Reason.REQUIREPTR,
        r"reverse (?:dns|lookup|hostname|address)|\bptr\b|\brdns\b|cannot find your (?:reverse )?hostname"
        r"|ip name lookup failed|hostname (?:lookup|verification) failed|without (?:a )?valid (?:ptr|reverse)",
    ),
    (
        Reason.REJECTED,
        r"sender (?:address )?(?:rejected|denied|refused|blocked|verify failed)|domain of sender address"
        r"|verification failed for <|sender domain (?:does not|must|is not)|invalid sender|valid sender domain"
        r"|sender (?:is )?not allowed|from domain (?:does not|is not)|sender denied",
    ),
    (
        Reason.AUTHFAILURE,
        r"\bspf\b|\bdkim\b|\bdmarc\b|unauthenticated (?:e?mail|message|sender)|does not designate|sender policy framework",
    ),
    (
        Reason.BLOCKED,
        r"block ?list|black ?list|blocked using|\bdnsbl\b|\brbl\b|spamhaus|spamcop|uceprotect|barracuda ?(?:central|reputation)"
        r"|(?<!not )listed (?:in|on|at) |open relay|\bno smtp service\b|not accepting connections|\brtr:bl\b"
        r"|client host (?:\[[^\]]*\] )?(?:rejected|blocked)"
        r"|\bip\b[^;]{0,40}?\b(?:is )?(?:blocked|banned|blacklisted|not allowed|denied)\b|banned sending ip"
        r"|(?:ip|network|host) (?:address )?(?:has been|is) (?:blocked|banned)|not allowed to send from",
    ),
    (Reason.BADREPUTATION, r"reputation|user complaints|unsolicited mail originating"),
    (
        Reason.SECURITYERROR,
        r"must issue a starttls|authentication (?:is )?required|authentication (?:failed|unsuccessful)|not authenticated"
        r"|credentials|\bpassword\b|must (?:first )?authenticate|encryption required|log ?in (?:first|via)",
    ),
    (
        Reason.FAILEDSTARTTLS,
        r"starttls|tls (?:is )?required|must support tls|tls (?:handshake|negotiation) (?:failed|error)|tls not available",
    ),
    (
        Reason.NETWORKERROR,
        r"host not found, try again|temporary (?:dns|lookup|name service) failure|try again later \(dns\)"
        r"|connection (?:timed out|refused|reset|lost|closed|expired)|timed out|lost connection|network (?:error|is unreachable)"
        r"|no route to host|could not connect|unable to connect|did not accept our requests to connect",
    ),
    (
        Reason.HOSTUNKNOWN,
        r"host (?:or domain name )?not found|domain (?:name )?not found|unrouteable|unroutable|\bnxdomain\b|no such domain"
        r"|domain (?:\S+ )?(?:does not|doesn'?t) exist|non-?existent (?:domain|hosts?)|unknown (?:host|domain)|name service error"
        r"|invalid domain|domain is not reachable|no mx (?:record|host)|mx records? point to non-existent",
    ),
    (
        Reason.USERUNKNOWN,
        r"user(?:name)? (?:unknown|not found|does not exist|doesn'?t exist)"
        r"|unknown (?:user|recipient|local ?part|mailbox|address)"
        r"|no such (?:user|mailbox|recipient|address|account)"
        r"|(?:mailbox|recipient|address|account|user) (?:does not|doesn'?t) exist"
        r"|invalid (?:recipient|mailbox|address)|not a valid (?:mailbox|recipient|user)|mailbox (?:not found|unavailable)"
        r"|addressee unknown|bad destination mailbox|recipient not found|no mailbox here|is unavailable: user not found"
        r"|(?:user|recipient|mailbox|account) (?:does )?not exists?\b",
    ),
    (
        Reason.SUSPEND,
        r"(?:mailbox|account|user|address) (?:is |has been )?(?:disabled|suspended|inactive|deactivated|frozen|locked)"
        r"|account (?:has )?expired|no longer (?:active|in use|valid)|recipient account is (?:blocked|locked)",
    ),
    (Reason.HASMOVED, r"has moved|no longer on (?:this )?server|user has moved|address has changed"),
    (
        Reason.MAILBOXFULL,
        r"mailbox (?:is )?full|over (?:the )?quota|quota exceeded|exceeded (?:the )?(?:storage|quota)|mailbox size limit"
        r"|disk quota|out of (?:storage|mailbox space)|insufficient (?:disk )?space (?:for|in) (?:user|mailbox)",
    ),
    (
        Reason.MESGTOOBIG,
        r"message (?:size|length) (?:exceeds|too)|(?:message|email|mail) (?:is )?too (?:big|large)|size limit"
        r"|exceeds? (?:the )?(?:maximum|max|size)|maximum (?:e?mail|message) size",
    ),
    (
        Reason.TOOMANYCONN,
        r"too many (?:connections|concurrent|sessions|open connections|simultaneous|recipients)|connection rate limit"
        r"|max(?:imum)? (?:number of )?connections",
    ),
    (
        Reason.SPEEDING,
        r"rate limit|\bdyn:t1\b|too (?:much|many) (?:mail|messages|e-?mails)|throttl"
        r"|frequency limited|exceeded (?:the )?permitted limits"
        r"|receiving mail (?:at a rate|too (?:quickly|fast))"
        r"|sending (?:rate|limit|quota)|too fast|per hour|daily (?:sending )?(?:quota|limit)",
    ),
    (Reason.SPAMDETECTED, r"\bspam\b|\bube\b|\bjunk\b|unsolicited|message content rejected|content rejected|bulk mail"),
    (
        Reason.NOTCOMPLIANTRFC,
        r"malformed|non-?compliant",
    ),
    (Reason.SYSTEMFULL, r"insufficient (?:system |disk )?(?:storage|space)|disk full|no space left|out of (?:disk|memory)"),
    (
        Reason.SYSTEMERROR,
        r"internal (?:server |system )?error|system (?:error|incorrectly configured)|local error|loops? back to myself"
        r"|mail loop|routing loop|hop count|configuration error|temporary (?:server|system) (?:error|failure|problem)"
        r"|service (?:is )?(?:currently|temporarily) unavailable",
    ),
    (Reason.ONHOLD, r"gr[ea]ylist"),
    (
        Reason.FILTERED,
        r"recipient preferences|not accepting (?:mail|messages) from|blocked by (?:the )?recipient|message filtered"
        r"|only accepts? mail from|not authorized to (?:send|post) to|delivery restricted",
    ),
    (Reason.POLICYVIOLATION, r"polic(?:y|ies)|prohibit|administrative|denied by|attachment|delivery not authorized|header error"),
    (
        Reason.SYNTAXERROR,
        r"syntax error|command (?:unrecognized|not recognized|not implemented)|bad sequence of commands|unrecognized command"
        r"|improper use of smtp command pipelining",
    ),
)


def _alternatives(rule: str) -> list[str]:
    """Split a rule at its top-level ``|`` so each alternative can be indexed on its own words."""
    parts: list[str] = []
    depth = 0
    in_class = False
    start = 0
    index = 0
    while index < len(rule):
        char = rule[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(rule[start:index])
            start = index + 1
        index += 1
    parts.append(rule[start:])
    return parts


def _ranked_rules() -> list[tuple[int, Reason, str]]:
    """(priority, reason, rule): the table above, plus the wording modules' rules at their reason's rank."""
    ranked = [(priority, reason, rule) for priority, (reason, rule) in enumerate(_RULES)]
    first_rank: dict[Reason, int] = {}
    for priority, reason, _rule in ranked:
        first_rank.setdefault(reason, priority)
    for reason, rule in extra_rules():
        ranked.append((first_rank.get(reason, len(_RULES)), reason, rule))
    return ranked


_RANKED = _ranked_rules()
_INDEX = PatternIndex(
    (number, re.compile(alternative, re.IGNORECASE))
    for number, (_priority, _reason, rule) in enumerate(_RANKED)
    for alternative in _alternatives(rule)
)

VAGUE_REASONS = frozenset({Reason.SYSTEMERROR, Reason.ONHOLD, Reason.POLICYVIOLATION, Reason.SYNTAXERROR, Reason.UNDEFINED})
"""Reasons a wording rule gives from loose words; an exact code says more than they do."""


def reason_from_wording(text: str) -> Reason | None:
    """The reason the text's wording states, or None when it states none we know.

    The earliest rule with a matching phrase wins; phrases are prefiltered by the
    words they need, so a reply runs only a few of them.
    """
    best: tuple[int, int] | None = None
    for number, pattern in _INDEX.candidates(text):
        rank = (_RANKED[number][0], number)
        if (best is None or rank < best) and pattern.search(text):
            best = rank
    return None if best is None else _RANKED[best[1]][1]
