"""The requests certctl's agent sends, byte for byte where it matters, each tagged ``agent_step``.

Headers (cmd/agent/main.go:441-468): ``Authorization: Bearer``, ``Content-Type: application/json`` on
every request (GETs too), Go's user agent, ``Accept-Encoding: gzip`` (Go's transport adds it).
Bodies are Go ``map[string]string`` values marshalled by encoding/json: keys sorted, no spaces.
What the agent treats as success is each step's ``expected`` status (facts A.11): anything else is a
failed request here, as it is a failure there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_certload.agents.model import AGENT_VERSION, AgentState
from pytest_certload.stack.model import Stack

GO_USER_AGENT = {"1.1": "Go-http-client/1.1", "2": "Go-http-client/2.0"}


def go_json(payload: dict[str, Any]) -> bytes:
    """encoding/json of a Go map: keys sorted, compact; <, > and & escaped as Go does."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def ok_200(status: int) -> bool:
    return status == 200


def ok_202(status: int) -> bool:
    return status == 202


@dataclass
class WorkItem:
    """One entry of ``GET /work``'s ``jobs`` (the fields the agent reads: cmd/agent/main.go:131-141)."""

    id: str
    type: str
    status: str
    certificate_id: str
    common_name: str
    sans: list[str]
    target_id: str | None
    target_type: str
    target_config: Any

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> WorkItem:
        return cls(
            id=str(doc.get("id", "")),
            type=str(doc.get("type", "")),
            status=str(doc.get("status", "")),
            certificate_id=str(doc.get("certificate_id", "")),
            common_name=str(doc.get("common_name", "")),
            sans=[str(s) for s in doc.get("sans") or ()],
            target_id=doc.get("target_id"),
            target_type=str(doc.get("target_type", "")),
            target_config=doc.get("target_config"),
        )


class AgentProtocol:
    """The agent's HTTP calls against one certctl; every call goes through ``ctx.request``."""

    def __init__(self, stack: Stack, http_version: str = "2") -> None:
        self.base = stack.certctl_url.rstrip("/")
        self.headers = {
            "Authorization": "Bearer " + stack.token.reveal(),
            "Content-Type": "application/json",
            "User-Agent": GO_USER_AGENT["1.1" if http_version == "1.1" else "2"],
            "Accept-Encoding": "gzip",
        }

    def _agent_url(self, agent: AgentState, rest: str) -> str:
        return f"{self.base}/api/v1/agents/{agent.agent_id}/{rest}"

    async def heartbeat(self, ctx, agent: AgentState):
        ident = agent.identity
        body = go_json(
            {
                "version": AGENT_VERSION,
                "hostname": ident.hostname,
                "os": ident.os,
                "architecture": ident.architecture,
                "ip_address": ident.ip_address,
            }
        )
        url = self._agent_url(agent, "heartbeat")
        tags = {"agent_step": "heartbeat"}
        return await ctx.request("POST", url, headers=self.headers, body=body, tags=tags, expected=ok_200)

    async def poll(self, ctx, agent: AgentState) -> tuple[Any, list[WorkItem] | None]:
        """``GET /work``: (response, items), items None when the agent counts the poll as failed."""
        url = self._agent_url(agent, "work")
        resp = await ctx.request(
            "GET", url, headers=self.headers, tags={"agent_step": "poll"}, expected=ok_200
        )
        if resp.status != 200:
            return resp, None
        try:
            doc = json.loads(resp.body)
            count = int(doc.get("count", 0))
            jobs = doc.get("jobs") or []
        except (ValueError, TypeError, AttributeError):
            ctx.counter("agent_poll_bad_body")
            return resp, None
        if count == 0:  # the agent does not look at jobs then (poll.go:94-97)
            return resp, []
        items = [WorkItem.from_json(j) for j in jobs if isinstance(j, dict)]
        ctx.counter("agent_work_items", len(items))
        return resp, items

    async def submit_csr(self, ctx, agent: AgentState, certificate_id: str, csr_pem: str):
        body = go_json({"csr_pem": csr_pem, "certificate_id": certificate_id})
        url = self._agent_url(agent, "csr")
        tags = {"agent_step": "csr"}
        return await ctx.request("POST", url, headers=self.headers, body=body, tags=tags, expected=ok_202)

    async def report_status(self, ctx, agent: AgentState, job_id: str, status: str, error: str = ""):
        payload = {"status": status}
        if error:
            payload["error"] = error
        url = self._agent_url(agent, f"jobs/{job_id}/status")
        tags = {"agent_step": "status", "reported": status}
        return await ctx.request(
            "POST", url, headers=self.headers, body=go_json(payload), tags=tags, expected=ok_200
        )

    async def pickup(self, ctx, agent: AgentState, certificate_id: str):
        url = self._agent_url(agent, f"certificates/{certificate_id}")
        tags = {"agent_step": "pickup"}
        return await ctx.request("GET", url, headers=self.headers, tags=tags, expected=ok_200)

    async def report_verification(
        self, ctx, job_id: str, target_id: str, expected: str, actual: str, verified: bool, error: str
    ):
        """``POST /api/v1/jobs/{id}/verify`` (cmd/agent/verify.go:155-208; a Go map[string]interface{})."""
        body = {
            "target_id": target_id,
            "expected_fingerprint": expected,
            "actual_fingerprint": actual,
            "verified": verified,
            "error": error,
        }
        url = f"{self.base}/api/v1/jobs/{job_id}/verify"
        tags = {"agent_step": "verify_report"}
        return await ctx.request(
            "POST", url, headers=self.headers, body=go_json(body), tags=tags, expected=ok_200
        )
