"""The audit row per request, on the stand-in and the real certctl alike.

certctl's audit middleware sits after auth: a request refused with 401 leaves no row, an
authenticated request to an unknown path leaves one (``api_get``, resource ``api`` / the path,
actor = the key's name), ``/health`` leaves none; the hash-chain trigger links every new row to the
previous one through ``audit_chain_head``. The row is written after the response, so each check
waits for it with a bounded deadline.
"""

from __future__ import annotations

import hashlib
import time

import psycopg

from pytest_certload.standin.audit import ROUTE_PERMISSIONS
from pytest_certload.standin.audit_schema import ADMIN_PERMISSIONS
from pytest_certload.standin.config import ROUTES
from tests.contract.conftest import unique

DEADLINE_S = 5.0


def audit_rows(db: psycopg.Connection) -> int:
    return db.execute("SELECT count(*) FROM audit_events").fetchone()[0]


def wait_for_rows(db: psycopg.Connection, at_least: int) -> int:
    deadline = time.monotonic() + DEADLINE_S
    while (n := audit_rows(db)) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)  # poll interval of a bounded wait: the row is inserted after the response
    return n


def test_authenticated_request_writes_one_chained_row(api, db, contract_target) -> None:
    path = f"/api/v1/{unique('no-such-route')}"
    before = audit_rows(db)
    head_before = db.execute("SELECT row_hash FROM audit_chain_head WHERE id = 1").fetchone()[0]
    assert api.get(path).status_code == 404
    assert wait_for_rows(db, before + 1) == before + 1
    row = db.execute(
        "SELECT actor, actor_type, action, resource_type, details, prev_hash, row_hash, id"
        " FROM audit_events WHERE resource_id = %s",
        (path,),
    ).fetchone()
    actor, actor_type, action, resource_type, details, prev_hash, row_hash, _ = row
    assert (actor, actor_type, action, resource_type) == ("loadtest", "User", "api_get", "api")
    assert details["path"] == path and details["status"] == 404 and details["method"] == "GET"
    assert details["body_hash"] == ""
    head = db.execute("SELECT row_hash FROM audit_chain_head WHERE id = 1").fetchone()[0]
    assert len(row_hash) == 64
    assert prev_hash == (head_before or None)  # chained onto the previous head ('' = genesis)
    assert head == row_hash  # and the trigger moved the head to this row


def test_body_hash_is_the_sha256_of_the_request_body(api, db, cert_body) -> None:
    body = cert_body()
    r = api.post("/api/v1/certificates", json=body)
    assert r.status_code == 201, r.text
    sent = r.request.content
    deadline = time.monotonic() + DEADLINE_S
    row = None
    while row is None and time.monotonic() < deadline:
        row = db.execute(
            "SELECT details FROM audit_events WHERE action = 'api_post' AND details->>'body_hash' = %s",
            (hashlib.sha256(sent).hexdigest(),),
        ).fetchone()
        time.sleep(0.02)  # poll interval of a bounded wait
    assert row is not None, "no api_post audit row carries the body's SHA-256"
    assert row[0]["status"] == 201


def test_refused_and_probe_requests_write_no_row(anon, api, db) -> None:
    """401, /health and /ready leave no row; an audited request sent after them is the only new one."""
    before = audit_rows(db)
    assert anon.get("/api/v1/certificates").status_code == 401
    assert anon.get("/health").status_code == 200
    assert anon.get("/ready").status_code == 200
    path = f"/api/v1/{unique('after-unaudited')}"
    assert api.get(path).status_code == 404
    assert wait_for_rows(db, before + 1) == before + 1
    newest = db.execute(
        "SELECT resource_id FROM audit_events ORDER BY timestamp DESC, id DESC LIMIT 1"
    ).fetchone()
    assert newest == (path,)


def test_every_api_route_of_the_stand_in_has_certctls_rbac_gate() -> None:
    """A new /api/v1 route needs its permission in audit.ROUTE_PERMISSIONS (certctl's router.go gate),
    held by the stand-in's admin role; only the probes and ACME (protocol endpoints) go ungated."""
    ungated = [r for r in ROUTES if r not in ROUTE_PERMISSIONS]
    assert all(r in ("health", "ready") or r.startswith("acme_") for r in ungated), ungated
    assert set(ROUTE_PERMISSIONS) <= set(ROUTES)
    assert set(ROUTE_PERMISSIONS.values()) <= set(ADMIN_PERMISSIONS)
