"""The COPY writer, schema check and cleanup against real PostgreSQL.

Each test gets a fresh database (``dsn``, conftest.py) copied from a template holding either the
stand-in's schema (always; what CI runs) or certctl's real migrations + demo seed (when
CERTLOAD_CERTCTL_MIGRATIONS points at certctl's migrations directory).
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from schema_db import STANDIN_SCHEMA, external_stack, scalar  # this directory is on sys.path

from pytest_certload.seeding.copy_writer import cleanup_fleet, seed_fleet
from pytest_certload.seeding.errors import CleanupRefused, SchemaMismatch, SeedRefused, SeedVerificationError
from pytest_certload.seeding.fleet import load_fleet
from pytest_certload.seeding.seeder import FleetSeeder


@pytest.fixture
def db(dsn: str):
    with psycopg.connect(dsn) as conn:
        yield conn


def snapshot(conn: psycopg.Connection, table: str, prefix: str) -> str:
    return scalar(
        conn,
        f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t WHERE starts_with(t.id, %s)",
        prefix,
    )


def test_bulk_renewal_lands_with_titlecase_status_and_30_day_spread(db: psycopg.Connection) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    report = seed_fleet(db, load_fleet("bulk_renewal"), now=now)
    assert (report.table, report.expected, report.inserted, report.present) == (
        "managed_certificates",
        10_000,
        10_000,
        10_000,
    )
    where = "FROM managed_certificates WHERE starts_with(id, 'cert-loadtest-bulk-')"
    assert scalar(db, f"SELECT count(*) {where}") == 10_000
    assert scalar(db, f"SELECT array_agg(DISTINCT status) {where}") == ["Active"]
    assert scalar(db, f"SELECT count(DISTINCT date_trunc('day', expires_at - %s)) {where}", now) == 30
    lo, hi = db.execute(f"SELECT min(expires_at), max(expires_at) {where}").fetchone()
    assert now <= lo and hi < now + timedelta(days=30)
    assert scalar(db, f"SELECT count(*) {where} AND (environment IS NULL OR expires_at IS NULL)") == 0
    assert scalar(db, f"SELECT count(*) {where} AND jsonb_typeof(tags->'source') = 'string'") == 10_000
    assert (
        scalar(db, f"SELECT count(*) {where} AND sans = ARRAY[name]::text[] AND common_name = name") == 10_000
    )
    row = db.execute(
        "SELECT owner_id, team_id, issuer_id, renewal_policy_id, tags->>'batch' FROM managed_certificates"
        " WHERE id = 'cert-loadtest-bulk-00031'"
    ).fetchone()
    assert row == ("o-alice", "t-platform", "iss-local", "rp-standard", "bulk-renewal")
    assert scalar(
        db, "SELECT expires_at FROM managed_certificates WHERE id = 'cert-loadtest-bulk-00031'"
    ) == now + (timedelta(days=1, hours=7))


def test_agent_fleet_has_the_ids_scenarios_use_and_no_nulls(db: psycopg.Connection) -> None:
    report = seed_fleet(db, load_fleet("agent_fleet"))
    assert report.present == 5000 and report.id_range == ("ag-loadtest-00001", "ag-loadtest-05000")
    where = "FROM agents WHERE starts_with(id, 'ag-loadtest-')"
    assert db.execute(f"SELECT count(*), min(id), max(id) {where}").fetchone() == (
        5000,
        "ag-loadtest-00001",
        "ag-loadtest-05000",
    )
    stored = {r[0] for r in db.execute(f"SELECT id {where}")}
    assert stored == set(report.ids)
    assert scalar(db, f"SELECT array_agg(DISTINCT status) {where}") == ["Online"]
    assert dict(db.execute(f"SELECT os, count(*) {where} GROUP BY os").fetchall()) == {
        "linux": 4000,
        "windows": 500,
        "darwin": 500,
    }
    assert dict(db.execute(f"SELECT architecture, count(*) {where} GROUP BY 1").fetchall()) == {
        "amd64": 4000,
        "arm64": 1000,
    }
    nulls = f"SELECT count(*) {where} AND (os IS NULL OR architecture IS NULL OR ip_address IS NULL"
    nulls += " OR version IS NULL)"
    assert scalar(db, nulls) == 0
    assert scalar(db, f"SELECT count(DISTINCT name) {where}") == 5000
    assert scalar(db, "SELECT ip_address FROM agents WHERE id = 'ag-loadtest-05000'") == "10.42.19.136"


def test_acme_profile_creates_prof_test(db: psycopg.Connection) -> None:
    assert scalar(db, "SELECT count(*) FROM certificate_profiles WHERE id = 'prof-test'") == 0
    seed_fleet(db, load_fleet("acme_profile"))
    row = db.execute(
        "SELECT enabled, acme_auth_mode FROM certificate_profiles WHERE id = 'prof-test'"
    ).fetchone()
    assert row == (True, "trust_authenticated")


@pytest.mark.parametrize("fleet_name", ["bulk_renewal", "agent_fleet", "acme_profile"])
def test_seeding_twice_leaves_the_same_rows(db: psycopg.Connection, fleet_name: str) -> None:
    fleet = load_fleet(fleet_name)
    first = seed_fleet(db, fleet, now=datetime(2026, 1, 1, tzinfo=UTC))
    before = snapshot(db, fleet.table, fleet.id_prefix)
    second = seed_fleet(db, fleet, now=datetime(2026, 1, 2, tzinfo=UTC))
    assert first.inserted == fleet.count and second.inserted == 0
    assert second.present == fleet.count
    assert snapshot(db, fleet.table, fleet.id_prefix) == before


def test_missing_column_is_named_before_any_row_is_written(db: psycopg.Connection) -> None:
    db.execute("ALTER TABLE agents DROP COLUMN os")
    with pytest.raises(SchemaMismatch, match=r"column agents\.os does not exist"):
        seed_fleet(db, load_fleet("agent_fleet"))
    assert scalar(db, "SELECT count(*) FROM agents WHERE starts_with(id, 'ag-loadtest-')") == 0


def test_missing_table_is_named(db: psycopg.Connection) -> None:
    db.execute("DROP TABLE certificate_profiles CASCADE")
    with pytest.raises(SchemaMismatch, match="table 'certificate_profiles' does not exist"):
        seed_fleet(db, load_fleet("acme_profile"))


def test_not_null_column_without_default_must_be_generated(db: psycopg.Connection) -> None:
    db.execute("ALTER TABLE agents ADD COLUMN tenant_id text NOT NULL DEFAULT 'x'")  # existing rows get 'x'
    db.execute("ALTER TABLE agents ALTER COLUMN tenant_id DROP DEFAULT")
    with pytest.raises(SchemaMismatch, match=r"agents\.tenant_id is NOT NULL without a default.*agent_fleet"):
        seed_fleet(db, load_fleet("agent_fleet"))


def test_missing_foreign_key_row_is_named_with_its_origin(db: psycopg.Connection, tmp_path: Path) -> None:
    text = load_fleet("bulk_renewal").path.read_text().replace('id = "o-alice"', 'id = "o-nobody"')
    path = tmp_path / "bulk_other_owner.toml"
    path.write_text(text)
    with pytest.raises(SchemaMismatch, match=r"needs row owners\.id = 'o-nobody'.*seed_demo.sql"):
        seed_fleet(db, load_fleet(path))


def test_rows_lost_to_another_unique_column_fail_verification_and_roll_back(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO agents (id, name, hostname, api_key_hash)"
        " VALUES ('someone-else', 'loadtest-agent-00007', 'h', 'x')"
    )
    db.commit()
    with pytest.raises(
        SeedVerificationError, match=r"1 of 5000 rows missing from table 'agents'.*ag-loadtest-00007"
    ):
        seed_fleet(db, load_fleet("agent_fleet"))
    assert scalar(db, "SELECT count(*) FROM agents WHERE starts_with(id, 'ag-loadtest-')") == 0


def test_cleanup_removes_exactly_the_fleet_rows(db: psycopg.Connection) -> None:
    fleet = load_fleet("agent_fleet")
    others_before = scalar(db, "SELECT count(*) FROM agents")
    seed_fleet(db, fleet)
    # same prefix but not generated by the fleet, and an unrelated id: both must survive
    db.execute(
        "INSERT INTO agents (id, name, hostname, api_key_hash) VALUES"
        " ('ag-loadtest-99999', 'n1', 'h', 'x'), ('agx-loadtest-00001', 'n2', 'h', 'x')"
    )
    db.commit()
    report = cleanup_fleet(db, fleet)
    assert report.deleted == 5000
    assert scalar(db, "SELECT count(*) FROM agents") == others_before + 2
    assert scalar(db, "SELECT count(*) FROM agents WHERE id = 'ag-loadtest-99999'") == 1


def test_cleanup_refused_by_a_restrict_reference_changes_nothing(db: psycopg.Connection) -> None:
    fleet = load_fleet("agent_fleet")
    seed_fleet(db, fleet)
    db.execute(
        "INSERT INTO deployment_targets (id, name, type, agent_id)"
        " VALUES ('tgt-lt', 'lt', 'NGINX', 'ag-loadtest-00002')"
    )
    db.commit()
    with pytest.raises(CleanupRefused, match="agents"):
        cleanup_fleet(db, fleet)
    assert scalar(db, "SELECT count(*) FROM agents WHERE starts_with(id, 'ag-loadtest-')") == 5000


def peak_traced_bytes(dsn: str, count: int) -> int:
    fleet = load_fleet("agent_fleet").with_count(count)
    with psycopg.connect(dsn) as conn:
        tracemalloc.start()
        try:
            report = seed_fleet(conn, fleet)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report.present == count
        conn.execute("DELETE FROM agents WHERE starts_with(id, 'ag-loadtest-')")
        conn.commit()
    return peak


@pytest.mark.parametrize("dsn", [STANDIN_SCHEMA], indirect=True)
def test_rows_are_streamed_so_memory_does_not_grow_with_row_count(dsn: str) -> None:
    small = peak_traced_bytes(dsn, 2_000)
    large = peak_traced_bytes(dsn, 20_000)
    # Building 20k rows in a list would hold ~13 MB; streaming keeps the peak at psycopg's copy buffer.
    assert large < 1.5 * small + 128 * 1024, (small, large)
    assert large < 2 * 1024 * 1024, large


@pytest.mark.parametrize("dsn", [STANDIN_SCHEMA], indirect=True)
def test_external_stack_is_refused_unless_allowed(dsn: str) -> None:
    with pytest.raises(SeedRefused, match="--certload-allow-external-load"):
        FleetSeeder(external_stack(dsn, owned=False))("acme_profile")
    with psycopg.connect(dsn) as conn:
        assert scalar(conn, "SELECT count(*) FROM certificate_profiles WHERE id = 'prof-test'") == 0
    report = FleetSeeder(external_stack(dsn, owned=False), allow_external=True)("acme_profile")
    assert report.present == 1


@pytest.mark.parametrize("dsn", [STANDIN_SCHEMA], indirect=True)
def test_seeder_caches_per_fleet(dsn: str) -> None:
    seeder = FleetSeeder(external_stack(dsn, owned=True))
    first = seeder("agent_fleet")
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM agents WHERE id = 'ag-loadtest-00001'")
        conn.commit()
    assert seeder("agent_fleet") is first  # not re-seeded: the deleted row stays deleted
    with psycopg.connect(dsn) as conn:
        assert scalar(conn, "SELECT count(*) FROM agents WHERE starts_with(id, 'ag-loadtest-')") == 4999


def test_array_elements_with_quotes_commas_and_backslashes_round_trip(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    text = load_fleet("bulk_renewal").path.read_text()
    element = r"""'a "quoted", {{braced}} \back\slash {i:_>4}'"""
    odd = f'sans = {{ kind = "array", items = [{element}, "plain-{{i}}", "NULL"] }}'
    text = "\n".join(odd if line.startswith("sans =") else line for line in text.splitlines())
    path = tmp_path / "odd_sans.toml"
    path.write_text(text)
    fleet = load_fleet(path).with_count(3)
    seed_fleet(db, fleet)
    stored = [
        r[0]
        for r in db.execute(
            "SELECT sans FROM managed_certificates WHERE starts_with(id, 'cert-loadtest-bulk-') ORDER BY id"
        )
    ]
    expected = [row[fleet.column_names.index("sans")] for row in fleet.rows()]
    assert stored == expected
    assert stored[0] == ['a "quoted", {braced} \\back\\slash ___1', "plain-1", "NULL"]


def test_seed_commits_on_an_idle_connection(dsn: str) -> None:
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn) as reader:
        seed_fleet(writer, load_fleet("acme_profile"))
        # the writer is still open: the rows must already be visible to another session
        assert scalar(reader, "SELECT count(*) FROM certificate_profiles WHERE id = 'prof-test'") == 1
