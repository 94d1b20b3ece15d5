"""``/api/v1/agents/{id}/...``: the agent side of certctl (heartbeat, work poll).

The agent work loop lands here as it grows (CSR submission, certificate pickup, job status). Every
handler first loads the agent the way certctl's AgentService does, because an agent row certctl
cannot scan turns into certctl's 500, not a 404; the SQL is in :mod:`.repository.agents` and
:mod:`.repository.jobs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from aiohttp import web

from pytest_certload.standin.gocompat import DecodeError, as_string
from pytest_certload.standin.pool import PoolSlot
from pytest_certload.standin.repository import ScanError, agents, jobs
from pytest_certload.standin.repository import certificates as cert_repo
from pytest_certload.standin.request_body import decode_struct
from pytest_certload.standin.responses import handler_error, json_response

HEARTBEAT_FIELDS = ("version", "hostname", "os", "architecture", "ip_address")


def agent_id_of(request: web.Request) -> str:
    """The ``{id}`` of /api/v1/agents/{id}/..., read from the decoded path as certctl's handler does."""
    return request.path.removeprefix("/api/v1/agents/").split("/")[0]


async def work_item(conn: psycopg.AsyncConnection, job: jobs.PendingJob) -> dict[str, Any]:
    """A job as certctl's WorkItem: a CSR job carries the subject, a deployment job its target."""
    item: dict[str, Any] = {"id": job.id, "type": job.type, "certificate_id": job.certificate_id or ""}
    if job.status == "AwaitingCSR" and job.certificate_id:
        subject = await cert_repo.csr_subject(conn, job.certificate_id)
        if subject is not None:
            common_name, sans = subject
            if common_name:
                item["common_name"] = common_name
            if sans:
                item["sans"] = sans
    if job.target_id:
        item["target_id"] = job.target_id
        target = await agents.deployment_target(conn, job.target_id)
        if target is not None:
            target_type, target_config = target
            if target_type:
                item["target_type"] = target_type
            if target_config is not None:
                item["target_config"] = target_config
    item["status"] = job.status
    return item


@dataclass(frozen=True)
class AgentHandlers:
    """certctl's AgentHandler for the routes an agent calls."""

    db: PoolSlot
    max_body_size: int  # certctl's MaxBytesReader limit (--max-body-size)

    async def heartbeat(self, request: web.Request, rid: str) -> web.StreamResponse:
        agent_id = agent_id_of(request)
        metadata: dict[str, str] | None = None
        try:
            raw = await decode_struct(request, HEARTBEAT_FIELDS, self.max_body_size)
            fields = {k: as_string(raw.get(k)) for k in HEARTBEAT_FIELDS}
            if any(fields.values()):
                metadata = fields
        except DecodeError:
            metadata = None  # certctl ignores an undecodable heartbeat body
        try:
            async with self.db.connection() as conn:
                agent = await agents.load_agent(conn, agent_id)
                if agent is None:
                    # certctl HEAD wraps sql.ErrNoRows twice, so "not found" surfaces as a 500.
                    return handler_error(500, "Failed to record heartbeat", rid)
                status, retired_at = agent
                if retired_at is not None:
                    return handler_error(410, "Agent has been retired", rid)
                if not await agents.record_heartbeat(conn, agent_id, metadata):
                    return handler_error(404, "Agent not found", rid)
                if status != "Online":
                    await agents.mark_online(conn, agent_id)
        except (psycopg.Error, OSError):
            return handler_error(500, "Failed to record heartbeat", rid)
        return json_response(200, {"status": "heartbeat_recorded"})

    async def work(self, request: web.Request, rid: str) -> web.StreamResponse:
        agent_id = agent_id_of(request)
        try:
            async with self.db.connection() as conn:
                if await agents.load_agent(conn, agent_id) is None:
                    return handler_error(500, "Failed to get pending work", rid)
                pending = await jobs.claim_pending_jobs(conn, agent_id)
                items = [await work_item(conn, job) for job in pending]
        except (ScanError, psycopg.Error, OSError):
            return handler_error(500, "Failed to get pending work", rid)
        return json_response(200, {"count": len(items), "jobs": items})
