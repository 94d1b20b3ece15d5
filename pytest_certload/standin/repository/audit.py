"""``audit_events`` and the RBAC permission lookup: certctl's AuditRepository and ActorRoleRepository.

Both run on every authenticated request in certctl (the audit middleware and the per-route RBAC
gate), so they are most of what an API request costs its database; the stand-in issues the same
statements (the hash-chain trigger that serialises audit inserts is in :mod:`..audit_schema`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# certctl's AuditRepository.CreateWithTx: one INSERT ... RETURNING id (the trigger fills the hashes).
_INSERT_EVENT_SQL = (
    "INSERT INTO audit_events ("
    " id, actor, actor_type, action, resource_type, resource_id, details, timestamp, event_category"
    ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)

# certctl's ActorRoleRepository.EffectivePermissions: the actor's roles' permissions, with the
# actor-role scope intersected with the role-permission scope (disjoint scopes drop the row).
_EFFECTIVE_PERMISSIONS_SQL = """
SELECT DISTINCT permission_name, effective_scope_type, effective_scope_id
FROM (
    SELECT
        p.name AS permission_name,
        CASE
            WHEN ar.scope_type = 'global' AND rp.scope_type = 'global' THEN 'global'
            WHEN ar.scope_type = 'global' THEN rp.scope_type
            WHEN rp.scope_type = 'global' THEN ar.scope_type
            WHEN ar.scope_type = rp.scope_type AND ar.scope_id IS NOT DISTINCT FROM rp.scope_id
                THEN ar.scope_type
            ELSE NULL
        END AS effective_scope_type,
        CASE
            WHEN ar.scope_type = 'global' AND rp.scope_type = 'global' THEN NULL
            WHEN ar.scope_type = 'global' THEN rp.scope_id
            WHEN rp.scope_type = 'global' THEN ar.scope_id
            WHEN ar.scope_type = rp.scope_type AND ar.scope_id IS NOT DISTINCT FROM rp.scope_id
                THEN ar.scope_id
            ELSE NULL
        END AS effective_scope_id
    FROM actor_roles ar
    JOIN role_permissions rp ON rp.role_id = ar.role_id
    JOIN permissions p ON p.id = rp.permission_id
    WHERE ar.actor_id = %s
      AND ar.actor_type = %s
      AND ar.tenant_id = %s
      AND (ar.expires_at IS NULL OR ar.expires_at > NOW())
) AS intersected
WHERE effective_scope_type IS NOT NULL
"""


async def insert_event(
    conn: psycopg.AsyncConnection,
    *,
    event_id: str,
    actor: str,
    actor_type: str,
    action: str,
    resource_type: str,
    resource_id: str,
    details: dict[str, Any],
    timestamp: datetime,
    category: str = "cert_lifecycle",
) -> None:
    """One audit row in its own (autocommit) transaction, as certctl's stand-alone Create."""
    await conn.execute(
        _INSERT_EVENT_SQL,
        (
            event_id,
            actor,
            actor_type,
            action,
            resource_type,
            resource_id,
            Jsonb(details),
            timestamp,
            category,
        ),
    )


async def effective_permissions(
    conn: psycopg.AsyncConnection, actor_id: str, actor_type: str, tenant_id: str
) -> list[tuple[str, str, str | None]]:
    """(permission, scope type, scope id) the actor holds; certctl runs this, uncached, per gated request."""
    cur = await conn.execute(_EFFECTIVE_PERMISSIONS_SQL, (actor_id, actor_type, tenant_id))
    return [(name, scope_type, scope_id) for name, scope_type, scope_id in await cur.fetchall()]
