"""certctl's generic API rate limiter, measured rather than suffered.

With the limiter on (certctl's default: token bucket per client IP, 50/s, burst 100) the original
harness's API tier got ~40 % 429s and reported them as errors. Here a scenario offers a known rate
and checks the limiter's arithmetic and the shape of its answers (plain text, ``Retry-After: 1`` —
not RFC 7807).
"""

from __future__ import annotations

from pytest_certload.scenarios.acme import classify_429
from pytest_certload.scenarios.common import auth_headers
from pytest_certload.stack.model import Stack

CERTCTL_RPS = 50.0
CERTCTL_BURST = 100.0


def expected_rejections(
    offered_rate: float, seconds: float, rps: float = CERTCTL_RPS, burst: float = CERTCTL_BURST
) -> float:
    """429s a full token bucket gives a constant arrival rate over ``seconds``.

    The bucket starts with ``burst`` tokens and refills at ``rps``; arrivals above that are refused.
    """
    offered = offered_rate * seconds
    return max(0.0, offered - min(offered, burst + rps * seconds))


def limited_list(stack: Stack):
    """GET /api/v1/certificates?per_page=1; 200 and 429 are both expected outcomes."""
    url = f"{stack.certctl_url}/api/v1/certificates?per_page=1"
    headers = auth_headers(stack)

    async def iteration(ctx) -> None:
        resp = await ctx.request(
            "GET", url, headers=headers, tags={"step": "list"}, expected=lambda s: s in (200, 429)
        )
        if resp.status == 429:
            ctx.counter("rate_limited", tags={"shape": classify_429(resp.headers, resp.body)})

    return iteration
