"""The agent-bound fleet: N agents, a target each, a certificate each, bound so renewals reach agents.

certctl routes a certificate's CSR work to an agent only through ``certificate_target_mappings`` ->
``deployment_targets.agent_id`` (internal/repository/postgres/job.go:540-554), and no API creates
mappings, so this fleet is SQL only. Four tables, in one transaction:

- ``agent_bound_agents`` -> ``agents``: ``ag-bound-{k:05d}``, Online, fresh heartbeat;
- ``agent_bound_targets`` -> ``deployment_targets``: ``tgt-bound-{k:05d}`` of agent k, plain config;
- ``agent_bound_certificates`` -> ``managed_certificates``: ``mc-bound-{k:05d}``, iss-local, no
  profile, expiring in 60-89 days;
- generated here -> ``certificate_target_mappings``: certificate k -> target k.

Seeding N is idempotent and grows: seeding 1,000 then 5,000 adds rows 1,001-5,000. Helpers for the
agent scenarios: :func:`refresh_agents` (Online + fresh heartbeat right before a phase: certctl's
health sweep marks agents silent for 2 min Offline, and a heartbeat from an Offline agent writes
back the stale timestamp) and :func:`bind_targets_to_sidecar` (point some targets at a real sidecar).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pytest_certload.seeding.copy_writer import seed_fleet
from pytest_certload.seeding.errors import SeedVerificationError
from pytest_certload.seeding.fleet import Fleet, IdRange, load_fleet
from pytest_certload.seeding.report import SeedReport

AGENTS_FLEET = "agent_bound_agents"
TARGETS_FLEET = "agent_bound_targets"
CERTIFICATES_FLEET = "agent_bound_certificates"
MAPPINGS_TABLE = "certificate_target_mappings"


@dataclass
class AgentBoundReport:
    """What :func:`seed_agent_bound_fleet` did; ``agent_ids[k]``, ``target_ids[k]`` and
    ``certificate_ids[k]`` belong together (agent k deploys certificate k to target k)."""

    count: int
    agent_ids: IdRange
    target_ids: IdRange
    certificate_ids: IdRange
    tables: list[SeedReport] = field(default_factory=list)  # agents, targets, certificates
    mappings_inserted: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "fleet": "agent_bound",
            "count": self.count,
            "seconds": round(self.seconds, 4),
            "mappings_inserted": self.mappings_inserted,
            "tables": [t.to_dict() for t in self.tables],
        }


def agent_bound_fleets(count: int, seeds_dir: Path | None = None) -> tuple[Fleet, Fleet, Fleet]:
    """(agents, targets, certificates) fleet definitions, each cut to ``count`` rows."""
    return tuple(  # type: ignore[return-value]
        load_fleet(name, seeds_dir).with_count(count)
        for name in (AGENTS_FLEET, TARGETS_FLEET, CERTIFICATES_FLEET)
    )


def agent_bound_ids(count: int, seeds_dir: Path | None = None) -> tuple[IdRange, IdRange, IdRange]:
    """The ids :func:`seed_agent_bound_fleet` writes for ``count``, without a database."""
    agents, targets, certs = agent_bound_fleets(count, seeds_dir)
    return agents.ids(), targets.ids(), certs.ids()


def seed_agent_bound_fleet(
    conn: psycopg.Connection, count: int, *, seeds_dir: Path | None = None, now: datetime | None = None
) -> AgentBoundReport:
    """Seed ``count`` agents, targets, certificates and mappings (COPY); committed on return.

    All or nothing: a clash (e.g. another row already named ``bound-agent-00001``) rolls back every
    table and raises SeedVerificationError naming the rows.
    """
    started = time.perf_counter()
    fleets = agent_bound_fleets(count, seeds_dir)
    now = now or datetime.now(UTC)
    agents, targets, certs = (f.ids() for f in fleets)
    report = AgentBoundReport(count, agents, targets, certs)
    with conn.transaction():
        report.tables = [seed_fleet(conn, fleet, now=now) for fleet in fleets]
        report.mappings_inserted = _seed_mappings(conn, certs, targets)
    report.seconds = time.perf_counter() - started
    return report


def _seed_mappings(conn: psycopg.Connection, certs: Sequence[str], targets: Sequence[str]) -> int:
    stage = sql.Identifier("certload_mapping_stage")
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} (certificate_id text, target_id text) ON COMMIT DROP").format(stage)
        )
        with cur.copy(sql.SQL("COPY {} (certificate_id, target_id) FROM STDIN").format(stage)) as copy:
            for pair in zip(certs, targets, strict=True):
                copy.write_row(pair)
        cur.execute(
            sql.SQL(
                "INSERT INTO certificate_target_mappings (certificate_id, target_id)"
                " SELECT certificate_id, target_id FROM {} ON CONFLICT DO NOTHING"
            ).format(stage)
        )
        inserted = cur.rowcount
        cur.execute(
            sql.SQL(
                "SELECT count(*) FROM {} s JOIN certificate_target_mappings m"
                " ON m.certificate_id = s.certificate_id AND m.target_id = s.target_id"
            ).format(stage)
        )
        present = cur.fetchone()[0]
        cur.execute(sql.SQL("DROP TABLE {}").format(stage))
    if present < len(certs):
        raise SeedVerificationError(
            f"agent-bound fleet: {len(certs) - present} of {len(certs)} certificate_target_mappings rows "
            "missing after seeding; nothing was committed"
        )
    return inserted


def refresh_agents(conn: psycopg.Connection, agent_ids: Sequence[str]) -> int:
    """Set ``agents`` ``Online`` with ``last_heartbeat_at = now()``; returns the rows updated.

    Call right before a phase whose agents start heartbeating: certctl's agent-health loop (every
    2 min) marks agents without a recent heartbeat ``Offline``, and the first heartbeat of an
    Offline agent then restores the stale timestamp (certctl internal/service/agent.go:106-133).
    """
    with conn.transaction():
        cur = conn.execute(
            "UPDATE agents SET status = 'Online', last_heartbeat_at = now() WHERE id = ANY(%s)",
            (list(agent_ids),),
        )
        return cur.rowcount


TargetConfig = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]


def bind_targets_to_sidecar(
    conn: psycopg.Connection, target_ids: Sequence[str], config: TargetConfig, *, target_type: str = "NGINX"
) -> int:
    """Point ``target_ids`` at a sidecar: ``type`` and plain ``config`` (JSON), ``encrypted_config`` NULL.

    ``config`` is one mapping for every target or ``config(target_id) -> mapping`` (e.g. a
    ``cert_path``/``key_path``/``reload_command`` per target). The work poll then hands the agent
    this config verbatim. Returns the rows updated; raises ValueError when a target id is unknown.
    Equivalent SQL: ``UPDATE deployment_targets SET type = $1, config = $2::jsonb,
    encrypted_config = NULL, updated_at = now() WHERE id = $3``.
    """
    rows = [(target_type, json.dumps(dict(config(t) if callable(config) else config)), t) for t in target_ids]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "UPDATE deployment_targets SET type = %s, config = %s::jsonb, encrypted_config = NULL,"
            " updated_at = now() WHERE id = %s",
            rows,
        )
        cur.execute("SELECT count(*) FROM deployment_targets WHERE id = ANY(%s)", (list(target_ids),))
        found = cur.fetchone()[0]
        if found != len(set(target_ids)):
            raise ValueError(
                f"bind_targets_to_sidecar: {len(set(target_ids)) - found} of {len(set(target_ids))} target "
                "ids do not exist (seed the agent-bound fleet first); nothing was changed"
            )
    return len(rows)
