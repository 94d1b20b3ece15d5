"""certctl's generic API rate limiter: one token bucket per client IP.

Same arithmetic as certctl's middleware: refill ``rate`` tokens per second up to ``burst``, a
request costs one token, and the bucket is keyed by the peer address (no X-Forwarded-For).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    last_refill: float

    def allow(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last_refill) * self.rate)
        self.last_refill = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class KeyedRateLimiter:
    """Buckets per key; idle buckets are dropped after ``ttl`` seconds."""

    rate: float = 50.0
    burst: int = 100
    ttl: float = 3600.0
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _last_sweep: float = field(default_factory=time.monotonic)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.rate, float(self.burst), float(self.burst), now)
        if now - self._last_sweep > 60:
            self._sweep(now)
        return bucket.allow(now)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for key in [k for k, b in self.buckets.items() if now - b.last_refill > self.ttl]:
            del self.buckets[key]
