"""The stand-in's audit trail and RBAC tables: certctl's ``audit_events`` with its hash-chain trigger.

Why it exists: certctl writes an audit row per authenticated request, and a BEFORE INSERT trigger
(certctl migration 000047) locks the single row of ``audit_chain_head`` FOR UPDATE, hashes the new
row with pgcrypto onto the previous hash and writes the head back — so every audit insert in the
system serialises on one row until its transaction commits. The stand-in gets the same table
(final column set after migrations 000001, 000018, 000032, 000047), the same trigger behaviour
(written here, not copied) and the RBAC tables its permission query reads (migrations 000029,
000043), seeded with the admin role for the stack's key ``loadtest``.

Safe on a database certctl already migrated: tables are ``IF NOT EXISTS``, the functions and
triggers are only created where the trigger is missing, and the seed rows are ``ON CONFLICT DO
NOTHING``.
"""

from __future__ import annotations

import psycopg

#: the actor certctl's audit rows and RBAC lookups name for the stack's admin key
#: (stack/certctl.py names it ``loadtest`` in CERTCTL_API_KEYS_NAMED)
ADMIN_KEY_NAME = "loadtest"
DEFAULT_TENANT = "t-default"

#: the permissions r-admin holds in the stand-in: the ones its routes are gated on (audit.ROUTE_PERMISSIONS)
ADMIN_PERMISSIONS = (
    "cert.read", "cert.issue", "cert.edit", "issuer.read", "issuer.edit", "agent.heartbeat",
    "agent.job.poll", "agent.job.complete", "agent.edit", "job.read", "metrics.read", "verification.run",
)  # fmt: skip

