"""Simulated agents against the stand-in: the real agent's step sequence, end to end.

Three agents of the agent-bound fleet; certificates 1 and 2 are bulk-renewed, agent 3 gets a
Deployment job for a certificate whose key it never generated. Expected, as cmd/agent does it:
agents 1 and 2 heartbeat, poll, submit a CSR (202), poll again, report Running, pick the
certificate up, report Completed; agent 3 reports Running, picks up, reports Failed "key read
failed". The stand-in's jobs table must then say the same. (Against the real certctl the
processor may claim the Deployment jobs first: tests/contract pins that defect.)
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import trustme

from pytest_certload.agents.fleet import AgentFleet
from pytest_certload.agents.protocol import AgentProtocol
from pytest_certload.engine import ExecutorSpec, ScenarioRun, make_ssl_context, run_phase
from pytest_certload.scenarios.common import auth_headers


class RecordingProtocol(AgentProtocol):
    """The agent's calls, in order, per agent: (step, status answered)."""

    def __init__(self, stack) -> None:
        super().__init__(stack, "auto")
        self.steps: dict[str, list[tuple[str, int]]] = {}

    def _note(self, agent, step, resp):
        self.steps.setdefault(agent.agent_id, []).append((step, resp.status))
        return resp

    async def heartbeat(self, ctx, agent):
        return self._note(agent, "heartbeat", await super().heartbeat(ctx, agent))

    async def poll(self, ctx, agent):
        resp, items = await super().poll(ctx, agent)
        self._note(agent, "poll" if not items else f"poll:{len(items)}", resp)
        return resp, items

    async def submit_csr(self, ctx, agent, certificate_id, csr_pem):
        return self._note(agent, "csr", await super().submit_csr(ctx, agent, certificate_id, csr_pem))

    async def report_status(self, ctx, agent, job_id, status, error=""):
        return self._note(
            agent, f"status:{status}", await super().report_status(ctx, agent, job_id, status, error)
        )

    async def pickup(self, ctx, agent, certificate_id):
        return self._note(agent, "pickup", await super().pickup(ctx, agent, certificate_id))


def subsequence(wanted: list[str], seen: list[str]) -> bool:
    it = iter(seen)
    return all(step in it for step in wanted)


def test_agents_run_csr_and_deployment_jobs_as_the_real_agent(certload_stack) -> None:
    stack = certload_stack
    if stack.server != "stand-in" or not stack.dsn:
        pytest.skip("step sequence checked on the stand-in (certctl: tests/contract/test_agent_work.py)")
    from pytest_certload.seeding.agent_bound import refresh_agents, seed_agent_bound_fleet
    from pytest_certload.stack.secret import connect_pg

    with connect_pg(stack.dsn, connect_timeout=10) as conn:
        report = seed_agent_bound_fleet(conn, 3)
        agents, certs, targets = list(report.agent_ids), list(report.certificate_ids), list(report.target_ids)
        refresh_agents(conn, agents)
        since = conn.execute("SELECT now()").fetchone()[0]
        leaf = trustme.CA().issue_cert("bound-00003.agents.example.test").cert_chain_pems[0].bytes().decode()
        conn.execute(  # certificate 3 has a version to pick up (issued elsewhere: agent 3 has no key)
            "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,"
            " fingerprint_sha256, pem_chain) VALUES (%s, %s, '01', now(), now() + interval '1 day', %s, %s)"
            " ON CONFLICT DO NOTHING",
            (f"cv-h3-{time.time_ns()}", certs[2], f"h3-{time.time_ns()}", leaf),
        )
        conn.execute(  # a deployment of a certificate agent 3 holds no key for
            "INSERT INTO jobs (id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts,"
            " scheduled_at, created_at) VALUES (%s, 'Deployment', %s, %s, %s, 'Pending', 0, 3, now(), now())",
            (f"job-h3-nokey-{time.time_ns()}", certs[2], targets[2], agents[2]),
        )
        conn.commit()
    ctx = make_ssl_context(stack.ca_bundle)
    body = json.dumps({"certificate_ids": certs[:2]}).encode()
    req = urllib.request.Request(
        f"{stack.certctl_url}/api/v1/certificates/bulk-renew",
        data=body,
        headers=auth_headers(stack, json_body=True),  # the one place a token is put into a header
    )
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        assert json.loads(resp.read())["total_enqueued"] == 2

    fleet = AgentFleet(stack, agents)
    fleet.proto = proto = RecordingProtocol(stack)
    spec = ExecutorSpec.from_options(
        {
            "executor": "agent-fleet",
            "agents": 3,
            "duration": "2.5s",
            "heartbeat_interval": "1s",
            "poll_interval": "0.4s",
            "first_heartbeat_within": "0.3s",
            "first_poll_within": "0.2s",
            "graceful_stop": "5s",
        }
    )
    m = run_phase([ScenarioRun("agent_fleet", spec, fleet)], ssl_context=ctx)

    for agent in agents[:2]:
        seen = [step for step, _ in proto.steps[agent]]
        assert seen[:2] == ["heartbeat", "poll:1"], seen  # the renewal waits at the first poll
        wanted = ["csr", "poll:1", "status:Running", "pickup", "status:Completed"]
        assert subsequence(wanted, seen), seen
        assert all(status == {"csr": 202}.get(step, 200) for step, status in proto.steps[agent]), proto.steps
    third = [step for step, _ in proto.steps[agents[2]]]
    assert subsequence(["poll:1", "status:Running", "pickup", "status:Failed"], third), third
    assert "csr" not in third
    assert fleet.jobs[("csr", "submitted")] == 2 and fleet.jobs[("deployment", "completed")] == 2
    assert fleet.jobs[("deployment", "failed")] == 1
    assert m.samples.select_counter("agent_key_missing") == 1

    with connect_pg(stack.dsn, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT certificate_id, type, status, coalesce(last_error, '') FROM jobs"
            " WHERE certificate_id = ANY(%s) AND created_at >= %s ORDER BY certificate_id, type",
            (certs, since),
        ).fetchall()
    by_cert = {(c, t): (s, e) for c, t, s, e in rows}
    for cert in certs[:2]:
        assert by_cert[(cert, "Renewal")][0] == "Completed", rows
        assert by_cert[(cert, "Deployment")][0] == "Completed", rows
    status, error = by_cert[(certs[2], "Deployment")]
    assert status == "Failed" and error.startswith("key read failed"), rows
