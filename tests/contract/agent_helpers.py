"""Helpers of the agent work-loop contract tests (test_agent_work.py, test_agent_divergences.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from pytest_certload.agents.csr_job import build_csr, new_key
from tests.contract.conftest import unique


def csr_pem(common_name: str, sans: list[str]) -> str:
    """What certctl's agent sends (cmd/agent/poll.go:220-236), built as the simulated agents build it."""
    return build_csr(new_key()[0], common_name, sans)


def bind_certificate(
    api, db: psycopg.Connection, agent_id: str, cert_body, **cert_fields
) -> tuple[str, dict]:
    """One SQL-seeded NGINX target of ``agent_id`` and a certificate (expiring in 60 days) mapped to it."""
    target_id = unique("tgt-contract")
    db.execute(
        "INSERT INTO deployment_targets (id, name, type, agent_id, config) VALUES (%s, %s, 'NGINX', %s, %s)",
        (target_id, target_id, agent_id, '{"cert_path": "/tmp/c.pem", "key_path": "/tmp/k.pem"}'),
    )
    expires = (datetime.now(UTC) + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = api.post("/api/v1/certificates", json=cert_body(expires_at=expires, **cert_fields))
    assert r.status_code == 201, r.text
    cert = r.json()
    db.execute(
        "INSERT INTO certificate_target_mappings (certificate_id, target_id) VALUES (%s, %s)",
        (cert["id"], target_id),
    )
    return target_id, cert


def awaiting_job(db: psycopg.Connection, cert_id: str, age_s: int = 0) -> str:
    """An AwaitingCSR Renewal job as bulk-renew makes it, created ``age_s`` seconds ago."""
    job_id = unique("job-contract")
    db.execute(
        "INSERT INTO jobs (id, type, certificate_id, status, attempts, max_attempts, scheduled_at,"
        " created_at) VALUES (%s, 'Renewal', %s, 'AwaitingCSR', 0, 3, now(),"
        " now() - %s * interval '1 second')",
        (job_id, cert_id, age_s),
    )
    return job_id


def job_row(db: psycopg.Connection, job_id: str) -> tuple:
    return db.execute(
        "SELECT status, last_error, attempts, started_at, completed_at FROM jobs WHERE id = %s", (job_id,)
    ).fetchone()


def verify_body(**overrides) -> dict:
    body = {"target_id": "tgt-x", "expected_fingerprint": "aa", "actual_fingerprint": "aa", "verified": True}
    return body | overrides