TABLES_DDL: tuple[str, ...] = (
    "CREATE EXTENSION IF NOT EXISTS pgcrypto",
    """CREATE TABLE IF NOT EXISTS audit_events (
        id TEXT PRIMARY KEY,
        actor VARCHAR(255) NOT NULL,
        actor_type VARCHAR(50) NOT NULL,
        action VARCHAR(255) NOT NULL,
        resource_type VARCHAR(255) NOT NULL,
        resource_id VARCHAR(255) NOT NULL,
        details JSONB,
        timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        event_category TEXT NOT NULL DEFAULT 'cert_lifecycle'
            CONSTRAINT audit_events_event_category_check
            CHECK (event_category IN ('cert_lifecycle', 'auth', 'config')),
        prev_hash TEXT,
        row_hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS idx_audit_events_resource_type_id"
    " ON audit_events (resource_type, resource_id)",
    "CREATE INDEX IF NOT EXISTS idx_audit_events_actor ON audit_events (actor)",
    "CREATE INDEX IF NOT EXISTS idx_audit_events_timestamp ON audit_events (timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_audit_events_action ON audit_events (action)",
    "CREATE INDEX IF NOT EXISTS idx_audit_events_event_category ON audit_events (event_category)",
    "CREATE INDEX IF NOT EXISTS idx_audit_events_category_timestamp"
    " ON audit_events (event_category, timestamp DESC)",
    """CREATE TABLE IF NOT EXISTS audit_chain_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        row_hash TEXT NOT NULL DEFAULT '',
        updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
    )""",
    "INSERT INTO audit_chain_head (id, row_hash, updated_at) VALUES (1, '', NOW())"
    " ON CONFLICT (id) DO NOTHING",
    """CREATE TABLE IF NOT EXISTS tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
    )""",
    """CREATE TABLE IF NOT EXISTS roles (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        UNIQUE (tenant_id, name)
    )""",
    """CREATE TABLE IF NOT EXISTS permissions (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        namespace TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS role_permissions (
        id BIGSERIAL PRIMARY KEY,
        role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
        permission_id TEXT NOT NULL REFERENCES permissions(id) ON DELETE RESTRICT,
        scope_type TEXT NOT NULL DEFAULT 'global',
        scope_id TEXT,
        CONSTRAINT role_permissions_unique
            UNIQUE NULLS NOT DISTINCT (role_id, permission_id, scope_type, scope_id)
    )""",
    """CREATE TABLE IF NOT EXISTS actor_roles (
        id TEXT PRIMARY KEY,
        actor_id TEXT NOT NULL,
        actor_type TEXT NOT NULL,
        role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE RESTRICT,
        granted_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        expires_at TIMESTAMPTZ,
        granted_by TEXT NOT NULL DEFAULT 'system',
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        scope_type TEXT NOT NULL DEFAULT 'global',
        scope_id TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS idx_actor_roles_actor ON actor_roles (actor_id, actor_type, tenant_id)",
    "CREATE INDEX IF NOT EXISTS idx_actor_roles_role ON actor_roles (role_id)",
    "CREATE INDEX IF NOT EXISTS idx_role_permissions_role ON role_permissions (role_id)",
)

# The trigger functions: created only when the hash-chain trigger is missing (see module docstring).
TRIGGER_DDL: tuple[str, ...] = (
    """CREATE OR REPLACE FUNCTION audit_events_compute_hash_chain() RETURNS TRIGGER AS $$
    DECLARE
        head TEXT;
    BEGIN
        -- the one row every audit insert locks: inserts serialise here until their commit
        SELECT row_hash INTO head FROM audit_chain_head WHERE id = 1 FOR UPDATE;
        NEW.prev_hash := NULLIF(head, '');
        NEW.row_hash := encode(digest(
            COALESCE(NEW.prev_hash, '') || '|' || NEW.id || '|' || NEW.actor || '|' || NEW.actor_type
            || '|' || NEW.action || '|' || NEW.resource_type || '|' || NEW.resource_id || '|'
            || COALESCE(NEW.details::text, '') || '|'
            || to_char(NEW.timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|'
            || COALESCE(NEW.event_category, ''),
            'sha256'), 'hex');
        UPDATE audit_chain_head SET row_hash = NEW.row_hash, updated_at = NOW() WHERE id = 1;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_events_hash_chain_trigger BEFORE INSERT ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_compute_hash_chain()""",
    """CREATE OR REPLACE FUNCTION audit_events_block_modification() RETURNS TRIGGER AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'check_violation';
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_events_worm_trigger BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_block_modification()""",
)

SEED_ROWS: tuple[str, ...] = (
    f"INSERT INTO tenants (id, name) VALUES ('{DEFAULT_TENANT}', 'default') ON CONFLICT DO NOTHING",
    f"INSERT INTO roles (id, tenant_id, name) VALUES ('r-admin', '{DEFAULT_TENANT}', 'admin')"
    " ON CONFLICT DO NOTHING",
)


def ensure_audit_schema(conn: psycopg.Connection) -> None:
    """Create the audit and RBAC tables, the hash-chain trigger and the admin grant where missing.

    Runs inside the caller's transaction (schema.ensure_schema holds the schema lock).
    """
    for statement in TABLES_DDL:
        conn.execute(statement)
    has_trigger = conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgname = 'audit_events_hash_chain_trigger'"
        " AND tgrelid = 'audit_events'::regclass"
    ).fetchone()
    if has_trigger is None:
        for statement in TRIGGER_DDL:
            conn.execute(statement)
    for statement in SEED_ROWS:
        conn.execute(statement)
    for name in ADMIN_PERMISSIONS:
        perm_id = "p-" + name.replace(".", "-")
        conn.execute(
            "INSERT INTO permissions (id, name, namespace) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (perm_id, name, name.split(".")[0]),
        )
        conn.execute(
            "INSERT INTO role_permissions (role_id, permission_id, scope_type)"
            " SELECT 'r-admin', id, 'global' FROM permissions WHERE name = %s ON CONFLICT DO NOTHING",
            (name,),
        )
    conn.execute(
        "INSERT INTO actor_roles (id, actor_id, actor_type, role_id, granted_by, tenant_id)"
        " SELECT %s, %s, 'APIKey', 'r-admin', 'bootstrap', %s WHERE NOT EXISTS ("
        " SELECT 1 FROM actor_roles WHERE actor_id = %s AND actor_type = 'APIKey' AND role_id = 'r-admin')",
        ("ar-" + ADMIN_KEY_NAME, ADMIN_KEY_NAME, DEFAULT_TENANT, ADMIN_KEY_NAME),
    )
