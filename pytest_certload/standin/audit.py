"""certctl's per-request database work after authentication: the audit row and the RBAC gate.

certctl's audit middleware (after auth, before the router) hashes the request body, lets the
request run, and then — after the response is written — inserts one ``audit_events`` row from an
unbounded goroutine (action ``api_<method>``, resource ``api`` / the path, details method, path,
body hash, status, latency; actor = the key's name). 404s, 405s and 403s are audited; 401s and
429s are not (answered earlier), nor the ``/health``, ``/ready``, ``/api/v1/version`` prefixes.
Its per-route RBAC gate runs the actor's effective-permission query, uncached, before every
gated handler. :class:`AuditTrail` and :class:`PermissionGate` do the same with the same SQL
(:mod:`.repository.audit`), an asyncio task standing in for the goroutine.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import psycopg
from aiohttp import web

from pytest_certload.standin.audit_schema import ADMIN_KEY_NAME, DEFAULT_TENANT
from pytest_certload.standin.pool import PoolSlot
from pytest_certload.standin.repository import audit as repo
from pytest_certload.standin.repository import generate_id
from pytest_certload.standin.request_body import read_limited
from pytest_certload.standin.responses import json_response

log = logging.getLogger("certload.standin.audit")

EXCLUDED_PREFIXES = ("/health", "/ready", "/api/v1/version")  # certctl's audit exclusions (prefixes)

#: route name -> the permission certctl's router gates it on (router.go); absent: no gate (ACME)
ROUTE_PERMISSIONS = {
    "list_certificates": "cert.read",
    "get_certificate": "cert.read",
    "create_certificate": "cert.issue",
    "bulk_renew": "cert.issue",
    "heartbeat": "agent.heartbeat",
    "work": "agent.job.poll",
    "agent_csr": "agent.job.poll",
    "agent_pickup": "cert.read",
    "agent_job_status": "agent.job.complete",
    "update_issuer": "issuer.edit",
    "verify_deployment": "verification.run",
}


class AuditTrail:
    """One ``audit_events`` row per request that passed auth, written after the response."""

    def __init__(self, db: PoolSlot, body_limit: int, actor: str = ADMIN_KEY_NAME) -> None:
        self.db, self.body_limit, self.actor = db, body_limit, actor
        self._pending: set[asyncio.Task[None]] = set()

    async def around(
        self, request: web.Request, handler: Callable[[], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Run ``handler`` and schedule the request's audit row (unless its path is excluded)."""
        if request.path.startswith(EXCLUDED_PREFIXES):
            return await handler()
        start = time.monotonic()
        response = await handler()
        latency_ms = int((time.monotonic() - start) * 1000)
        body = request.get("body_read")
        if body is None:  # the handler did not read it (certctl's middleware reads it first)
            body, truncated = await read_limited(request, self.body_limit)
            body = b"" if truncated else body
        details = {
            "method": request.method,
            "path": request.path,
            "body_hash": hashlib.sha256(body).hexdigest() if body else "",
            "status": response.status,
            "latency_ms": latency_ms,
        }
        task = asyncio.create_task(self._insert(request.method, request.path, details))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return response

    async def _insert(self, method: str, path: str, details: dict[str, object]) -> None:
        try:
            async with self.db.connection() as conn:
                await repo.insert_event(
                    conn, event_id=generate_id("audit"), actor=self.actor, actor_type="User",
                    action=f"api_{method.lower()}", resource_type="api", resource_id=path,
                    details=details, timestamp=datetime.now(UTC),
                )  # fmt: skip
        except (psycopg.Error, OSError, RuntimeError) as exc:  # certctl logs and drops the event
            log.error("failed to record API audit event: %s (%s %s)", exc, method, path)

    async def flush(self) -> None:
        """Wait for the audit rows still being written (certctl's Flush at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


class PermissionGate:
    """certctl's rbacGate: the effective-permission query before each gated handler."""

    def __init__(self, db: PoolSlot, actor: str = ADMIN_KEY_NAME) -> None:
        self.db, self.actor = db, actor

    async def refuse(self, route_name: str) -> web.Response | None:
        """403/500 as certctl's gate answers them, or None when the actor holds the permission."""
        permission = ROUTE_PERMISSIONS.get(route_name)
        if permission is None:
            return None
        try:
            async with self.db.connection() as conn:
                held = await repo.effective_permissions(conn, self.actor, "APIKey", DEFAULT_TENANT)
        except (psycopg.Error, OSError):
            return json_response(500, {"error": "Internal error"})
        if not any(name == permission and scope == "global" for name, scope, _ in held):
            return json_response(403, {"error": "Insufficient permissions"})
        return None


async def record_event(
    conn: psycopg.AsyncConnection,
    actor: str,
    actor_type: str,
    action: str,
    resource_type: str,
    resource_id: str,
    details: dict[str, object],
) -> None:
    """A service's own audit row (certctl's AuditService.RecordEvent / RecordEventWithTx).

    On ``conn``'s open transaction when there is one (certctl's ACME writes hold the chain-head
    lock until their commit), else in its own. The caller decides whether a failure matters:
    certctl logs stand-alone failures and aborts transactional ones.
    """
    await repo.insert_event(
        conn, event_id=generate_id("audit"), actor=actor, actor_type=actor_type, action=action,
        resource_type=resource_type, resource_id=resource_id, details=details, timestamp=datetime.now(UTC),
    )  # fmt: skip


async def record_event_logged(conn: psycopg.AsyncConnection, *args: object) -> None:
    """:func:`record_event` whose failure is logged and dropped, as certctl's stand-alone callers do."""
    try:
        await record_event(conn, *args)  # type: ignore[arg-type]
    except psycopg.Error as exc:
        log.error("failed to record audit event: %s", exc)


async def csr_audit_rows(conn: psycopg.AsyncConnection, agent_id: str, cert_id: str, job_id: str) -> None:
    """The service rows of an agent CSR: ``renewal_job_completed`` (renewal path) and ``csr_submitted``."""
    if job_id:
        details = {"job_id": job_id, "agent_id": agent_id}
        await record_event_logged(
            conn, "system", "System", "renewal_job_completed", "certificate", cert_id, details
        )
    await record_event_logged(
        conn, agent_id, "Agent", "csr_submitted", "certificate", cert_id, {"job_id": job_id}
    )
