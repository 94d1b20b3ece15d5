"""The checks in front of the router: certctl's rate-limit and Bearer-auth middleware.

They run before routing (app.py decides which chain a path takes), so a request they refuse
never reaches a handler and costs no database round trip, as on certctl. Their refusals are Go
``http.Error`` text whose content happens to be JSON, exactly as certctl's middleware writes them.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from pytest_certload.standin.config import StandinConfig
from pytest_certload.standin.ratelimit import KeyedRateLimiter
from pytest_certload.standin.responses import http_error


class ClientRateLimit:
    """certctl's RateLimiter middleware: a token bucket per peer address, or nothing when off.

    certctl gives each middleware chain its own limiter: the API and the probes never share buckets.
    """

    def __init__(self, config: StandinConfig) -> None:
        self.enabled = config.rate_limit
        self.limiter = KeyedRateLimiter(config.rate_limit_rps, config.rate_limit_burst)

    def refuse(self, request: web.Request) -> web.Response | None:
        """The 429 when the peer's bucket is empty, else None (and one token taken)."""
        if self.enabled and not self.limiter.allow(request.remote or ""):
            return http_error(429, '{"error":"Rate limit exceeded"}', {"Retry-After": "1"})
        return None


class BearerAuth:
    """certctl's auth middleware with one admin API key (no RBAC)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def refuse(self, request: web.Request) -> web.Response | None:
        """The 401 for a missing, malformed or wrong ``Authorization: Bearer`` header, else None."""
        header = request.headers.get("Authorization", "")
        if header == "":
            return http_error(
                401,
                '{"error":"Authorization header required"}',
                {"WWW-Authenticate": 'Bearer realm="certctl"'},
            )
        if len(header) < 8 or not header.startswith("Bearer "):
            return http_error(
                401, '{"error":"Invalid Authorization header format, expected: Bearer <token>"}'
            )
        if not hmac.compare_digest(header[7:].encode("utf-8", "surrogateescape"), self._token):
            return http_error(401, '{"error":"Invalid API key"}')
        return None
