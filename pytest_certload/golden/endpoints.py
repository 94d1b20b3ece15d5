"""The endpoints the load scenarios call, and how to call each one once with fresh inputs.

Each :class:`Endpoint` has a ``prepare`` that runs *before* the measurement window: it inserts the
rows the call needs (a fresh certificate to renew, an AwaitingCSR job for the agent, ...) and does
any preliminary request (an ACME nonce, an order to finalize), then returns the one
:class:`Call` whose database work is measured. So every measured request does the same work on
both servers, and setup statements never count. Names are the stand-in's route names
(``standin.config.ROUTES``); requests follow the scenarios (``scenarios/api.py``, ``scale.py``,
``acme_issuance.py``).
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from pytest_certload.agents.csr_job import build_csr
from pytest_certload.scenarios.acme_certs import IssuerCA, new_csr, new_key
from pytest_certload.scenarios.acme_client import JOSE_CT, AccountKey, sign

PROFILE = "prof-test"
ACME = f"/acme/profile/{PROFILE}"
TEAM, OWNER, ISSUER, POLICY = "t-platform", "o-alice", "iss-local", "rp-standard"
LIST_ENVIRONMENT = "golden-list"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    """What ``prepare`` works with: the target's API, its database, a scratch directory, state."""

    http: httpx.Client
    db: psycopg.Connection
    workdir: Path
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    state: dict[str, Any] = field(default_factory=dict)
    _n: itertools.count = field(default_factory=itertools.count)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-golden-{self.run}-{next(self._n)}"


