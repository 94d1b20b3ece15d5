"""certctl's defects on the agent work loop, pinned against the real server.

One test per entry of :data:`pytest_certload.scenarios.agent_defects.PINNED` (``test_defect_<key>``),
each asserting the departure as certctl 151107c shows it; a certctl that fixes one fails its pin
and the entry goes (from the catalogue, here, and from the drain scenario's failure messages).
Departures the stand-in reproduces, because an agent must cope with them, run on both targets;
the others (their cause is certctl's scheduler or target API, which the stand-in does not model)
run against certctl only.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from pytest_certload.scenarios.agent_defects import DEFECTS, PINNED, READ_ONLY
from tests.contract.agent_helpers import awaiting_job, job_row, verify_body
from tests.contract.conftest import unique


def certctl_only(target) -> None:
    if target.flavour != "certctl":
        pytest.skip("the stand-in does not model the cause (no scheduler / no target API)")


def test_every_defect_is_pinned_or_explained():
    pinned = {
        name.removeprefix("test_defect_").replace("_", "-")
        for name in globals()
        if name.startswith("test_defect_")
    }
    assert pinned == set(PINNED)
    assert set(DEFECTS) == set(PINNED) | set(READ_ONLY)


def test_defect_awaiting_csr_redelivered(api, db, bound):
    """Reproduced by the stand-in (a client must cope): same job on every poll, attempts stay 0."""
    agent_id, _, cert = bound()
    job_id = awaiting_job(db, cert["id"])
    for _ in range(5):
        assert [j["id"] for j in api.get(f"/api/v1/agents/{agent_id}/work").json()["jobs"]] == [job_id]
    assert job_row(db, job_id)[:3] == ("AwaitingCSR", None, 0)


def test_defect_processor_claims_agent_deployments(api, db, bound, contract_target):
    """Within one job-processor tick (30 s +-10 %) an agent-bound Pending deployment is Running unpolled."""
    certctl_only(contract_target)
    agent_id, target_id, cert = bound()
    job_id = unique("job-contract")
    db.execute(
        "INSERT INTO jobs (id, type, certificate_id, target_id, agent_id, status, scheduled_at) VALUES"
        " (%s, 'Deployment', %s, %s, %s, 'Pending', now())",
        (job_id, cert["id"], target_id, agent_id),
    )
    deadline = time.monotonic() + 45
    while job_row(db, job_id)[0] == "Pending" and time.monotonic() < deadline:
        time.sleep(0.5)  # waiting on certctl's own 30 s tick, bounded by the deadline
    assert job_row(db, job_id)[0] == "Running", DEFECTS["processor-claims-agent-deployments"].line()
    assert api.get(f"/api/v1/agents/{agent_id}/work").json()["count"] == 0  # the agent never gets it


def test_defect_key_path_redacted(api, agent, cert_body, db, contract_target):
    certctl_only(contract_target)
    agent_id = agent()
    config = {"cert_path": "/tmp/c.pem", "key_path": "/tmp/k.pem", "reload_command": "true",
              "validate_command": "true"}  # fmt: skip
    r = api.post("/api/v1/targets", json={"name": unique("tgt-api"), "type": "NGINX", "agent_id": agent_id,
                                          "config": config, "enabled": True})  # fmt: skip
    assert r.status_code == 201, r.text
    target_id = r.json()["id"]
    cert = api.post("/api/v1/certificates", json=cert_body()).json()
    db.execute("INSERT INTO certificate_target_mappings VALUES (%s, %s)", (cert["id"], target_id))
    db.execute(
        "INSERT INTO jobs (id, type, certificate_id, target_id, agent_id, status, scheduled_at) VALUES"
        " (%s, 'Deployment', %s, %s, %s, 'Pending', now())",
        (unique("job-contract"), cert["id"], target_id, agent_id),
    )
    [item] = api.get(f"/api/v1/agents/{agent_id}/work").json()["jobs"]
    assert item["target_config"]["key_path"] == "********"
    assert item["target_config"]["cert_path"] == "/tmp/c.pem"


def test_defect_offline_heartbeat_stale(api, db, agent):
    """Reproduced by the stand-in (agents of a fleet must cope): Online, with the old timestamp."""
    agent_id = agent(status="Offline", version="1.0.0")
    before = db.execute("SELECT last_heartbeat_at FROM agents WHERE id = %s", (agent_id,)).fetchone()[0]
    assert api.post(f"/api/v1/agents/{agent_id}/heartbeat", json={"version": "9.9.9"}).status_code == 200
    status, after, version = db.execute(
        "SELECT status, last_heartbeat_at, version FROM agents WHERE id = %s", (agent_id,)
    ).fetchone()
    assert status == "Online"
    assert (after, version) == (before, "1.0.0"), DEFECTS["offline-heartbeat-stale"].line()


def test_defect_verification_not_stored(api, db, bound):
    """Reproduced by the stand-in: 200 with the echo, and the job's verification columns unchanged."""
    _, target_id, cert = bound()
    job_id = awaiting_job(db, cert["id"])
    r = api.post(f"/api/v1/jobs/{job_id}/verify", json=verify_body(target_id=target_id))
    assert r.status_code == 200
    body = r.json()
    assert (
        list(body) == ["job_id", "verified", "verified_at"] and body["job_id"] == job_id and body["verified"]
    )
    assert datetime.fromisoformat(body["verified_at"].replace("Z", "+00:00")) > datetime.now(UTC) - timedelta(
        minutes=1
    )
    stored = db.execute(
        "SELECT verification_status, verified_at, verification_fingerprint FROM jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert stored == ("pending", None, None), DEFECTS["verification-not-stored"].line()
