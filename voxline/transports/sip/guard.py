"""Per-source bounds: INVITE floods, calls being set up, failed authentication.

Every table is keyed by source IP and capped in size (oldest entries go first), so a
spray of spoofed addresses costs a bounded amount of memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from .config import SipLimits


@dataclass
class _Bucket:
    tokens: float
    at: float


class SourceGuard:
    def __init__(self, limits: SipLimits, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limits = limits
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._pending: dict[str, int] = {}
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self.refused = 0  # INVITEs dropped by the rate or pending limit

    def _cap(self, table: OrderedDict) -> None:  # type: ignore[type-arg]
        while len(table) > self.limits.max_sources_tracked:
            table.popitem(last=False)

    def allow_invite(self, ip: str) -> bool:
        """A new INVITE from ``ip``: within its token bucket and pending cap?"""
        if self.blocked(ip) or self._pending.get(ip, 0) >= self.limits.max_pending_per_source:
            self.refused += 1
            return False
        now = self._clock()
        bucket = self._buckets.pop(ip, None) or _Bucket(float(self.limits.invite_burst), now)
        bucket.tokens = min(float(self.limits.invite_burst),
                            bucket.tokens + (now - bucket.at) * self.limits.invite_rate_per_sec)
        bucket.at = now
        self._buckets[ip] = bucket
        self._cap(self._buckets)
        if bucket.tokens < 1.0:
            self.refused += 1
            return False
        bucket.tokens -= 1.0
        return True

    def begin(self, ip: str) -> None:
        """A call from ``ip`` is being set up (until :meth:`end`)."""
        self._pending[ip] = self._pending.get(ip, 0) + 1

    def end(self, ip: str) -> None:
        left = self._pending.get(ip, 0) - 1
        if left > 0:
            self._pending[ip] = left
        else:
            self._pending.pop(ip, None)

    def auth_failed(self, ip: str) -> None:
        now = self._clock()
        times = [t for t in self._failures.pop(ip, []) if now - t < 60.0]
        times.append(now)
        self._failures[ip] = times[-(self.limits.auth_failures_per_minute + 1):]
        self._cap(self._failures)

    def blocked(self, ip: str) -> bool:
        """Too many failed authentications in the last minute: ignore the source."""
        times = self._failures.get(ip)
        if not times:
            return False
        now = self._clock()
        recent = [t for t in times if now - t < 60.0]
        if not recent:
            self._failures.pop(ip, None)
            return False
        return len(recent) > self.limits.auth_failures_per_minute