def json_call(method: str, path: str, payload: Any) -> Call:
    return Call(method, path, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def insert_certificate(ctx: Context, environment: str = "golden") -> str:
    cert_id = ctx.unique("cert")
    ctx.db.execute(
        "INSERT INTO managed_certificates (id, name, common_name, sans, environment, owner_id, team_id,"
        " issuer_id, renewal_policy_id, status, expires_at, tags) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, 'Active', now() + interval '200 days', '{}')",
        (cert_id, cert_id, f"{cert_id}.example.test", [f"{cert_id}.example.test"], environment, OWNER, TEAM,
         ISSUER, POLICY),
    )  # fmt: skip
    return cert_id


def insert_agent(ctx: Context) -> str:
    agent_id = ctx.unique("agent")
    ctx.db.execute(
        "INSERT INTO agents (id, name, hostname, status, last_heartbeat_at, api_key_hash, os, architecture,"
        " ip_address, version) VALUES (%s, %s, %s, 'Online', now(), 'golden_no_auth', 'linux', 'amd64',"
        " '10.42.0.1', '2.1.0')",
        (agent_id, agent_id, f"{agent_id}.fleet.example.test"),
    )
    return agent_id


def agent(ctx: Context) -> str:
    """The one agent the agent endpoints talk to (Online, with a deployment target)."""
    if "agent" not in ctx.state:
        agent_id = insert_agent(ctx)
        target_id = ctx.unique("target")
        ctx.db.execute(
            "INSERT INTO deployment_targets (id, name, type, agent_id, config) VALUES (%s, %s, 'NGINX', %s,"
            ' \'{"cert_path": "/tmp/golden.crt"}\')',
            (target_id, target_id, agent_id),
        )
        ctx.state["agent"], ctx.state["target"] = agent_id, target_id
    return ctx.state["agent"]


def csr_pem(common_name: str) -> str:
    """The CSR certctl's agent sends (agents/csr_job.py builds it the same way for the simulated fleet)."""
    return build_csr(new_key(), common_name, [common_name])  # type: ignore[arg-type]  # new_key() is P-256


# -- the API scenarios -------------------------------------------------------------------------


def list_certificates(ctx: Context) -> Call:
    if "list_seeded" not in ctx.state:
        for _ in range(60):
            insert_certificate(ctx, LIST_ENVIRONMENT)
        ctx.state["list_seeded"] = True
    return Call("GET", f"/api/v1/certificates?environment={LIST_ENVIRONMENT}&per_page=50")


def get_certificate(ctx: Context) -> Call:
    if "get_cert" not in ctx.state:
        ctx.state["get_cert"] = insert_certificate(ctx)
    cert_id = ctx.state["get_cert"]
    return Call("GET", f"/api/v1/certificates/{cert_id}")


def create_certificate(ctx: Context) -> Call:
    name = ctx.unique("create") + ".example.test"
    return json_call("POST", "/api/v1/certificates", {
        "name": name, "common_name": name, "sans": [name], "environment": "golden", "owner_id": OWNER,
        "team_id": TEAM, "issuer_id": ISSUER, "renewal_policy_id": POLICY,
    })  # fmt: skip


def bulk_renew(ctx: Context) -> Call:
    return json_call(
        "POST", "/api/v1/certificates/bulk-renew", {"certificate_ids": [insert_certificate(ctx)]}
    )


def heartbeat(ctx: Context) -> Call:
    body = {
        "version": "2.1.0",
        "hostname": "golden.fleet.example.test",
        "os": "linux",
        "architecture": "amd64",
    }
    return json_call("POST", f"/api/v1/agents/{agent(ctx)}/heartbeat", body)


def work(ctx: Context) -> Call:
    return Call("GET", f"/api/v1/agents/{insert_agent(ctx)}/work")  # an agent without work


def agent_csr(ctx: Context) -> Call:
    """The AwaitingCSR path: the agent's certificate, mapped to its target, with a Renewal job."""
    agent_id = agent(ctx)
    cert_id = insert_certificate(ctx)
    ctx.db.execute(
        "INSERT INTO certificate_target_mappings (certificate_id, target_id) VALUES (%s, %s)",
        (cert_id, ctx.state["target"]),
    )
    ctx.db.execute(
        "INSERT INTO jobs (id, type, certificate_id, status, attempts, max_attempts, scheduled_at,"
        " created_at) VALUES (%s, 'Renewal', %s, 'AwaitingCSR', 0, 3, now(), now())",
        (ctx.unique("job"), cert_id),
    )
    ctx.state.setdefault("issued", []).append(cert_id)
    body = {"csr_pem": csr_pem(f"{cert_id}.example.test"), "certificate_id": cert_id}
    return json_call("POST", f"/api/v1/agents/{agent_id}/csr", body)


def agent_pickup(ctx: Context) -> Call:
    if not ctx.state.get("issued"):
        ctx.state["issued"] = [insert_certificate(ctx)]  # no version: the 404 path
    return Call("GET", f"/api/v1/agents/{agent(ctx)}/certificates/{ctx.state['issued'][0]}")


def agent_job_status(ctx: Context) -> Call:
    agent_id = agent(ctx)
    job_id = ctx.unique("job")
    ctx.db.execute(
        "INSERT INTO jobs (id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts,"
        " scheduled_at, started_at) VALUES (%s, 'Deployment', %s, %s, %s, 'Running', 0, 3, now(), now())",
        (job_id, insert_certificate(ctx), ctx.state["target"], agent_id),
    )
    return json_call("POST", f"/api/v1/agents/{agent_id}/jobs/{job_id}/status", {"status": "Completed"})


# -- ACME (trust_authenticated profile prof-test, iss-local signing with our CA) ----------------


def nonce(ctx: Context) -> str:
    r = ctx.http.head(f"{ACME}/new-nonce")
    r.raise_for_status()
    return r.headers["replay-nonce"]


def jws_call(ctx: Context, path: str, payload: Any, key: AccountKey, kid: str | None) -> Call:
    url = str(ctx.http.base_url).rstrip("/") + path
    raw = b"" if payload is None else json.dumps(payload).encode()
    return Call("POST", path, sign(key, url, nonce(ctx), raw, kid), {"Content-Type": JOSE_CT})


def send(ctx: Context, call: Call) -> httpx.Response:
    return ctx.http.request(call.method, call.path, content=call.body, headers=call.headers)


def acme_account(ctx: Context) -> tuple[AccountKey, str]:
    """A new account for each order: certctl caps an account at 5 orders not yet finalized."""
    if "issuer_ca" not in ctx.state:  # iss-local signs with a CA of ours (PUT /api/v1/issuers)
        ca = IssuerCA.create(ctx.workdir / "issuer-ca")
        ctx.http.put("/api/v1/issuers/iss-local", json=ca.issuer_body()).raise_for_status()
        ctx.state["issuer_ca"] = ca
    key = AccountKey()
    r = send(ctx, jws_call(ctx, f"{ACME}/new-account", {"termsOfServiceAgreed": True}, key, None))
    r.raise_for_status()
    return key, r.headers["location"]


def acme_directory(ctx: Context) -> Call:
    return Call("GET", f"{ACME}/directory")


def acme_new_nonce(ctx: Context) -> Call:
    return Call("HEAD", f"{ACME}/new-nonce")


def acme_new_account(ctx: Context) -> Call:
    return jws_call(ctx, f"{ACME}/new-account", {"termsOfServiceAgreed": True}, AccountKey(), None)


def order_payload(ctx: Context) -> tuple[dict[str, Any], str]:
    name = ctx.unique("acme") + ".acme.certload.test"
    return {"identifiers": [{"type": "dns", "value": name}]}, name


def acme_new_order(ctx: Context) -> Call:
    key, kid = acme_account(ctx)
    return jws_call(ctx, f"{ACME}/new-order", order_payload(ctx)[0], key, kid)


def acme_finalize(ctx: Context) -> Call:
    key, kid = acme_account(ctx)
    payload, name = order_payload(ctx)
    r = send(ctx, jws_call(ctx, f"{ACME}/new-order", payload, key, kid))
    r.raise_for_status()
    finalize = httpx.URL(r.json()["finalize"]).path
    return jws_call(ctx, finalize, {"csr": new_csr([name], new_key())}, key, kid)


@dataclass(frozen=True)
class Endpoint:
    name: str
    prepare: Callable[[Context], Call]


def health(ctx: Context) -> Call:
    return Call("GET", "/health")


def ready(ctx: Context) -> Call:
    return Call("GET", "/ready")


ENDPOINTS: tuple[Endpoint, ...] = tuple(
    Endpoint(fn.__name__, fn)
    for fn in (
        list_certificates, get_certificate, create_certificate, bulk_renew, heartbeat, work, agent_csr,
        agent_pickup, agent_job_status, acme_directory, acme_new_nonce, acme_new_account, acme_new_order,
        acme_finalize, health, ready,
    )
)  # fmt: skip
BY_NAME = {e.name: e for e in ENDPOINTS}
