"""Agent heartbeat and work poll: status codes, row updates, job claiming."""

from __future__ import annotations

import pytest

HEARTBEAT = {"version": "2.1.0", "hostname": "loadtest-00001.fleet.example.test", "os": "linux",
             "architecture": "amd64"}  # fmt: skip


def test_heartbeat_updates_the_row(api, db, agent):
    agent_id = agent(version="1.0.0", os="darwin")
    before = db.execute("SELECT last_heartbeat_at FROM agents WHERE id = %s", (agent_id,)).fetchone()[0]
    r = api.post(f"/api/v1/agents/{agent_id}/heartbeat", json=HEARTBEAT)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": "heartbeat_recorded"}
    last, version, os_, hostname, status = db.execute(
        "SELECT last_heartbeat_at, version, os, hostname, status FROM agents WHERE id = %s", (agent_id,)
    ).fetchone()
    assert last > before
    assert (version, os_, hostname, status) == ("2.1.0", "linux", HEARTBEAT["hostname"], "Online")


def test_empty_metadata_keeps_columns(api, db, agent):
    agent_id = agent(version="1.0.0")
    assert api.post(f"/api/v1/agents/{agent_id}/heartbeat", json={"version": ""}).status_code == 200
    assert db.execute("SELECT version FROM agents WHERE id = %s", (agent_id,)).fetchone()[0] == "1.0.0"


@pytest.mark.parametrize("content", [b"", b"garbage", b'{"version": 5}', b"[]"])
def test_undecodable_body_is_ignored(api, db, agent, content):
    agent_id = agent(version="1.0.0")
    r = api.post(f"/api/v1/agents/{agent_id}/heartbeat", content=content)
    assert r.status_code == 200
    assert db.execute("SELECT version FROM agents WHERE id = %s", (agent_id,)).fetchone()[0] == "1.0.0"


def test_offline_agent_comes_back_online(api, db, agent):
    agent_id = agent(status="Offline")
    assert api.post(f"/api/v1/agents/{agent_id}/heartbeat", json=HEARTBEAT).status_code == 200
    assert db.execute("SELECT status FROM agents WHERE id = %s", (agent_id,)).fetchone()[0] == "Online"


def test_retired_agent_is_410(api, db, agent):
    agent_id = agent(retired=True)
    before = db.execute("SELECT last_heartbeat_at FROM agents WHERE id = %s", (agent_id,)).fetchone()[0]
    r = api.post(f"/api/v1/agents/{agent_id}/heartbeat", json=HEARTBEAT)
    assert r.status_code == 410
    assert r.json()["message"] == "Agent has been retired"
    assert (
        db.execute("SELECT last_heartbeat_at FROM agents WHERE id = %s", (agent_id,)).fetchone()[0] == before
    )


def test_unknown_agent_heartbeat_is_500(api):
    """certctl HEAD: scanAgent wraps sql.ErrNoRows, so the repository's ErrNotFound check misses (not 404)."""
    r = api.post("/api/v1/agents/ag-loadtest-99999/heartbeat", json=HEARTBEAT)
    assert r.status_code == 500
    assert r.json()["message"] == "Failed to record heartbeat"


def test_agent_with_null_metadata_column_fails(api, db, agent):
    agent_id = agent()
    db.execute("UPDATE agents SET version = NULL WHERE id = %s", (agent_id,))
    assert api.post(f"/api/v1/agents/{agent_id}/heartbeat", json=HEARTBEAT).status_code == 500


def test_work_poll_empty(api, agent):
    r = api.get(f"/api/v1/agents/{agent()}/work")
    assert r.status_code == 200
    assert r.text == '{"count":0,"jobs":[]}\n'


def test_work_poll_unknown_agent_is_500(api):
    r = api.get("/api/v1/agents/ag-loadtest-99999/work")
    assert r.status_code == 500
    assert r.json()["message"] == "Failed to get pending work"


def test_work_poll_claims_pending_deployments(api, db, agent, cert_body):
    agent_id = agent()
    cert = api.post("/api/v1/certificates", json=cert_body()).json()
    target_id = f"tgt-{agent_id}"
    db.execute(
        "INSERT INTO deployment_targets (id, name, type, agent_id, config) VALUES (%s, %s, 'NGINX', %s, %s)",
        (target_id, target_id, agent_id, '{"cert_path": "/tmp/c.pem"}'),
    )
    db.execute(
        "INSERT INTO certificate_target_mappings (certificate_id, target_id) VALUES (%s, %s)",
        (cert["id"], target_id),
    )
    job_id = f"job-{agent_id}"
    db.execute(
        "INSERT INTO jobs (id, type, certificate_id, target_id, agent_id, status, scheduled_at) VALUES"
        " (%s, 'Deployment', %s, %s, %s, 'Pending', now()),"
        " (%s, 'Renewal', %s, NULL, NULL, 'AwaitingCSR', now())",
        (job_id, cert["id"], target_id, agent_id, job_id + "-csr", cert["id"]),
    )
    body = api.get(f"/api/v1/agents/{agent_id}/work").json()
    assert body["count"] == 2
    deploy, csr = body["jobs"]
    assert deploy == {
        "id": job_id,
        "type": "Deployment",
        "certificate_id": cert["id"],
        "target_id": target_id,
        "target_type": "NGINX",
        "target_config": {"cert_path": "/tmp/c.pem"},
        "status": "Running",
    }
    assert csr == {
        "id": job_id + "-csr",
        "type": "Renewal",
        "certificate_id": cert["id"],
        "common_name": cert["common_name"],
        "sans": cert["sans"],
        "status": "AwaitingCSR",
    }
    assert db.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()[0] == "Running"
    again = api.get(f"/api/v1/agents/{agent_id}/work").json()
    assert [j["id"] for j in again["jobs"]] == [job_id + "-csr"]  # deployment claimed once only


def test_work_poll_fails_on_job_without_scheduled_at(api, db, agent, cert_body):
    """certctl scans jobs.scheduled_at into a time.Time: one NULL makes the agent's poll 500."""
    agent_id = agent()
    cert = api.post("/api/v1/certificates", json=cert_body()).json()
    db.execute(
        "INSERT INTO jobs (id, type, certificate_id, agent_id, status) VALUES (%s, 'Deployment', %s, %s,"
        " 'Pending')",
        (f"job-null-{agent_id}", cert["id"], agent_id),
    )
    r = api.get(f"/api/v1/agents/{agent_id}/work")
    assert r.status_code == 500
    assert (
        db.execute("SELECT status FROM jobs WHERE id = %s", (f"job-null-{agent_id}",)).fetchone()[0]
        == "Pending"
    )


def test_head_on_work_is_refused_by_the_handler(api, agent):
    r = api.head(f"/api/v1/agents/{agent()}/work")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/json"
    assert "allow" not in r.headers
