"""API seeding against a running server: the stand-in always, real certctl when CERTLOAD_CERTCTL_BIN is set.

The stand-in has no agent registration route, so agents are checked against real certctl only.
The stack is started with the bootstrap token equal to the admin API key: certctl registers agents
only then (certctl-facts §3.7).
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from pytest_certload.seeding.api_seeder import seed_fleet_via_api
from pytest_certload.seeding.databases import MIGRATIONS_ENV
from pytest_certload.seeding.fleet import load_fleet
from pytest_certload.stack.certctl import SessionSecrets
from pytest_certload.stack.model import Stack
from pytest_certload.stack.native import NativeProvider
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.postgres import find_pg_bin
from pytest_certload.stack.tls import make_tls_material

BIN_ENV = "CERTLOAD_CERTCTL_BIN"
SERVERS = [
    pytest.param("stand-in", id="stand-in"),
    pytest.param(
        "certctl",
        id="certctl",
        marks=pytest.mark.skipif(
            not (os.environ.get(BIN_ENV) and os.environ.get(MIGRATIONS_ENV)),
            reason=f"set {BIN_ENV} and {MIGRATIONS_ENV} to run against real certctl",
        ),
    ),
]


@pytest.fixture(scope="module", params=SERVERS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL >= 15 binaries (apt-get install postgresql)")
    workdir = tmp_path_factory.mktemp(f"seed-api-{request.param}")
    real = request.param == "certctl"
    opts = StackOptions(
        provider="native",
        certctl_bin=Path(os.environ[BIN_ENV]) if real else None,
        certctl_migrations=Path(os.environ[MIGRATIONS_ENV]) if real else None,
    )
    token = SessionSecrets().api_token
    secrets = SessionSecrets(api_token=token, bootstrap_token=token)
    provider = NativeProvider(opts, workdir, make_tls_material(workdir / "tls"), secrets)
    try:
        yield provider.start()
    finally:
        provider.stop()


def rows_with_prefix(stack: Stack, table: str, prefix: str) -> int:
    with psycopg.connect(stack.dsn.reveal()) as conn:
        query = f"SELECT count(*) FROM {table} WHERE starts_with(id, %s)"
        return conn.execute(query, [prefix]).fetchone()[0]


def test_certificates_over_the_api_keep_ids_and_reseed_idempotently(stack: Stack) -> None:
    fleet = load_fleet("bulk_renewal").with_count(40)
    first = seed_fleet_via_api(stack.certctl_url, stack.token, fleet, ca_bundle=stack.ca_bundle)
    second = seed_fleet_via_api(stack.certctl_url, stack.token, fleet, ca_bundle=stack.ca_bundle)
    assert (first.inserted, first.present, second.inserted, second.present) == (40, 40, 0, 40)
    assert rows_with_prefix(stack, "managed_certificates", "cert-loadtest-bulk-") == 40
    with psycopg.connect(stack.dsn.reveal()) as conn:
        status, tags = conn.execute(
            "SELECT status, tags FROM managed_certificates WHERE id = 'cert-loadtest-bulk-00007'"
        ).fetchone()
    assert status == "Active" and tags == {"source": "loadtest-phase8", "batch": "bulk-renewal"}


def test_agents_over_the_api_get_server_ids(stack: Stack) -> None:
    if stack.server != "certctl":
        pytest.skip("the stand-in has no POST /api/v1/agents (agent registration)")
    fleet = load_fleet("agent_fleet").with_count(25)
    first = seed_fleet_via_api(stack.certctl_url, stack.token, fleet, ca_bundle=stack.ca_bundle)
    second = seed_fleet_via_api(stack.certctl_url, stack.token, fleet, ca_bundle=stack.ca_bundle)
    assert first.inserted == 25 and second.inserted == 0 and sorted(second.ids) == sorted(first.ids)
    assert all(agent_id.startswith("agent-") for agent_id in first.ids)
    assert rows_with_prefix(stack, "agents", "ag-loadtest-") == 0  # client ids are ignored
