"""Who runs the server that sent a reply.

A reply's wording rarely names its sender outright, but the host it came from
and a few tell-tale markers (Google's ``gsmtp`` trailer, Yahoo's ``[TSS04]``,
Microsoft's ``protection.outlook.com`` hosts) do. Knowing the provider lets
``explain`` pick the provider's own article over a generic one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from coldrelay.errors.prefilter import PatternIndex


@dataclass(frozen=True, slots=True)
class Provider:
    """A mailbox provider or filtering service that receives mail."""

    slug: str
    name: str
    host_suffixes: tuple[str, ...] = ()
    """MX or reporting host names that belong to this provider (suffix match)."""
    text_markers: tuple[str, ...] = ()
    """Regular expressions that, found in a reply, betray the provider."""
    compiled_markers: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(re.compile(marker, re.IGNORECASE) for marker in self.text_markers)
        object.__setattr__(self, "compiled_markers", compiled)


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "google",
        "Gmail / Google Workspace",
        ("google.com", "googlemail.com", "gmail.com", "googlegroups.com"),
        (r"\bgsmtp\b", r"support\.google\.com", r"\bgmail\b", r"google\.com"),
    ),
    Provider(
        "microsoft",
        "Microsoft 365 / Exchange Online / Outlook.com",
        ("outlook.com", "hotmail.com", "live.com", "msn.com", "office365.com", "microsoft.com", "outlook.office365.com"),
        (
            r"protection\.outlook\.com",
            r"\bS3150\b",
            r"\b(?:RP|SC|OU|DY)-00\d\b",
            r"\bAS\(\d{3,}\)",
            r"outlook\.com",
            r"hotmail\.com",
            r"\b5\.7\.(?:6[0-4]\d|70[0-9]|750|708|5\d\d)\b",
            r"\bprod\.outlook\.com\b",
            r"aka\.ms/",
            r"\bsender\.?support\b",
            r"\bExchange Online\b",
            r"\[[A-Z0-9]{4,}\.(?:[a-z]{3}prd\d+|namprd\d+|eurprd\d+)\.prod\.outlook\.com\]",
        ),
    ),
    Provider(
        "yahoo",
        "Yahoo / AOL",
        ("yahoo.com", "yahoodns.net", "aol.com", "yahoo.co.jp", "ymail.com", "rocketmail.com"),
        (
            r"\[TS\d\d\]",
            r"\[TSS\d\d\]",
            r"\bTSS\d\d\b",
            r"\[PH\d\d\]",
            r"\[BL\d\d\]",
            r"\byahoo\b",
            r"\baol\b",
            r"\bsenders\.yahooinc\.com\b",
            r"\bpostmaster\.yahooinc\.com\b",
        ),
    ),
    Provider(
        "apple",
        "Apple iCloud Mail",
        ("icloud.com", "me.com", "mac.com", "apple.com"),
        (r"\bicloud\b", r"support\.apple\.com", r"\bHM\d{2}\b"),
    ),
    Provider("zoho", "Zoho Mail", ("zoho.com", "zohomail.com", "zoho.eu", "zoho.in"), (r"\bzoho\b",)),
    Provider("proton", "Proton Mail", ("protonmail.ch", "proton.me", "protonmail.com"), (r"\bproton(?:mail)?\b",)),
    Provider(
        "gmx",
        "GMX / WEB.DE",
        ("gmx.net", "gmx.de", "gmx.com", "web.de"),
        (r"\bgmx\b", r"\bweb\.de\b", r"\bmxgmx\b"),
    ),
    Provider(
        "ionos",
        "IONOS (1&1)",
        ("ionos.com", "ionos.de", "1and1.com", "kundenserver.de", "perfora.net"),
        (r"\bionos\b", r"\bkundenserver\.de\b", r"\bperfora\.net\b", r"\b1and1\b", r"\b1&1\b"),
    ),
    Provider("comcast", "Comcast (Xfinity)", ("comcast.net", "xfinity.com"), (r"\bcomcast\b", r"\b(?:RL|BL)0000\d\d\b")),
    Provider("cox", "Cox", ("cox.net",), (r"\bcox\.net\b", r"\bAUP#(?-i:[A-Z]{2,})\b", r"\bcox\b")),
    Provider(
        "att",
        "AT&T",
        ("att.net", "sbcglobal.net", "bellsouth.net", "prodigy.net"),
        (r"\batt\.net\b", r"\b(?:flp[dh]|alph)\d+\b", r"\bAT&T\b"),
    ),
    Provider("mimecast", "Mimecast", ("mimecast.com", "mimecast-offshore.com"), (r"\bmimecast\b",)),
    Provider(
        "proofpoint",
        "Proofpoint",
        ("pphosted.com", "ppe-hosted.com", "proofpoint.com"),
        (r"\bproofpoint\b", r"\bpphosted\b", r"\bppe-hosted\b"),
    ),
    Provider(
        "barracuda",
        "Barracuda Email Security",
        ("barracudanetworks.com", "ess.barracudanetworks.com", "barracuda.com"),
        (r"\bbarracuda\b",),
    ),
    Provider(
        "cisco",
        "Cisco Secure Email (IronPort)",
        ("iphmx.com", "ironport.com", "cisco.com"),
        (r"\biphmx\b", r"\bironport\b", r"\bsenderbase\b", r"\btalos\b"),
    ),
    Provider("yandex", "Yandex Mail", ("yandex.ru", "yandex.net", "yandex.com"), (r"\byandex\b",)),
    Provider("mailru", "Mail.ru", ("mail.ru",), (r"\bmail\.ru\b",)),
    Provider("fastmail", "Fastmail", ("fastmail.com", "messagingengine.com"), (r"\bfastmail\b", r"\bmessagingengine\b")),
)

PROVIDER_BY_SLUG: dict[str, Provider] = {provider.slug: provider for provider in PROVIDERS}


_PROVIDER_BY_HOST_SUFFIX: dict[str, str] = {suffix: provider.slug for provider in PROVIDERS for suffix in provider.host_suffixes}


def provider_from_host(host: str | None) -> str | None:
    """Name the provider that owns ``host`` (an MX or reporting host), if any.

    The longest matching suffix wins, so ``outlook.office365.com`` beats a
    shorter suffix another provider might claim.
    """
    if not host:
        return None
    labels = host.strip().rstrip(".").lower().split(".")
    for start in range(len(labels)):
        found = _PROVIDER_BY_HOST_SUFFIX.get(".".join(labels[start:]))
        if found is not None:
            return found
    return None


_MARKER_INDEX = PatternIndex(
    (index, pattern) for index, provider in enumerate(PROVIDERS) for pattern in provider.compiled_markers
)


def provider_from_text(text: str) -> str | None:
    """Name the provider whose markers appear in a reply's text, if exactly one does.

    A reply that names two providers (a forwarder quoting another's reply)
    names none. Markers are prefiltered by the words they need, like patterns.
    """
    found = {owner for owner, pattern in _MARKER_INDEX.candidates(text) if pattern.search(text)}
    return PROVIDERS[found.pop()].slug if len(found) == 1 else None
