"""MTA-STS as a sender applies it (RFC 8461 sections 3.3, 4 and 5): discover, fetch, cache, decide.

The parsing is ``coldrelay.dns.mtasts``'s (the domain check reads the same files); this module adds
what only a sender needs: which policies are usable, and a cache that keeps a policy for its
``max_age`` so a DNS or HTTPS attacker cannot switch it off by blocking the next fetch:

- the TXT record names the same ``id`` as the cached policy: the cached policy, no fetch;
- a new ``id``, or nothing cached: fetch; a fetch that fails or gives an unusable policy leaves
  the cached policy in force, and with nothing cached the domain is treated as having no policy
  (section 3.3: deliver as if MTA-STS were not there);
- no TXT record, a failed TXT lookup or several records: the cached policy while it is unexpired
  (section 3.3), else no policy.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from coldrelay.dns.mtasts import (
    MAX_AGE_LIMIT,
    MAX_POLICY_BYTES,
    POLICY_PATH,
    STS_MODES,
    PolicyFetcher,
    StsPolicy,
    is_sts_record,
    parse_policy,
    parse_sts_record,
    valid_mx_pattern,
)
from coldrelay.dns.resolver import Resolver

CACHE_SIZE = 10_000
"""Policies remembered at once; the least recently used goes first (a cold-email host reaches many domains)."""


@dataclass(frozen=True, slots=True)
class StsDecision:
    """A usable policy as the router applies it."""

    policy_id: str
    mode: str
    """``enforce``, ``testing`` or ``none``."""
    patterns: tuple[str, ...]
    expires: float
    """On the cache's clock (monotonic seconds)."""


def usable_policy(text: str) -> StsPolicy | None:
    """The policy when a sender may apply it: version STSv1, a known mode, a valid ``max_age``, and in
    enforce/testing mode at least one valid ``mx`` pattern (a policy naming no host would stop all mail).
    Invalid ``mx`` lines are left out rather than failing the whole policy."""
    policy = parse_policy(text)
    if policy.version != "STSv1" or policy.mode not in STS_MODES:
        return None
    if policy.max_age is None or policy.max_age > MAX_AGE_LIMIT:
        return None
    patterns = tuple(pattern.lower() for pattern in policy.mx if valid_mx_pattern(pattern))
    if policy.mode != "none" and not patterns:
        return None
    return StsPolicy(policy.version, policy.mode, policy.max_age, policy.max_age_text, patterns)


class StsPolicyCache:
    """Per-domain MTA-STS decisions, fetched at most once at a time per domain."""

    def __init__(self, resolver: Resolver, fetcher: PolicyFetcher, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._resolver = resolver
        self._fetcher = fetcher
        self._clock = clock
        self._cache: OrderedDict[str, StsDecision] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0
        """HTTPS fetches made (tests check that cached policies are not fetched again)."""

    def cached(self, domain: str) -> StsDecision | None:
        """The unexpired cached decision, if any (an expired one is forgotten)."""
        decision = self._cache.get(domain)
        if decision is None:
            return None
        if decision.expires <= self._clock():
            del self._cache[domain]
            return None
        self._cache.move_to_end(domain)
        return decision

    async def decision(self, domain: str) -> StsDecision | None:
        """The policy to apply to ``domain`` now (``None``: no MTA-STS); never raises."""
        txt = await self._resolver.lookup(f"_mta-sts.{domain}", "TXT")
        records = [record for record in txt.records if is_sts_record(record)] if txt.ok else []
        if len(records) != 1:
            return self.cached(domain)
        policy_id = parse_sts_record(records[0]).policy_id
        current = self.cached(domain)
        if policy_id is None or (current is not None and current.policy_id == policy_id):
            return current
        lock = self._locks.setdefault(domain, asyncio.Lock())
        async with lock:
            current = self.cached(domain)  # another delivery may have fetched it while we waited
            if current is not None and current.policy_id == policy_id:
                return current
            fetched = await self._fetch(domain, policy_id)
        if len(self._locks) > CACHE_SIZE:
            self._locks = {name: held for name, held in self._locks.items() if held.locked()}
        if fetched is None:
            return current
        self._cache[domain] = fetched
        self._cache.move_to_end(domain)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return fetched

    async def _fetch(self, domain: str, policy_id: str) -> StsDecision | None:
        self.fetches += 1
        url = f"https://mta-sts.{domain}{POLICY_PATH}"
        result = await self._fetcher.get(url, resolver=self._resolver, max_bytes=MAX_POLICY_BYTES)
        # Section 3.3: only a 200 answer counts, served as text/plain, never through a redirect.
        if not result.ok or result.status_code != 200 or result.media_type != "text/plain":
            return None
        try:
            text = result.body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        policy = usable_policy(text)
        if policy is None or policy.mode is None or policy.max_age is None:
            return None
        return StsDecision(policy_id, policy.mode, policy.mx, self._clock() + policy.max_age)


__all__ = ["StsDecision", "StsPolicyCache", "usable_policy"]
