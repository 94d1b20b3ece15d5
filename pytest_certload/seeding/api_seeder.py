"""Seed a fleet through certctl's REST API, for deployments whose database we cannot reach.

Slower than COPY by orders of magnitude (one request, one INSERT and one hash-chained audit row per
row), and different in one way scenarios must know: ``POST /api/v1/agents`` ignores client ids and
returns ``agent-<nanos>-<n>``, so the report carries the server's ids, not ``ag-loadtest-NNNNN``.
Registration needs the Authorization token to equal certctl's agent bootstrap token (and be an
admin API key). Certificates keep the client id. Bounded in count (the fleet) and time (deadline).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pytest_certload.seeding.errors import SeedingError, SeedVerificationError
from pytest_certload.seeding.fleet import Fleet
from pytest_certload.seeding.report import SeedReport
from pytest_certload.stack.secret import BearerAuth, Secret, scrub

CERT_FIELDS = (
    "id", "name", "common_name", "sans", "environment", "owner_id", "team_id", "issuer_id",
    "renewal_policy_id", "status", "expires_at", "tags", "certificate_profile_id",
    "created_at",  # certctl keeps a client's created_at (service/certificate.go:506): fleet order holds
)  # fmt: skip
AGENT_FIELDS = ("name", "hostname", "os", "architecture", "ip_address", "version")
ENDPOINTS = {"certificates": "/api/v1/certificates", "agents": "/api/v1/agents"}
MAX_429_RETRIES = 20
AGENT_PAGE = 500


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def require_api_path(fleet: Fleet) -> None:
    if fleet.api not in ENDPOINTS:
        raise SeedingError(
            f"fleet {fleet.name!r} (table {fleet.table}) has no API seeding path (fleet.api is unset); "
            "seed it over SQL: give the stack a reachable DSN"
        )


def api_bodies(fleet: Fleet, now: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The fleet's rows as request bodies (streamed, like the SQL path)."""
    require_api_path(fleet)
    fields = CERT_FIELDS if fleet.api == "certificates" else AGENT_FIELDS
    names = fleet.column_names
    json_cols = set(fleet.json_columns)
    for row in fleet.rows(now):
        body: dict[str, Any] = {}
        for name, value in zip(names, row, strict=True):
            if name not in fields:
                continue
            if name in json_cols:
                value = json.loads(value)
            elif isinstance(value, datetime):
                value = _rfc3339(value)
            body[name] = value
        yield body


class _Outcome:
    def __init__(self) -> None:
        self.inserted = 0
        self.existing = 0
        self.failed: list[str] = []
        self.ids: list[str] = []
        self.existing_names: list[str] = []
        self.requests = 0
        self.fatal = ""


async def _post(client: httpx.AsyncClient, path: str, body: dict, deadline: float) -> httpx.Response:
    """POST, honouring 429 Retry-After (certctl's limiter is on by default: 50 req/s per client IP)."""
    for _ in range(MAX_429_RETRIES):
        response = await client.post(path, json=body)
        if response.status_code != 429:
            return response
        wait = min(
            float(response.headers.get("Retry-After", "1") or 1), max(0.0, deadline - time.monotonic())
        )
        await asyncio.sleep(wait)  # backoff the server asked for, not synchronisation
    return response


AUTH_HINTS = {
    "agents": "certctl registers agents only when the Bearer token is both an admin API key and equal to "
    "CERTCTL_AGENT_BOOTSTRAP_TOKEN (certctl-facts §3.7)",
    "certificates": "POST /api/v1/certificates needs an admin API key "
    "(CERTCTL_API_KEYS_NAMED=name:key:admin); CERTCTL_AUTH_SECRET keys are viewers",
}


