"""``https://mta-sts.<domain>/.well-known/mta-sts.txt``: the MTA-STS policy of every hosted domain.

Senders fetch the policy from that exact host name (RFC 8461 3.3), so the route answers only when
the Host header is ``mta-sts.`` plus a domain hosted here; the main site's host and unknown domains
get 404. The text is ``provision.records.mta_sts_policy``, the same one the record plan hashes into
the ``_mta-sts`` id, so the published id always describes what is served.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session, sessionmaker

from coldrelay.db import InvalidName, get_domain
from coldrelay.provision.records import mta_sts_policy

__all__ = ["POLICY_PATH", "mta_sts_router"]

POLICY_PATH = "/.well-known/mta-sts.txt"
_PREFIX = "mta-sts."


def _policy_domain(host_header: str) -> str | None:
    """The domain part of ``mta-sts.<domain>[:port]``, or ``None`` for any other host."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return None  # an IPv6 literal is never a policy host
    host = host.rsplit(":", 1)[0] if ":" in host else host
    host = host.rstrip(".")
    if not host.startswith(_PREFIX) or len(host) == len(_PREFIX):
        return None
    return host[len(_PREFIX) :]


def mta_sts_router(session_factory: sessionmaker[Session]) -> APIRouter:
    """A router serving the policy file for the hosted domains found through ``session_factory``."""
    router = APIRouter()

    # A plain def: FastAPI runs it in its thread pool, so the blocking database lookup never stalls the event loop.
    @router.get(POLICY_PATH, response_class=PlainTextResponse, include_in_schema=False)
    def policy(request: Request) -> PlainTextResponse:
        domain = _policy_domain(request.headers.get("host", ""))
        if domain is None:
            raise HTTPException(status_code=404, detail="Not Found")
        try:
            with session_factory() as session:
                hosted = get_domain(session, domain)
                name = hosted.name if hosted is not None else None
        except InvalidName:
            name = None
        if name is None:
            raise HTTPException(status_code=404, detail="Not Found")
        # An hour of HTTP caching: senders cache by max_age anyway, and a changed policy also changes the TXT id.
        return PlainTextResponse(mta_sts_policy(name), headers={"Cache-Control": "max-age=3600"})

    return router
