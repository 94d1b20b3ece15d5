"""The agent-bound fleet (seeding/agent_bound.py) against real PostgreSQL: rows, bindings, helpers.

Runs on the stand-in's schema always and on certctl's migrations when CERTLOAD_CERTCTL_MIGRATIONS
is set, like test_seeding_db.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from schema_db import STANDIN_SCHEMA, external_stack, scalar  # this directory is on sys.path

from pytest_certload.seeding.agent_bound import (
    agent_bound_ids,
    bind_targets_to_sidecar,
    refresh_agents,
    seed_agent_bound_fleet,
)
from pytest_certload.seeding.errors import SeedingError, SeedVerificationError
from pytest_certload.seeding.seeder import FleetSeeder

AGENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")  # certctl's agent key-file rule for certificate ids


@pytest.fixture
def db(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def test_seeds_bound_rows_certctl_routes_to_agents(db: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    report = seed_agent_bound_fleet(db, 1000, now=now)
    assert [t.present for t in report.tables] == [1000, 1000, 1000] and report.mappings_inserted == 1000
    assert (report.agent_ids[0], report.target_ids[-1], report.certificate_ids[9]) == (
        "ag-bound-00001", "tgt-bound-01000", "mc-bound-00010",
    )  # fmt: skip
    # certctl's work poll, branch 3 (job.go:540-554): certificate k reaches agent k and no other
    bound = db.execute(
        "SELECT mc.id, dt.agent_id FROM managed_certificates mc"
        " JOIN certificate_target_mappings m ON m.certificate_id = mc.id"
        " JOIN deployment_targets dt ON dt.id = m.target_id WHERE starts_with(mc.id, 'mc-bound-')"
    ).fetchall()
    assert sorted(bound) == [(f"mc-bound-{k:05d}", f"ag-bound-{k:05d}") for k in range(1, 1001)]
    assert db.execute(
        "SELECT array_agg(DISTINCT status), min(last_heartbeat_at) FROM agents"
        " WHERE starts_with(id, 'ag-bound-')"
    ).fetchone()[0] == ["Online"]
    assert scalar(
        db, "SELECT min(last_heartbeat_at) FROM agents WHERE starts_with(id, 'ag-bound-')"
    ) >= now - (timedelta(seconds=1))
    config, encrypted, type_ = db.execute(
        "SELECT config, encrypted_config, type FROM deployment_targets WHERE id = 'tgt-bound-00042'"
    ).fetchone()
    assert encrypted is None and type_ == "NGINX"
    assert config["key_path"] == "/var/lib/certload/agents/ag-bound-00042/key.pem"
    certs = db.execute(
        "SELECT id, issuer_id, certificate_profile_id, status, expires_at FROM managed_certificates"
        " WHERE starts_with(id, 'mc-bound-')"
    ).fetchall()
    assert all(AGENT_ID.match(c[0]) for c in certs)
    assert {c[1:4] for c in certs} == {("iss-local", None, "Active")}
    assert min(c[4] for c in certs) > now + timedelta(days=31)  # outside certctl's renewal scan


def test_seeding_again_is_a_no_op_and_a_larger_count_grows(db: psycopg.Connection) -> None:
    seed_agent_bound_fleet(db, 200)
    again = seed_agent_bound_fleet(db, 200)
    assert [t.inserted for t in again.tables] == [0, 0, 0] and again.mappings_inserted == 0
    grown = seed_agent_bound_fleet(db, 500)
    assert [t.inserted for t in grown.tables] == [300, 300, 300] and grown.mappings_inserted == 300
    assert (
        scalar(
            db, "SELECT count(*) FROM certificate_target_mappings WHERE starts_with(target_id, 'tgt-bound-')"
        )
        == 500
    )


def test_a_clash_rolls_back_every_table(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO agents (id, name, hostname, api_key_hash)"
        " VALUES ('other', 'bound-agent-00003', 'h', 'x')"
    )
    with pytest.raises(SeedVerificationError, match="ag-bound-00003"):
        seed_agent_bound_fleet(db, 10)
    for table in ("agents", "deployment_targets", "managed_certificates"):
        assert scalar(db, f"SELECT count(*) FROM {table} WHERE id LIKE '%%bound-%%'") == 0


def test_bind_targets_to_sidecar_and_refresh_agents(db: psycopg.Connection) -> None:
    agents, targets, _ = agent_bound_ids(20)
    seed_agent_bound_fleet(db, 20)
    db.execute("UPDATE agents SET status = 'Offline', last_heartbeat_at = now() - interval '1 hour'")
    assert refresh_agents(db, agents[:5]) == 5
    assert (
        scalar(
            db,
            "SELECT count(*) FROM agents WHERE status = 'Online'"
            " AND last_heartbeat_at > now() - interval '1 minute'",
        )
        == 5
    )

    def sidecar(target_id: str) -> dict:
        return {"cert_path": f"/srv/{target_id}/cert.pem", "key_path": f"/srv/{target_id}/key.pem",
                "reload_command": "nginx -s reload", "validate_command": "nginx -t"}  # fmt: skip

    assert bind_targets_to_sidecar(db, targets[:3], sidecar) == 3
    rows = dict(
        db.execute("SELECT id, config FROM deployment_targets WHERE id = ANY(%s)", (targets[:4],)).fetchall()
    )
    assert rows[targets[2]] == sidecar(targets[2])
    assert rows[targets[3]]["cert_path"].startswith("/var/lib/certload/agents/")  # untouched
    with pytest.raises(ValueError, match="1 of 2 target ids do not exist"):
        bind_targets_to_sidecar(db, [targets[4], "tgt-nope"], {"cert_path": "/x"})
    assert scalar(
        db, "SELECT config->>'cert_path' FROM deployment_targets WHERE id = %s", targets[4]
    ).startswith("/var/lib/certload/")  # rolled back


@pytest.mark.parametrize("dsn", [STANDIN_SCHEMA], indirect=True)
def test_seeder_agent_bound_is_cached_and_needs_sql(dsn: str) -> None:
    stack = external_stack(dsn, owned=True)
    seeder = FleetSeeder(stack)
    first = seeder.agent_bound(50)
    assert seeder.agent_bound(50) is first and first.count == 50
    assert seeder("agent_bound_agents", count=50).present == 50  # the count override, same rows
    with pytest.raises(SeedingError, match="needs SQL seeding"):
        FleetSeeder(stack, via="api").agent_bound(10)


@pytest.mark.parametrize("dsn", [STANDIN_SCHEMA], indirect=True)
def test_twenty_thousand_in_one_go(db: psycopg.Connection) -> None:
    """The largest fleet issue 13 names (its seeding time: benchmarks/bench_seeding.py)."""
    report = seed_agent_bound_fleet(db, 20_000)
    assert [t.present for t in report.tables] == [20_000] * 3 and report.mappings_inserted == 20_000
