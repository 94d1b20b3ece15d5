"""API tier: certificate creation and listing (k6.js ``issuance_acceptance``, ``list_certificates``).

Each iteration records k6.js's check under its k6 name (``create status 201``, ``list status 200``)
as the ``checks`` rate, so ``checks{check:create status 201}`` thresholds work as in k6.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from pytest_certload.scenarios.common import (
    DEMO_ISSUER,
    DEMO_OWNER,
    DEMO_RENEWAL_POLICY,
    DEMO_TEAM,
    auth_headers,
    json_bytes,
)
from pytest_certload.stack.model import Stack

#: the fleet list_certificates lists (seeds/list_certificates.toml): its rows carry this environment,
#: which no other fleet and no scenario writes, so the listed page and total never depend on what
#: ran before (the original listed whatever the demo seed and earlier POSTs had left)
LIST_FLEET = "list_certificates"
LIST_ENVIRONMENT = "loadtest-list"
LIST_ID_PREFIX = "cert-loadtest-list-"
#: distinct pages one builder tags before it lumps the rest together (bounds the series count)
MAX_PAGE_TAGS = 16


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
        resp = await ctx.request("POST", url, headers=headers, body=json_bytes(body), tags={"step": "create"})
        ctx.check("create status 201", resp.status == 201)

    return iteration


def page_signature(doc: object) -> tuple[str, int]:
    """``("<total> rows: <first> .. <last> (<n> listed)", rows outside the fleet)`` of a list page."""
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        return "not a list page", 0
    ids = [str(row.get("id", "")) if isinstance(row, dict) else "" for row in doc["data"]]
    foreign = sum(not i.startswith(LIST_ID_PREFIX) for i in ids)
    span = f"{ids[0]} .. {ids[-1]}" if ids else "empty"
    return f"{doc.get('total')} rows: {span} ({len(ids)} listed)", foreign


def list_certificates(stack: Stack, *, environment: str = LIST_ENVIRONMENT):
    """GET /api/v1/certificates?environment=<list fleet>&per_page=50: a page of the list fleet.

    certctl answers the 50 oldest matching rows and their COUNT(*). Each distinct page seen is
    counted as ``list_page{page:"<total> rows: <first id> .. <last id> (<n> listed)"}`` and rows from
    outside the fleet as ``list_foreign_rows``: a test can assert that every phase listed the same
    fleet whatever ran before it.
    """
    url = f"{stack.certctl_url}/api/v1/certificates?environment={environment}&per_page=50"
    headers = auth_headers(stack)
    page_tags: dict[str, dict[str, str]] = {}

    def tags_for(signature: str) -> dict[str, str]:
        tags = page_tags.get(signature)
        if tags is None:
            if len(page_tags) >= MAX_PAGE_TAGS:
                return {"page": f"more than {MAX_PAGE_TAGS} distinct pages"}
            tags = page_tags[signature] = {"page": signature}
        return tags

    async def iteration(ctx) -> None:
        resp = await ctx.request("GET", url, headers=headers, tags={"step": "list"})
        ctx.check("list status 200", resp.status == 200)
        if resp.status != 200:
            return
        try:
            doc = json.loads(resp.body)
        except ValueError:
            doc = None
        signature, foreign = page_signature(doc)
        ctx.counter("list_page", tags=tags_for(signature))
        if foreign:
            ctx.counter("list_foreign_rows", foreign)

    return iteration


# -- reading what list_certificates saw ---------------------------------------------------------------


def fleet_page(ids: Sequence[str], total: int | None = None, per_page: int = 50) -> str:
    """The page signature a list of the fleet answers when certctl lists it oldest first."""
    shown = list(ids[:per_page])
    span = f"{shown[0]} .. {shown[-1]}" if shown else "empty"
    return f"{len(ids) if total is None else total} rows: {span} ({len(shown)} listed)"


def listed_pages(samples: Any, scenario: str | None = None) -> dict[str, float]:
    """Distinct pages list_certificates answered (signature -> requests), optionally for one scenario."""
    pages: dict[str, float] = {}
    for (name, tags), n in samples.counters.items():
        tag = dict(tags)
        if name == "list_page" and (scenario is None or tag.get("scenario") == scenario):
            pages[tag["page"]] = pages.get(tag["page"], 0) + n
    return pages


def fleet_listing_problem(samples: Any, fleet: Any, scenario: str = "list_certificates") -> str | None:
    """Why the phase's list requests did not all answer the list fleet's page (None: they did).

    ``fleet`` is the fleet's SeedReport. Seeded over SQL (``copy``) the rows are ordered by age, so
    the page must be rows 1-50 exactly; seeded over the API their order is the seeding's, so the
    total and a single page are what is compared.
    """
    pages = listed_pages(samples, scenario)
    if len(pages) != 1:
        return f"{scenario} listed {len(pages)} different pages, not its fleet's one: {pages}"
    (page,) = pages
    if not page.startswith(f"{fleet.expected} rows: "):
        return f"{scenario} listed {page!r}: not the {fleet.expected}-row fleet {fleet.fleet}"
    if fleet.method == "copy" and page != fleet_page(fleet.ids, fleet.expected):
        return f"{scenario} listed {page!r}, expected {fleet_page(fleet.ids, fleet.expected)!r}"
    foreign = samples.select_counter("list_foreign_rows", {"scenario": scenario})
    if foreign:
        return f"{scenario} listed {foreign:g} rows from outside its fleet"
    return None