async def _worker(
    client: httpx.AsyncClient, fleet: Fleet, bodies: Iterator[dict], out: _Outcome, deadline: float
) -> None:
    api = fleet.api or ""
    path = ENDPOINTS[api]
    for body in bodies:  # a shared iterator: workers pull rows one by one, nothing is pre-built
        if out.fatal or time.monotonic() > deadline:
            out.failed.append(
                f"{body.get('id') or body.get('name')}: {out.fatal or 'seeding deadline passed'}"
            )
            return
        response = await _post(client, path, body, deadline)
        out.requests += 1
        status = response.status_code
        if status == 201:
            out.inserted += 1
            if api == "agents":
                out.ids.append(response.json()["id"])
            continue
        if status in (401, 403):  # every further request would fail the same way
            out.fatal = f"HTTP {status} {response.text[:120].strip()}: {AUTH_HINTS[api]}"
            out.failed.append(out.fatal)
            return
        if api == "agents" and status == 409:
            out.existing += 1  # duplicate name: registered by an earlier run
            out.existing_names.append(body["name"])
            continue
        if api == "certificates" and status == 500:
            # certctl answers a duplicate name/id with 500, not 409: check whether ours is there
            probe = await client.get(f"{path}/{body['id']}")
            if probe.status_code == 200 and probe.json().get("name") == body["name"]:
                out.existing += 1
                continue
        out.failed.append(f"{body.get('id') or body.get('name')}: HTTP {status} {response.text[:200]}")


async def _existing_agent_ids(client: httpx.AsyncClient, names: set[str]) -> dict[str, str]:
    """Map names of agents registered earlier to their server ids (GET /api/v1/agents, paged)."""
    found: dict[str, str] = {}
    page = 1
    while names - found.keys():
        response = await client.get(ENDPOINTS["agents"], params={"page": page, "per_page": AGENT_PAGE})
        response.raise_for_status()
        payload = response.json()
        items = payload.get("data") or []
        for agent in items:
            if agent.get("name") in names:
                found[agent["name"]] = agent["id"]
        if len(items) < AGENT_PAGE or page * AGENT_PAGE >= int(payload.get("total") or 0):
            break
        page += 1
    return found


async def seed_fleet_via_api_async(
    base_url: str,
    token: Secret,
    fleet: Fleet,
    *,
    ca_bundle: Path | None = None,
    concurrency: int = 8,
    timeout_s: float = 600.0,
    transport: httpx.AsyncBaseTransport | None = None,
    now: datetime | None = None,
) -> SeedReport:
    """Seed ``fleet`` through certctl's API with ``token`` (a :class:`Secret`; a str is wrapped).

    The token reaches the wire only through :class:`BearerAuth`; transport errors come back as a
    :class:`SeedingError` without httpx's frames, and server answers quoted in errors are scrubbed
    of the token (a server may echo a request's headers in its error body).
    """
    require_api_path(fleet)
    secret = token if isinstance(token, Secret) else Secret(token)
    del token
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    bodies = api_bodies(fleet, now)
    out = _Outcome()
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    failure: SeedingError | None = None
    try:
        async with httpx.AsyncClient(
            base_url=base_url,
            auth=BearerAuth(secret),
            verify=verify,
            timeout=30.0,
            limits=limits,
            transport=transport,
        ) as client:
            await asyncio.gather(*(_worker(client, fleet, bodies, out, deadline) for _ in range(concurrency)))
            if out.existing_names:
                known = await _existing_agent_ids(client, set(out.existing_names))
                out.ids.extend(known[n] for n in out.existing_names if n in known)
    except httpx.HTTPError as exc:
        failure = SeedingError(
            scrub(f"fleet {fleet.name!r} over the API at {base_url}: {type(exc).__name__}: {exc}", [secret])
        )
    if failure is not None:  # not chained: httpx's frames hold the request with its header
        raise failure from None
    present = out.inserted + out.existing
    if out.failed:
        missing = fleet.count - present
        raise SeedVerificationError(
            scrub(
                f"fleet {fleet.name!r} over the API: {missing} of {fleet.count} rows of {fleet.table!r} "
                f"missing; first failure: {out.failed[0]}",
                [secret],
            )
        )
    notes = [f"{out.requests} POST requests; each also wrote an audit row (append-only, not removable)"]
    ids = fleet.ids() if fleet.api == "certificates" else sorted(out.ids)
    if fleet.api == "agents":
        notes.append("certctl assigns agent ids (agent-<nanos>-<n>); ids are the server's, not ag-loadtest-*")
    return SeedReport(
        fleet=fleet.name,
        table=fleet.table,
        method="api",
        expected=fleet.count,
        inserted=out.inserted,
        present=present,
        seconds=time.perf_counter() - started,
        ids=ids,
        notes=notes,
    )


def seed_fleet_via_api(base_url: str, token: Secret, fleet: Fleet, **kwargs: Any) -> SeedReport:
    """Synchronous wrapper (fixtures are synchronous); runs its own event loop."""
    return asyncio.run(seed_fleet_via_api_async(base_url, token, fleet, **kwargs))
