"""Exchange Online (Office 365, Outlook.com on Exchange): "Undeliverable:" non-delivery reports.

The layouts are Exchange 2013+'s (read by ``exchange2007``) plus a newer one
with "Original Message Details", "Error Details: Reported error: ..." and
"Message Hops". What tells Exchange Online from an Exchange server on premises
is its own headers (``X-MS-Exchange-CrossTenant-*``, ``X-MS-Office365-*``,
``X-Forefront-*``) and the hosted Exchange names in "Generating server:".
"""

from __future__ import annotations

import re

from coldrelay.bounces.formats.exchange2007 import is_exchange_ndr, ndr_findings
from coldrelay.bounces.message import Bounce
from coldrelay.bounces.record import Finding

NAME = "office365"
PRIORITY = 25
# Skipped by core.py unless a marker occurs: _is_online, which parse() requires, needs one of its headers or texts.
MARKERS = (
    "x-ms-exchange-crosstenant-originalarrivaltime",
    "x-ms-exchange-crosstenant-fromentityheader",
    "x-ms-exchange-crosstenant-id",
    "x-ms-office365-filtering-correlation-id",
    "x-forefront-prvs",
    "x-ms-exchange-transport-crosstenantheadersstamped",
    "x-originatororg",
    ".prod.outlook.com",
    ".protection.outlook.com",
    ".prod.exchangelabs.com",
    "office 365",
    "exchange online",
    "original message details",
    "error details",
    "message hops",
)

_ONLINE_HEADERS = (
    "X-MS-Exchange-CrossTenant-OriginalArrivalTime",
    "X-MS-Exchange-CrossTenant-FromEntityHeader",
    "X-MS-Exchange-CrossTenant-Id",
    "X-MS-Office365-Filtering-Correlation-Id",
    "X-Forefront-PRVS",
    "X-MS-Exchange-Transport-CrossTenantHeadersStamped",
    "X-OriginatorOrg",
)
_ONLINE_TEXT = re.compile(
    r"\.(?:prod|protection)\.outlook\.com\b|\.prod\.exchangelabs\.com\b|\bOffice 365\b|\bExchange Online\b"
    r"|^\s*(?:Original Message Details|Error Details|Message Hops)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def _is_online(bounce: Bounce) -> bool:
    if any(bounce.message.get(name) is not None for name in _ONLINE_HEADERS):
        return True
    reporting = " ".join(bounce.delivery_status)[:2000]
    return bool(_ONLINE_TEXT.search(bounce.body) or _ONLINE_TEXT.search(reporting))


def parse(bounce: Bounce) -> list[Finding] | None:
    if not is_exchange_ndr(bounce) or not _is_online(bounce):
        return None
    return ndr_findings(bounce) or None
