"""``jobs``: the queue between the control plane and the agents (certctl's JobRepository).

Bulk renewal enqueues here and agents claim from here; CSR submission completes jobs and
enqueues deployments here, and agents' status reports land here. Claims use ``FOR UPDATE SKIP
LOCKED`` as certctl does (internal/repository/postgres/job.go:459-608), so concurrent polls by one
agent never hand out a deployment twice. Every other statement is a single autocommit statement,
as certctl runs them (no transaction around a CSR's job updates).
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


JOB_SELECT = (
    "SELECT id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts, last_error,"
    " scheduled_at, started_at, completed_at, created_at FROM jobs"
)


class JobRow(NamedTuple):
    """A jobs row as certctl's scanJob reads it (job.go:688-701)."""

    id: str
    type: str
    certificate_id: str
    target_id: str | None
    agent_id: str | None
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    scheduled_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime


def _scan_job(row: tuple[Any, ...]) -> JobRow:
    if row[2] is None or row[9] is None:
        raise ScanError("job row with NULL certificate_id or scheduled_at")
    return JobRow(*row)


async def find_job(conn: psycopg.AsyncConnection, job_id: str) -> JobRow | None:
    """certctl's JobRepository.Get (job.go:58-75); ScanError where its scanner fails."""
    row = await (await conn.execute(JOB_SELECT + " WHERE id = %s", (job_id,))).fetchone()
    return None if row is None else _scan_job(row)


async def jobs_of_certificate(conn: psycopg.AsyncConnection, cert_id: str) -> list[JobRow]:
    """certctl's ListByCertificate (job.go:187-215): every job of the certificate, newest first."""
    rows = await (
        await conn.execute(JOB_SELECT + " WHERE certificate_id = %s ORDER BY created_at DESC", (cert_id,))
    ).fetchall()
    return [_scan_job(r) for r in rows]


async def set_job_status(conn: psycopg.AsyncConnection, job_id: str, status: str, error: str = "") -> bool:
    """certctl's UpdateStatus (job.go:219-243): status verbatim, ``last_error`` NULL when empty.

    ``started_at``, ``completed_at`` and ``attempts`` are left alone, as certctl leaves them.
    False when no row has the id.
    """
    cur = await conn.execute(
        "UPDATE jobs SET status = %s, last_error = %s WHERE id = %s", (status, error or None, job_id)
    )
    return cur.rowcount != 0


async def enqueue_deployment_job(
    conn: psycopg.AsyncConnection, cert_id: str, target_id: str, agent_id: str | None
) -> str:
    """A Pending Deployment job for one mapped target (renewal.go:858-881 through job.go:78-99)."""
    job_id = generate_id("job")
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO jobs (id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts,"
        " last_error, scheduled_at, started_at, completed_at, created_at)"
        " VALUES (%s, 'Deployment', %s, %s, %s, 'Pending', 0, 3, NULL, %s, NULL, NULL, %s)",
        (job_id, cert_id, target_id, agent_id, now, now),
    )
    return job_id


async def rewrite_job(conn: psycopg.AsyncConnection, job_id: str) -> None:
    """certctl's full-row JobRepository.Update (job.go:101-118) with the values it just read: a row
    write that changes nothing (its column list has no verification column)."""
    await conn.execute("UPDATE jobs SET status = status WHERE id = %s", (job_id,))
