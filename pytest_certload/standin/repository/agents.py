"""``agents`` and their ``deployment_targets``: certctl's AgentRepository and TargetRepository.

The agent work loop (CSR submission, certificate pickup) adds its agent-side statements here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

# certctl's heartbeat overwrites only the metadata fields the agent sent non-empty.
_HEARTBEAT_WITH_METADATA_SQL = (
    "UPDATE agents SET last_heartbeat_at = %(now)s,"
    " hostname = CASE WHEN %(hostname)s = '' THEN hostname ELSE %(hostname)s END,"
    " os = CASE WHEN %(os)s = '' THEN os ELSE %(os)s END,"
    " architecture = CASE WHEN %(architecture)s = '' THEN architecture"
    " ELSE %(architecture)s END,"
    " ip_address = CASE WHEN %(ip_address)s = '' THEN ip_address ELSE %(ip_address)s END,"
    " version = CASE WHEN %(version)s = '' THEN version ELSE %(version)s END"
    " WHERE id = %(id)s AND retired_at IS NULL"
)


async def load_agent(conn: psycopg.AsyncConnection, agent_id: str) -> tuple[str, Any] | None:
    """(status, retired_at) of a scannable agent row, None when certctl's Get would fail."""
    row = await (
        await conn.execute(
            "SELECT status, retired_at, name, hostname, api_key_hash, os, architecture, ip_address,"
            " version FROM agents WHERE id = %s",
            (agent_id,),
        )
    ).fetchone()
    if row is None or any(v is None for v in row[2:]):
        return None
    return row[0], row[1]


async def record_heartbeat(
    conn: psycopg.AsyncConnection, agent_id: str, metadata: dict[str, str] | None
) -> bool:
    """Stamp last_heartbeat_at (and the metadata sent); False when no unretired agent has the id."""
    now = datetime.now(UTC)
    if metadata is None:
        cur = await conn.execute(
            "UPDATE agents SET last_heartbeat_at = %s WHERE id = %s AND retired_at IS NULL",
            (now, agent_id),
        )
    else:
        cur = await conn.execute(_HEARTBEAT_WITH_METADATA_SQL, {"now": now, "id": agent_id, **metadata})
    return cur.rowcount != 0


_SNAPSHOT_COLUMNS = (
    "name", "hostname", "status", "last_heartbeat_at", "api_key_hash", "os", "architecture", "ip_address",
    "version", "retired_at",
)  # fmt: skip


async def agent_snapshot(conn: psycopg.AsyncConnection, agent_id: str) -> dict[str, Any] | None:
    """The agent row as certctl's Get reads it (None where its scanner would fail), kept by the
    heartbeat to write back later, as certctl does."""
    row = await (
        await conn.execute(f"SELECT {', '.join(_SNAPSHOT_COLUMNS)} FROM agents WHERE id = %s", (agent_id,))
    ).fetchone()
    if row is None:
        return None
    snapshot = dict(zip(_SNAPSHOT_COLUMNS, row, strict=True))
    if any(snapshot[c] is None for c in ("name", "hostname", "api_key_hash", "os", "architecture",
                                          "ip_address", "version")):  # fmt: skip
        return None
    return snapshot | {"id": agent_id}


async def write_back_online(conn: psycopg.AsyncConnection, snapshot: dict[str, Any]) -> None:
    """certctl's full-row AgentRepository.Update (repository/postgres/agent.go:151-165) from the
    snapshot read *before* the heartbeat, status set Online: last_heartbeat_at and the metadata go
    back to their old values (certctl defect, scenarios/agent_defects.py offline-heartbeat-stale)."""
    await conn.execute(
        "UPDATE agents SET name = %(name)s, hostname = %(hostname)s, status = 'Online',"
        " last_heartbeat_at = %(last_heartbeat_at)s, api_key_hash = %(api_key_hash)s, os = %(os)s,"
        " architecture = %(architecture)s, ip_address = %(ip_address)s, version = %(version)s"
        " WHERE id = %(id)s",
        snapshot,
    )


async def deployment_target(conn: psycopg.AsyncConnection, target_id: str) -> tuple[str | None, Any] | None:
    """(type, config) of a deployment target, None when there is no such target."""
    row = await (
        await conn.execute("SELECT type, config FROM deployment_targets WHERE id = %s", (target_id,))
    ).fetchone()
    return None if row is None else (row[0], row[1])
