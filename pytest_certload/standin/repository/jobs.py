"""``jobs``: the queue between the control plane and the agents (certctl's JobRepository).

Bulk renewal enqueues here and agents claim from here; the agent work loop's job status updates
belong here too. Claims use ``FOR UPDATE SKIP LOCKED`` as certctl does, so concurrent polls by
one agent never hand out a job twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg

from pytest_certload.standin.repository import ScanError, generate_id

INSERT_JOB_SQL = """
    INSERT INTO jobs (
        id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts, last_error,
        scheduled_at, started_at, completed_at, created_at
    ) VALUES (%s, %s, %s, NULL, NULL, 'AwaitingCSR', 0, 3, NULL, %s, NULL, NULL, %s)"""
JOB_COLUMNS = "j.id, j.type, j.certificate_id, j.target_id, j.status, j.scheduled_at"
DIRECT_JOBS_SQL = (
    f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.agent_id = %s AND j.status = 'Pending'"
    " AND j.type = 'Deployment' ORDER BY j.created_at ASC FOR UPDATE SKIP LOCKED"
)
TARGET_JOBS_SQL = (
    f"SELECT {JOB_COLUMNS} FROM jobs j JOIN deployment_targets dt ON j.target_id = dt.id"
    " WHERE j.agent_id IS NULL AND j.status = 'Pending' AND j.type = 'Deployment'"
    " AND dt.agent_id = %s ORDER BY j.created_at ASC FOR UPDATE OF j SKIP LOCKED"
)
CSR_JOBS_SQL = f"""
    SELECT {JOB_COLUMNS} FROM jobs j
    WHERE j.status = 'AwaitingCSR' AND j.type IN ('Renewal', 'Issuance')
      AND EXISTS (SELECT 1 FROM certificate_target_mappings ctm
                  JOIN deployment_targets dt ON ctm.target_id = dt.id
                  WHERE ctm.certificate_id = j.certificate_id AND dt.agent_id = %s)
    ORDER BY j.created_at ASC FOR UPDATE SKIP LOCKED"""


class PendingJob(NamedTuple):
    """A job handed to an agent; ``status`` is what it is after the claim."""

    id: str
    type: str
    certificate_id: str
    target_id: str | None
    status: str
    scheduled_at: datetime


async def enqueue_csr_job(conn: psycopg.AsyncConnection, cert_id: str, job_type: str) -> str:
    """A Renewal/Issuance job waiting for the agent's CSR; returns its id."""
    job_id = generate_id("job")
    now = datetime.now(UTC)
    await conn.execute(INSERT_JOB_SQL, (job_id, job_type, cert_id, now, now))
    return job_id


async def claim_pending_jobs(conn: psycopg.AsyncConnection, agent_id: str) -> list[PendingJob]:
    """certctl's GetPendingWork in one transaction: the agent's deployment jobs (assigned to it, or
    unassigned on one of its targets) become Running; CSR jobs for its certificates are listed as is.
    """
    async with conn.transaction():
        direct = await _fetch(conn, DIRECT_JOBS_SQL, agent_id)
        deployments = direct + await _fetch(conn, TARGET_JOBS_SQL, agent_id)
        csr = await _fetch(conn, CSR_JOBS_SQL, agent_id)
        if any(r[2] is None or r[5] is None for r in deployments + csr):
            # certctl's scanJob reads certificate_id and scheduled_at into non-pointer fields
            raise ScanError("job row with NULL certificate_id or scheduled_at")
        claimed = [r[0] for r in deployments]
        if claimed:
            await conn.execute("UPDATE jobs SET status = 'Running' WHERE id = ANY(%s)", (claimed,))
    return [PendingJob(*r[:4], "Running", r[5]) for r in deployments] + [PendingJob(*r) for r in csr]


async def _fetch(conn: psycopg.AsyncConnection, sql: str, agent_id: str) -> list[tuple[Any, ...]]:
    return await (await conn.execute(sql, (agent_id,))).fetchall()
