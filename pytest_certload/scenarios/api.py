"""API tier: certificate creation and listing (k6.js ``issuance_acceptance``, ``list_certificates``)."""

from __future__ import annotations

import uuid

from pytest_certload.scenarios.common import (
    DEMO_ISSUER,
    DEMO_OWNER,
    DEMO_RENEWAL_POLICY,
    DEMO_TEAM,
    auth_headers,
    json_bytes,
)
from pytest_certload.stack.model import Stack


def issuance_acceptance(stack: Stack):
    """POST /api/v1/certificates with a globally unique name.

    certctl answers a duplicate name with 500, not 409, so names carry a UUID rather than the
    original's ``<VU>-<ITER>-<epoch-ms>`` (which collides across generator processes).
    """
    url = f"{stack.certctl_url}/api/v1/certificates"
    headers = auth_headers(stack, json_body=True)

    async def iteration(ctx) -> None:
        name = f"loadtest-{uuid.uuid4().hex}.example.test"
        body = {
            "name": name,
            "common_name": name,
            "sans": [name],
            "issuer_id": DEMO_ISSUER,
            "owner_id": DEMO_OWNER,
            "team_id": DEMO_TEAM,
            "renewal_policy_id": DEMO_RENEWAL_POLICY,
            "environment": "production",
        }
        await ctx.request("POST", url, headers=headers, body=json_bytes(body), tags={"step": "create"})

    return iteration


def list_certificates(stack: Stack):
    """GET /api/v1/certificates?per_page=50 (certctl answers the 50 oldest rows, then COUNT(*))."""
    url = f"{stack.certctl_url}/api/v1/certificates?per_page=50"
    headers = auth_headers(stack)

    async def iteration(ctx) -> None:
        await ctx.request("GET", url, headers=headers, tags={"step": "list"})

    return iteration
