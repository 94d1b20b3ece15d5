"""certctl's generic limiter (per client IP, 50/s, burst 100), on a second server with it enabled."""

from __future__ import annotations

import time


def test_burst_then_429(rate_limited_target):
    """Unauthenticated requests are the cheapest way through the limiter (it runs before auth)."""
    with rate_limited_target.client(auth=False) as anon, rate_limited_target.client() as api:
        start = time.monotonic()
        statuses = [anon.get("/api/v1/certificates").status_code for _ in range(160)]
        elapsed = time.monotonic() - start
        limited = statuses.count(429)
        assert statuses[:100].count(429) == 0, "the first 100 requests are the burst"
        # A bucket of 100 refilled at 50/s admits at most 100 + 50 * elapsed (+1 for timing slack).
        assert 160 - (100 + 50 * elapsed + 1) <= limited <= 60, (limited, elapsed)
        assert limited > 0, f"no 429 in 160 requests over {elapsed:.2f} s"
        r = anon.get("/api/v1/certificates")
        while r.status_code != 429:
            r = anon.get("/api/v1/certificates")
        assert r.headers["retry-after"] == "1"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.text == '{"error":"Rate limit exceeded"}\n'
        assert "x-request-id" in r.headers
        # Same IP, same bucket: right after a 429 the authenticated client is limited too (one token
        # refills every 20 ms, so look at a few back-to-back requests rather than exactly one).
        api.get("/health")  # open its connection on the no-auth chain's bucket first
        while anon.get("/api/v1/certificates").status_code != 429:
            pass
        assert 429 in [api.get("/api/v1/certificates?per_page=1").status_code for _ in range(3)]


def test_health_has_its_own_bucket(rate_limited_target):
    with rate_limited_target.client(auth=False) as anon:
        while anon.get("/api/v1/certificates").status_code != 429:
            pass
        assert anon.get("/health").status_code == 200


def test_limiter_runs_before_auth(rate_limited_target):
    with rate_limited_target.client(auth=False) as anon:
        statuses = {anon.get("/api/v1/certificates").status_code for _ in range(150)}
    assert statuses == {401, 429}
