"""``/api/v1/agents/{id}/...``: the agent side of certctl's work loop.

Heartbeat, work poll, CSR submission, certificate pickup and job status, as certctl's AgentHandler
answers them (internal/api/handler/agents.go:190-425). Heartbeat, poll, CSR and pickup first load
the agent the way certctl's AgentService does, because an agent row certctl cannot scan (or none)
is certctl's 500 (404 for pickup), never a 404 of its own; job status looks the job up only. None
of these checks that the agent is bound to the certificate or job (certctl does not either). The
CSR's signing is :mod:`.agent_csr`; the SQL is in :mod:`.repository`.

Not modelled: certctl's scheduler, which also moves these rows (job processor claiming Pending
deployment jobs, failed-job retry, AwaitingCSR timeout, offline-agent reaper, agent health sweep).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiohttp import web

from pytest_certload.standin.agent_csr import CSRFailed, CSRService
from pytest_certload.standin.audit import csr_audit_rows, record_event_logged
from pytest_certload.standin.gocompat import DecodeError, as_bool, as_string, go_time
from pytest_certload.standin.issuers import LocalIssuer
from pytest_certload.standin.pool import PoolSlot
from pytest_certload.standin.repository import ScanError, agents, jobs
from pytest_certload.standin.repository import certificates as cert_repo
from pytest_certload.standin.request_body import decode_struct
from pytest_certload.standin.responses import handler_error, json_response

HEARTBEAT_FIELDS = ("version", "hostname", "os", "architecture", "ip_address")
VERIFY_FIELDS = ("target_id", "expected_fingerprint", "actual_fingerprint", "verified", "error")
CSR_PREFIX = "-----BEGIN CERTIFICATE REQUEST-----"


def agent_id_of(request: web.Request) -> str:
    """The ``{id}`` of /api/v1/agents/{id}/..., read from the decoded path as certctl's handler does."""
    return request.path.removeprefix("/api/v1/agents/").split("/")[0]


