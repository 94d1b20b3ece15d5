"""Pieces every certctl scenario shares: auth headers, JSON bodies, status expectations."""

from __future__ import annotations

import json

from pytest_certload.stack.model import Stack

# FK ids from certctl's demo seed that the original harness hard-codes (case-sensitive).
DEMO_ISSUER = "iss-local"
DEMO_OWNER = "o-alice"
DEMO_TEAM = "t-platform"
DEMO_RENEWAL_POLICY = "rp-standard"
ACME_PROFILE = "prof-test"


def auth_headers(stack: Stack, *, json_body: bool = False) -> dict[str, str]:
    """The admin Bearer key (a viewer key gets 403 on every write: the original harness's defect).

    The engine takes header values as str, so the token is revealed here, once per scenario.
    """
    headers = {"Authorization": "Bearer " + stack.token.reveal(), "Accept": "application/json"}
    if json_body:
        headers["Content-Type"] = "application/json"
    return headers


def json_bytes(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def not_server_error(status: int) -> bool:
    """ACME surface: 4xx (incl. 429 and renewal-info's 400/404) are expected outcomes, counted apart."""
    return 0 < status < 500


BULK_RENEW_COUNTS = ("matched", "enqueued", "skipped", "failed")


def bulk_renew_call(stack: Stack, certificate_ids: list[str]) -> tuple[str, dict[str, str], bytes]:
    """``POST /api/v1/certificates/bulk-renew`` of explicit ids: (url, headers, body)."""
    url = f"{stack.certctl_url}/api/v1/certificates/bulk-renew"
    return url, auth_headers(stack, json_body=True), json_bytes({"certificate_ids": list(certificate_ids)})


def record_bulk_counts(ctx, body: bytes) -> dict[str, int]:
    """certctl's ``total_*`` figures of a 200 bulk-renew answer, each also a ``bulk_renew_*`` counter."""
    doc = json.loads(body)
    counts = {k: int(doc.get(f"total_{k}", 0)) for k in BULK_RENEW_COUNTS}
    for key, n in counts.items():
        ctx.counter(f"bulk_renew_{key}", n)
    return counts
