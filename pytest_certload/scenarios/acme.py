"""ACME surface: directory -> HEAD new-nonce -> renewal-info (acme_burst.js, acme_flow.js).

Fixes over the original scripts: requests carry the Bearer key that certctl's current routing
requires on /acme/* (without it: 401); the ``prof-test`` profile is seeded; 4xx answers (429 and
renewal-info's 400/404) are expected outcomes counted apart, so ``http_req_failed`` measures
5xx and connection errors only — the 5xx guard really evaluates; 429s are classified by shape:
RFC 7807 ``rateLimited`` problem documents vs certctl's plain-text generic limiter.
"""

from __future__ import annotations

import json

from pytest_certload.scenarios.common import ACME_PROFILE, auth_headers, not_server_error
from pytest_certload.stack.model import Stack

STEP_TRENDS = {
    "directory": "acme_directory_duration",
    "new_nonce": "acme_new_nonce_duration",
    "renewal_info": "acme_renewal_info_duration",
}
SYNTHETIC_CERT_ID = "aaaa.bbbb"  # valid base64url parts: certctl looks it up and answers 404


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


def acme_iteration(stack: Stack, *, profile: str = ACME_PROFILE, pause_s: float = 0.0):
    """One ACME client's polling round; ``pause_s`` is acme_flow's think time (1 s)."""
    directory_url = f"{stack.certctl_url}/acme/profile/{profile}/directory"
    headers = auth_headers(stack)

    async def step(ctx, step_name: str, method: str, url: str):
        resp = await ctx.request(
            method, url, headers=headers, tags={"step": step_name}, expected=not_server_error
        )
        ctx.trend(STEP_TRENDS[step_name], resp.duration_ns)
        if resp.status == 429:
            shape = classify_429(resp.headers, resp.body)
            ctx.counter("acme_rate_limited_count", tags={"step": step_name, "shape": shape})
            if shape == "rfc7807":
                ctx.counter("acme_rate_limit_shape_ok")
        return resp

    async def iteration(ctx) -> None:
        resp = await step(ctx, "directory", "GET", directory_url)
        if resp.status != 200:
            return
        try:
            directory = json.loads(resp.body)
        except ValueError:
            ctx.counter("acme_bad_directory")
            return
        nonce_url = directory.get("newNonce")
        if nonce_url:
            resp = await step(ctx, "new_nonce", "HEAD", nonce_url)
            if resp.status == 200 and not resp.headers.get("replay-nonce"):
                ctx.counter("acme_nonce_missing")
        ari_url = directory.get("renewalInfo")
        if ari_url and resp.status != 429:
            await step(ctx, "renewal_info", "GET", f"{ari_url.rstrip('/')}/{SYNTHETIC_CERT_ID}")
        if pause_s:
            await ctx.sleep(pause_s)

    return iteration