async def work_item(conn: psycopg.AsyncConnection, job: jobs.PendingJob) -> dict[str, Any]:
    """A job as certctl's WorkItem: a CSR job carries the subject, a deployment job its target."""
    item: dict[str, Any] = {"id": job.id, "type": job.type, "certificate_id": job.certificate_id or ""}
    if job.status == "AwaitingCSR":
        try:  # certctl's certRepo.Get (service/agent.go:491-497): a row it cannot scan adds nothing
            cert = await cert_repo.find_certificate(conn, job.certificate_id)
        except ScanError:
            cert = None
        if cert is not None:
            if cert["common_name"]:
                item["common_name"] = cert["common_name"]
            if cert["sans"]:
                item["sans"] = cert["sans"]
    if job.target_id is not None:  # *string with omitempty: "" is still sent
        item["target_id"] = job.target_id
    if job.target_id:
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
    issuer: LocalIssuer  # iss-local, shared with ACME finalize

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
                snapshot = await agents.agent_snapshot(conn, agent_id)
                if snapshot is None:
                    # certctl HEAD wraps sql.ErrNoRows twice, so "not found" surfaces as a 500.
                    return handler_error(500, "Failed to record heartbeat", rid)
                if snapshot["retired_at"] is not None:
                    return handler_error(410, "Agent has been retired", rid)
                if not await agents.record_heartbeat(conn, agent_id, metadata):
                    return handler_error(404, "Agent not found", rid)
                if snapshot["status"] != "Online":  # service/agent.go:124-130: the pre-read row, Online
                    await agents.write_back_online(conn, snapshot)
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

    async def csr(self, request: web.Request, rid: str) -> web.StreamResponse:
        """AgentCSRSubmit (handler/agents.go:256-311): 400 for the body, 500 for every service error."""
        agent_id = agent_id_of(request)
        try:
            raw = await decode_struct(request, ("csr_pem", "certificate_id"), self.max_body_size)
            csr_pem, cert_id = as_string(raw.get("csr_pem")), as_string(raw.get("certificate_id"))
        except DecodeError:
            return handler_error(400, "Invalid request body", rid)
        if csr_pem == "":  # handler/validation.go:59-67
            return handler_error(400, "csr_pem is required", rid)
        if not csr_pem.strip().startswith(CSR_PREFIX):
            return handler_error(400, "csr_pem must be a valid PEM-encoded certificate request", rid)
        try:
            async with self.db.connection() as conn:
                if await agents.load_agent(conn, agent_id) is None:
                    raise CSRFailed("failed to fetch agent")
                job_id = await CSRService(self.issuer).submit(conn, cert_id, csr_pem) if cert_id else ""
                await csr_audit_rows(conn, agent_id, cert_id, job_id)  # certctl's service audit rows
        except (CSRFailed, ScanError, psycopg.Error, OSError):
            return handler_error(500, "Failed to submit CSR", rid)
        return json_response(202, {"status": "csr_signed" if cert_id else "csr_accepted"})

    async def pickup(self, request: web.Request, rid: str) -> web.StreamResponse:
        """AgentCertificatePickup (handler/agents.go:316-346, service/agent.go:258-291): the chain of
        the version created last; every error (unknown agent, no version) is the same 404."""
        agent_id, _, cert_id = request.path.removeprefix("/api/v1/agents/").split("/")[:3]
        try:
            async with self.db.connection() as conn:
                if await agents.load_agent(conn, agent_id) is None:
                    raise LookupError(agent_id)
                versions = await cert_repo.version_chains(conn, cert_id)
                if versions:  # service/agent.go:279-284
                    await record_event_logged(
                        conn, agent_id, "Agent", "certificate_retrieved", "certificate", cert_id, {}
                    )
        except (LookupError, psycopg.Error, OSError):
            versions = []
        if not versions:
            return handler_error(404, "Certificate not found or not ready", rid)
        # newest first (the query's ORDER BY created_at DESC): what certctl's max-created_at loop picks
        return json_response(200, {"certificate_pem": versions[0][0]})

    async def job_status(self, request: web.Request, rid: str) -> web.StreamResponse:
        """AgentReportJobStatus (handler/agents.go:385-425, service/agent.go:314-334): any status
        string is stored as sent, ``error`` becomes last_error; the agent is not looked up."""
        job_id = request.path.removeprefix("/api/v1/agents/").split("/")[2]
        try:
            raw = await decode_struct(request, ("status", "error"), self.max_body_size)
            status, error = as_string(raw.get("status")), as_string(raw.get("error"))
        except DecodeError:
            return handler_error(400, "Invalid request body", rid)
        if status == "":
            return handler_error(400, "Status is required", rid)
        try:
            async with self.db.connection() as conn:
                if await jobs.find_job(conn, job_id) is None:
                    raise LookupError(job_id)
                if not await jobs.set_job_status(conn, job_id, status, error):
                    raise LookupError(job_id)
                await record_event_logged(  # service/agent.go:326-331
                    conn, agent_id_of(request), "Agent", "job_status_reported", "job", job_id,
                    {"status": status, "error": error},
                )  # fmt: skip
        except (LookupError, ScanError, psycopg.Error, OSError):
            return handler_error(500, "Failed to update job status", rid)
        return json_response(200, {"status": "updated"})

    async def verify(self, request: web.Request, rid: str) -> web.StreamResponse:
        """VerifyDeployment (internal/api/handler/verification.go:48-110): the agent's TLS probe result.

        certctl fetches the job and writes it back with its full-row Update
        (internal/service/verification.go:47-77), whose column list has no verification column
        (internal/repository/postgres/job.go:101-118): the result is never stored. The stand-in
        does the same write (agent_defects ``verification-not-stored``).
        """
        job_id = request.path.removeprefix("/api/v1/jobs/").removesuffix("/verify")
        try:
            raw = await decode_struct(request, VERIFY_FIELDS, self.max_body_size)
            fields = {k: as_string(raw.get(k)) for k in VERIFY_FIELDS if k != "verified"}
            try:
                verified = as_bool(raw.get("verified"))
            except DecodeError:
                raise DecodeError(
                    "json: cannot unmarshal into Go struct field verified of type bool"
                ) from None
        except DecodeError as exc:
            return handler_error(400, f"Invalid request body: {exc}", rid)
        for name in ("target_id", "expected_fingerprint", "actual_fingerprint"):
            if fields[name] == "":
                return handler_error(400, f"{name} is required", rid)
        verified_at = datetime.now(UTC)
        try:
            async with self.db.connection() as conn:
                if await jobs.find_job(conn, job_id) is None:
                    raise LookupError("job not found: repository: row not found")
                await jobs.rewrite_job(conn, job_id)
                action = "job_verification_failed" if fields["error"] else "job_verification_success"
                await record_event_logged(  # service/verification.go:80-96
                    conn, "agent", "Agent", action, "job", job_id, {**fields, "verified": verified}
                )
        except (LookupError, ScanError, psycopg.Error, OSError) as exc:
            message = f"Failed to record verification result: failed to fetch job for verification: {exc}"
            return handler_error(500, message, rid)
        return json_response(
            200, {"job_id": job_id, "verified": verified, "verified_at": go_time(verified_at)}
        )
