"""certctl's generic limiter (per client IP, 50/s, burst 100), on a second server with it enabled."""

from __future__ import annotations

import time

import httpx

RATE, BURST = 50, 100
MAX_REQUESTS = 2000  # every loop below gives up after this many requests


def first_refusal(client: httpx.Client, path: str = "/api/v1/certificates") -> tuple[httpx.Response, int]:
    """Send requests until one is refused with 429; return it and how many were admitted before."""
    for admitted in range(MAX_REQUESTS):
        r = client.get(path)
        if r.status_code == 429:
            return r, admitted
    raise AssertionError(f"no 429 in {MAX_REQUESTS} requests to {path}")


def refill_bucket() -> None:
    # The bucket's refill *is* the behaviour under test: an empty bucket is full again after
    # BURST / RATE seconds, and there is no way to observe its level without spending tokens.
    time.sleep(BURST / RATE + 0.1)


def test_burst_then_429(rate_limited_target):
    """Unauthenticated requests are the cheapest way through the limiter (it runs before auth)."""
    with rate_limited_target.client(auth=False) as anon, rate_limited_target.client() as api:
        anon.get("/health")  # connect first: the handshake does not spend API tokens
        refill_bucket()
        start = time.monotonic()
        r, admitted = first_refusal(anon)
        elapsed = time.monotonic() - start
        # A full bucket admits BURST requests plus RATE per second of the burst's duration.
        assert BURST <= admitted <= BURST + RATE * elapsed + 1, (admitted, elapsed)
        assert r.headers["retry-after"] == "1"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.text == '{"error":"Rate limit exceeded"}\n'
        assert "x-request-id" in r.headers
        # Same IP, same bucket: right after a 429 the authenticated client is limited too (one token
        # refills every 20 ms, so look at a few back-to-back requests rather than exactly one).
        api.get("/health")
        first_refusal(anon)
        assert 429 in [api.get("/api/v1/certificates?per_page=1").status_code for _ in range(3)]


def test_limiter_runs_before_auth(rate_limited_target):
    """Without a token the answer is 401 while tokens last and 429 once they are gone."""
    with rate_limited_target.client(auth=False) as anon:
        first_refusal(anon)
        statuses = set()
        for _ in range(MAX_REQUESTS):
            statuses.add(anon.get("/api/v1/certificates").status_code)
            if 401 in statuses:  # a token refilled (one every 20 ms)
                break
    assert statuses <= {401, 429}
    assert 401 in statuses


def test_health_has_its_own_bucket(rate_limited_target):
    with rate_limited_target.client(auth=False) as anon:
        first_refusal(anon)
        assert anon.get("/health").status_code == 200
