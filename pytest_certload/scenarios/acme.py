"""ACME surface: directory -> HEAD new-nonce -> renewal-info (k6/acme_burst.js, k6/acme_flow.js).

The two original scripts walk the same three steps but differ, and each builder here keeps its
script's behaviour, metric names and check names:

- ``acme_burst`` (scenario ``acme_burst``): trends ``acme_directory_duration``,
  ``acme_new_nonce_duration``, ``acme_renewal_info_duration``; a 429 at any step ends the iteration
  (counted in ``acme_rate_limited_count``, RFC 7807 shape in ``acme_rate_limit_shape_ok``).
- ``acme_flow`` (acme_flow.js's scenario ``acme_directory_and_nonce``): trends
  ``directory_duration``, ``new_nonce_duration``, ``renewal_info_duration``; renewal-info is asked
  whatever new-nonce answered, then 1 s of think time.

Fixes over the original scripts: requests carry the Bearer key that certctl's current routing
requires on /acme/* (without it: 401); the ``prof-test`` profile is seeded; 4xx answers (429 and
renewal-info's 400/404) are expected outcomes, so ``http_req_failed`` measures 5xx and connection
errors only — the 5xx guard really evaluates; 429s are classified by shape: RFC 7807
``rateLimited`` problem documents vs certctl's plain-text generic limiter.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from pytest_certload.scenarios.common import ACME_PROFILE, auth_headers, not_server_error
from pytest_certload.stack.model import Stack

BURST_TRENDS = {
    "directory": "acme_directory_duration",
    "new_nonce": "acme_new_nonce_duration",
    "renewal_info": "acme_renewal_info_duration",
}
FLOW_TRENDS = {
    "directory": "directory_duration",
    "new_nonce": "new_nonce_duration",
    "renewal_info": "renewal_info_duration",
}
FLOW_SCENARIO = "acme_directory_and_nonce"  # acme_flow.js's scenario name
SYNTHETIC_CERT_ID = "aaaa.bbbb"  # valid base64url parts: certctl looks it up and answers 404
RENEWAL_INFO_CHECK = "renewal-info 4xx for synthetic cert-id"


def classify_429(headers: dict[str, str], body: bytes) -> str:
    """'rfc7807' for an ACME rateLimited problem document, 'generic' for certctl's plain-text limiter."""
    ctype = headers.get("content-type", "")
    if "application/problem+json" in ctype:
        try:
            if str(json.loads(body).get("type", "")).startswith("urn:ietf:params:acme:error:rateLimited"):
                return "rfc7807"
        except ValueError:
            pass
        return "other"
    if ctype.startswith("text/plain") and headers.get("retry-after") == "1":
        return "generic"
    return "other"


def directory_url_for(stack: Stack, profile: str = ACME_PROFILE) -> str:
    """The original's default ``CERTCTL_ACME_DIRECTORY``, on this stack."""
    return f"{stack.certctl_url}/acme/profile/{profile}/directory"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _headers_for(stack: Stack, directory_url: str) -> dict[str, str]:
    """The admin key goes only to the stack's own origin: a directory elsewhere gets no token."""
    if _origin(directory_url) == _origin(stack.certctl_url):
        return auth_headers(stack)
    return {"Accept": "application/json"}


class _Client:
    """One ACME client's requests: timed into the script's trends, 429s classified."""

    def __init__(self, headers: dict[str, str], trends: dict[str, str]) -> None:
        self.headers = headers
        self.trends = trends

    async def step(self, ctx, step_name: str, method: str, url: str):
        resp = await ctx.request(
            method, url, headers=self.headers, tags={"step": step_name}, expected=not_server_error
        )
        ctx.trend(self.trends[step_name], resp.duration_ns)
        if resp.status == 429:
            shape = classify_429(resp.headers, resp.body)
            ctx.counter("acme_rate_limited_count", tags={"step": step_name, "shape": shape})
            if shape == "rfc7807":
                ctx.counter("acme_rate_limit_shape_ok")
        return resp


def _directory(ctx, resp) -> dict | None:
    try:
        directory = json.loads(resp.body)
    except ValueError:
        directory = None
    if not isinstance(directory, dict):
        ctx.counter("acme_bad_directory")
        return None
    return directory


async def _fetch_directory(client: _Client, ctx, url: str) -> dict | None:
    """Both scripts' first step: GET the directory, check it, parse it (None: stop this round)."""
    resp = await client.step(ctx, "directory", "GET", url)
    ctx.check("directory 200", resp.status == 200)
    if resp.status != 200:
        return None
    return _directory(ctx, resp)


def acme_burst(stack: Stack, directory_url: str | None = None):
    """acme_burst.js: 200 closed-loop clients, no think time; a 429 ends the client's round."""
    url = directory_url or directory_url_for(stack)
    client = _Client(_headers_for(stack, url), BURST_TRENDS)

    async def iteration(ctx) -> None:
        directory = await _fetch_directory(client, ctx, url)
        if directory is None:
            return
        if directory.get("newNonce"):
            resp = await client.step(ctx, "new_nonce", "HEAD", directory["newNonce"])
            if resp.status == 429:
                return
            ctx.check("new-nonce 200", resp.status == 200)
            ctx.check("replay-nonce header present", bool(resp.headers.get("replay-nonce")))
        if directory.get("renewalInfo"):
            ari = f"{directory['renewalInfo'].rstrip('/')}/{SYNTHETIC_CERT_ID}"
            resp = await client.step(ctx, "renewal_info", "GET", ari)
            if resp.status == 429:
                return
            ctx.check(RENEWAL_INFO_CHECK, resp.status in (400, 404))

    return iteration


def acme_flow(stack: Stack, directory_url: str | None = None, pause_s: float = 1.0):
    """acme_flow.js: directory, new-nonce, renewal-info, then ``pause_s`` (1 s) of think time."""
    url = directory_url or directory_url_for(stack)
    client = _Client(_headers_for(stack, url), FLOW_TRENDS)

    async def iteration(ctx) -> None:
        directory = await _fetch_directory(client, ctx, url)
        if directory is None:
            return
        if directory.get("newNonce"):
            resp = await client.step(ctx, "new_nonce", "HEAD", directory["newNonce"])
            ctx.check(
                "new-nonce 200 + Replay-Nonce", resp.status == 200 and bool(resp.headers.get("replay-nonce"))
            )
        if directory.get("renewalInfo"):
            ari = f"{directory['renewalInfo'].rstrip('/')}/{SYNTHETIC_CERT_ID}"
            resp = await client.step(ctx, "renewal_info", "GET", ari)
            ctx.check(RENEWAL_INFO_CHECK, resp.status in (400, 404))
        if pause_s:
            await ctx.sleep(pause_s)

    return iteration
