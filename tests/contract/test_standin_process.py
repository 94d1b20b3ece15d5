"""The stand-in as a process: configuration errors, secret hygiene, injected latency and errors,
and its schema against the schema certctl's own migrations build."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest

from pytest_certload.standin.schema import TABLES, ensure_demo_rows, ensure_schema, missing_tables


def tls_args(session) -> list[str]:
    return ["--port", "1", "--cert", str(session.tls.server_cert), "--key", str(session.tls.server_key)]


def run_standin(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CERTLOAD_STANDIN_")} | env
    return subprocess.run(
        [sys.executable, "-m", "pytest_certload.standin", *args],
        env=full_env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_missing_dsn_is_a_clear_error(contract_session):
    res = run_standin(tls_args(contract_session), {"CERTLOAD_STANDIN_TOKEN": "x"})
    assert res.returncode == 2
    assert "CERTLOAD_STANDIN_DSN is not set" in res.stderr


def test_missing_cert_file_is_a_clear_error(contract_session):
    res = run_standin(["--port", "1", "--cert", "/nonexistent.pem", "--key", "/nonexistent.key"],
                      {"CERTLOAD_STANDIN_TOKEN": "x", "CERTLOAD_STANDIN_DSN": "postgresql://x"})  # fmt: skip
    assert res.returncode == 2
    assert "--cert /nonexistent.pem: no such file" in res.stderr


@pytest.mark.parametrize("spec", ["nosuchroute=5", "heartbeat", "heartbeat=abc"])
def test_bad_latency_spec(contract_session, spec):
    res = run_standin([*tls_args(contract_session), "--latency", spec],
                      {"CERTLOAD_STANDIN_TOKEN": "x", "CERTLOAD_STANDIN_DSN": "postgresql://x"})  # fmt: skip
    assert res.returncode == 2
    assert "--latency" in res.stderr and "Traceback" not in res.stderr


def test_unreachable_database_fails_fast_without_leaking_the_password(contract_session):
    dsn = "postgresql://certload:s3cret-pw-never-shown@127.0.0.1:1/none?connect_timeout=1"
    start = time.monotonic()
    res = run_standin([*tls_args(contract_session), "--db-wait", "1"],
                      {"CERTLOAD_STANDIN_TOKEN": "tok-never-shown", "CERTLOAD_STANDIN_DSN": dsn})  # fmt: skip
    assert res.returncode == 1
    assert time.monotonic() - start < 10
    assert "database setup failed" in res.stderr
    assert "s3cret-pw-never-shown" not in res.stderr + res.stdout
    assert "tok-never-shown" not in res.stderr + res.stdout


def test_malformed_dsn_is_not_echoed(contract_session):
    dsn = "host=x password=pw-never-shown =oops"
    res = run_standin([*tls_args(contract_session), "--db-wait", "0"],
                      {"CERTLOAD_STANDIN_TOKEN": "tok", "CERTLOAD_STANDIN_DSN": dsn})  # fmt: skip
    assert res.returncode == 1
    assert "pw-never-shown" not in res.stderr + res.stdout


def test_injected_latency_and_errors(start_target):
    target = start_target(
        "stand-in", "inject",
        ("--latency", "list_certificates=300", "--error-rate", "heartbeat=1", "--error-rate", "work=0"),
    )  # fmt: skip
    with target.client() as api:
        api.get("/health")
        start = time.monotonic()
        assert api.get("/api/v1/certificates?per_page=1").status_code == 200
        assert time.monotonic() - start >= 0.3
        start = time.monotonic()
        assert api.get("/api/v1/agents/none/work").status_code == 500  # unknown agent, not injected
        assert time.monotonic() - start < 0.3
        r = api.post("/api/v1/agents/ag-x/heartbeat", json={})
        assert r.status_code == 500
        assert r.json()["message"] == "injected failure (certctl stand-in --error-rate)"
        assert r.json()["request_id"] == r.headers["x-request-id"]


def test_secrets_never_reach_logs_or_argv(contract_session, contract_target, api):
    assert api.get("/api/v1/agents/nope/work").status_code == 500  # make the server log something
    api.post("/api/v1/certificates", content=b"{bad")
    session = contract_session
    secrets_ = [s.reveal() for s in (session.token, session.pg.password, session.bootstrap)]
    logs = list((contract_session.workdir / "logs").glob("*.log"))
    assert logs
    for log in logs:
        text = log.read_text(errors="replace")
        for secret in secrets_:
            assert secret not in text, f"a secret appears in {log.name}"
    assert contract_session.commands
    for command in contract_session.commands:
        for secret in secrets_:
            assert secret not in command, "a secret appears on a command line"


def test_ensure_schema_is_idempotent(contract_session):
    dsn = contract_session.database("schema_idem")
    with psycopg.connect(dsn) as conn:
        for _ in range(2):
            ensure_schema(conn)
            ensure_demo_rows(conn)
        assert missing_tables(conn) == []
        assert conn.execute("SELECT count(*) FROM teams").fetchone()[0] == 1
        assert conn.execute("SELECT id FROM issuers").fetchall() == [("iss-local",)]


CATALOG = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relname = ANY(%(t)s) AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT c.relname, con.conname, pg_get_constraintdef(con.oid), NULL, NULL
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid WHERE c.relname = ANY(%(t)s)
UNION ALL
SELECT tablename, indexname, indexdef, NULL, NULL FROM pg_indexes WHERE tablename = ANY(%(t)s)
"""


def catalog(dsn: str) -> set[tuple]:
    with psycopg.connect(dsn) as conn:
        return set(conn.execute(CATALOG, {"t": list(TABLES)}).fetchall())


def test_schema_matches_certctl_migrations(certctl_install, contract_session):
    paths = certctl_install
    if paths is None:
        pytest.skip("real certctl not configured: set CERTLOAD_CERTCTL_BIN and CERTLOAD_CERTCTL_MIGRATIONS")
    binary, migrations = paths
    ours = contract_session.database("schema_ours")
    theirs = contract_session.database("schema_certctl")
    with psycopg.connect(ours) as conn:
        ensure_schema(conn)
    cwd = contract_session.workdir / "migrate-cwd"
    cwd.mkdir(exist_ok=True)
    tls = contract_session.tls
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CERTCTL_DATABASE_URL": theirs, "CERTCTL_DATABASE_MIGRATIONS_PATH": str(migrations),
        "CERTCTL_AUTH_SECRET": "contract-auth-secret", "CERTCTL_API_KEYS_NAMED": "x:contract-key:admin",
        "CERTCTL_AGENT_BOOTSTRAP_TOKEN": "contract-bootstrap",
        "CERTCTL_SERVER_TLS_CERT_PATH": str(tls.server_cert),
        "CERTCTL_SERVER_TLS_KEY_PATH": str(tls.server_key),
    }  # fmt: skip
    res = subprocess.run([str(binary), "--migrate-only"], env=env, cwd=cwd, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]
    mine, real = catalog(ours), catalog(theirs)
    assert mine - real == set(), "the stand-in schema has columns/constraints certctl's does not"
    assert real - mine == set(), "certctl's schema has columns/constraints the stand-in lacks"
    with psycopg.connect(theirs) as conn:  # and ensure_schema on a certctl database changes nothing
        ensure_schema(conn)
    assert catalog(theirs) == real
