"""API seeding against an in-process fake of certctl's create endpoints (httpx.MockTransport).

The fake reproduces what certctl-facts §3.4 / §3.7 say the real handlers do: client certificate ids
kept, duplicate certificate name → 500 (not 409), agent ids always server-generated, duplicate
agent name → 409, registration only with the bootstrap token, a 429 with Retry-After.
"""

from __future__ import annotations

import itertools
import json

import httpx
import pytest

from pytest_certload.seeding.api_seeder import api_bodies, seed_fleet_via_api
from pytest_certload.seeding.errors import SeedingError, SeedVerificationError
from pytest_certload.seeding.fleet import load_fleet

TOKEN = "admin-and-bootstrap"
REQUIRED = ("common_name", "owner_id", "team_id", "issuer_id", "name", "renewal_policy_id")


class FakeCertctl:
    def __init__(self, bootstrap: str = TOKEN, throttle_first: int = 0) -> None:
        self.certs: dict[str, dict] = {}
        self.agents: dict[str, dict] = {}
        self.bootstrap = bootstrap
        self.throttle = throttle_first
        self.posts = 0
        self.seq = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"error": "unauthorized"})
        if request.method == "POST" and self.throttle:
            self.throttle -= 1
            return httpx.Response(429, text="rate limit exceeded", headers={"Retry-After": "0"})
        path = request.url.path
        if request.method == "POST":
            self.posts += 1
            body = json.loads(request.content)
            if path == "/api/v1/certificates":
                return self.create_certificate(body)
            if path == "/api/v1/agents":
                return self.register_agent(body)
        if request.method == "GET" and path.startswith("/api/v1/certificates/"):
            cert = self.certs.get(path.rsplit("/", 1)[1])
            return (
                httpx.Response(200, json=cert) if cert else httpx.Response(404, json={"error": "not found"})
            )
        if request.method == "GET" and path == "/api/v1/agents":
            page, per_page = int(request.url.params["page"]), int(request.url.params["per_page"])
            items = list(self.agents.values())
            chunk = items[(page - 1) * per_page : page * per_page]
            return httpx.Response(
                200, json={"data": chunk, "total": len(items), "page": page, "per_page": per_page}
            )
        return httpx.Response(404, json={"error": "not found"})

    def create_certificate(self, body: dict) -> httpx.Response:
        for field in REQUIRED:
            if not body.get(field):
                return httpx.Response(400, json={"error": f"{field} is required"})
        if not all(isinstance(v, str) for v in body.get("tags", {}).values()):
            return httpx.Response(400, json={"error": "invalid request body"})
        if body["id"] in self.certs or any(c["name"] == body["name"] for c in self.certs.values()):
            return httpx.Response(500, json={"error": "Failed to create certificate"})
        self.certs[body["id"]] = body
        return httpx.Response(201, json=body)

    def register_agent(self, body: dict) -> httpx.Response:
        if self.bootstrap != TOKEN:
            return httpx.Response(401, json={"error": "invalid_or_missing_bootstrap_token"})
        if any(a["name"] == body["name"] for a in self.agents.values()):
            return httpx.Response(409, json={"error": "agent name already exists"})
        agent = {**body, "id": f"agent-1764000000{next(self.seq):09d}-0", "status": "Online"}
        self.agents[agent["id"]] = agent
        return httpx.Response(201, json=agent)


def seed(fake: FakeCertctl, fleet_name: str, count: int):
    fleet = load_fleet(fleet_name).with_count(count)
    return seed_fleet_via_api(
        "https://certctl.test", TOKEN, fleet, transport=httpx.MockTransport(fake), concurrency=4
    )


def test_certificate_bodies_carry_the_fleet_values_in_api_shape() -> None:
    body = next(api_bodies(load_fleet("bulk_renewal")))
    assert body["id"] == "cert-loadtest-bulk-00001" and body["status"] == "Active"
    assert body["tags"] == {"source": "loadtest-phase8", "batch": "bulk-renewal"}
    assert body["expires_at"].endswith("Z") and body["sans"] == ["loadtest-bulk-00001.example.test"]
    agent = next(api_bodies(load_fleet("agent_fleet")))
    assert set(agent) == {"name", "hostname", "os", "architecture", "ip_address", "version"}


def test_certificates_seed_with_client_ids_and_reseed_idempotently() -> None:
    fake = FakeCertctl(throttle_first=3)
    first = seed(fake, "bulk_renewal", 60)
    assert (first.method, first.inserted, first.present) == ("api", 60, 60)
    assert sorted(fake.certs) == [f"cert-loadtest-bulk-{i:05d}" for i in range(1, 61)]
    assert list(first.ids)[:2] == ["cert-loadtest-bulk-00001", "cert-loadtest-bulk-00002"]
    second = seed(fake, "bulk_renewal", 60)  # every POST now answers 500; each is probed and found
    assert (second.inserted, second.present) == (0, 60)
    assert len(fake.certs) == 60


def test_agents_get_server_ids_and_are_found_again_on_reseed() -> None:
    fake = FakeCertctl()
    first = seed(fake, "agent_fleet", 40)
    assert first.inserted == 40 and sorted(first.ids) == sorted(fake.agents)
    assert all(i.startswith("agent-") for i in first.ids)  # certctl ignores ag-loadtest-NNNNN
    second = seed(fake, "agent_fleet", 40)
    assert (second.inserted, second.present) == (0, 40)
    assert sorted(second.ids) == sorted(first.ids)


def test_registration_without_the_bootstrap_token_fails_fast_with_the_reason() -> None:
    fake = FakeCertctl(bootstrap="something-else")
    with pytest.raises(SeedVerificationError, match="CERTCTL_AGENT_BOOTSTRAP_TOKEN") as err:
        seed(fake, "agent_fleet", 500)
    assert "500 of 500 rows of 'agents' missing" in str(err.value)
    assert fake.posts <= 4  # one per worker at most, not 500


def test_fleets_without_an_api_path_are_refused() -> None:
    with pytest.raises(SeedingError, match="no API seeding path"):
        seed(FakeCertctl(), "acme_profile", 1)
