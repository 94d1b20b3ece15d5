"""/ready answers 503 {"status":"db_unavailable"} once PostgreSQL refuses the server; /health stays 200."""

from __future__ import annotations

import time

import psycopg


def test_ready_503_when_database_refuses(contract_target, start_target):
    target = start_target(contract_target.flavour, "dbdown")
    dbname = target.dsn.split("/")[-1].split("?")[0]
    admin = target.dsn.replace(f"/{dbname}?", "/postgres?")
    with target.client(auth=False) as anon:
        assert anon.get("/ready").status_code == 200
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,)
            )
        try:
            deadline = time.monotonic() + 10
            r = anon.get("/ready")
            while r.status_code != 503 and time.monotonic() < deadline:
                r = anon.get("/ready")  # a pool may hand out one already-dead connection first
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "db_unavailable"
            assert set(body) == {"error", "status"}
            assert anon.get("/health").status_code == 200
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 10
        while anon.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "server did not recover after the database came back"
