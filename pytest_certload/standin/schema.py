"""The subset of certctl's database schema the stand-in, the seeds and the scenarios touch.

Table and column names, types, defaults, NOT NULL, UNIQUE and foreign-key rules mirror the final
state of certctl's migrations (000001-000047 at the revision in certctl-facts.md), checked against
``pg_dump --schema-only`` of a database the real server migrated. So a seed written for the
stand-in's database also loads into a real certctl database, and the same constraint violations
(duplicate ``name``, unknown FK id) happen in both.

Everything is ``IF NOT EXISTS`` / ``ON CONFLICT DO NOTHING``: running it against a database that
certctl already migrated (or that the stand-in set up before) changes nothing.
"""

from __future__ import annotations

import psycopg

from pytest_certload.standin.audit_schema import ensure_audit_schema

# Serialises concurrent ensure_schema() calls (stand-in start and a seeder racing on one database).
SCHEMA_LOCK_KEY = 0x63657274_6C6F6164  # "certload"

TABLES: tuple[str, ...] = (
    "teams",
    "owners",
    "certificate_profiles",
    "agent_groups",
    "renewal_policies",
    "issuers",
    "agents",
    "deployment_targets",
    "managed_certificates",
    "certificate_target_mappings",
    "jobs",
    "certificate_versions",
    "notification_events",
    "acme_accounts",
    "acme_orders",
    "acme_authorizations",
    "acme_challenges",
    "acme_nonces",
)

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS teams (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL UNIQUE,
        description TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS owners (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL,
        email VARCHAR(255) NOT NULL,
        team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS certificate_profiles (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL UNIQUE,
        description TEXT DEFAULT '',
        allowed_key_algorithms JSONB NOT NULL
            DEFAULT '[{"min_size": 256, "algorithm": "ECDSA"}, {"min_size": 2048, "algorithm": "RSA"}]',
        max_ttl_seconds INTEGER NOT NULL DEFAULT 0,
        allowed_ekus JSONB NOT NULL DEFAULT '["serverAuth"]',
        required_san_patterns JSONB NOT NULL DEFAULT '[]',
        spiffe_uri_pattern VARCHAR(512) DEFAULT '',
        allow_short_lived BOOLEAN NOT NULL DEFAULT false,
        enabled BOOLEAN NOT NULL DEFAULT true,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        required_csr_attributes JSONB NOT NULL DEFAULT '[]',
        must_staple BOOLEAN NOT NULL DEFAULT false,
        acme_auth_mode TEXT NOT NULL DEFAULT 'trust_authenticated'
            CONSTRAINT certificate_profiles_acme_auth_mode_chk
            CHECK (acme_auth_mode IN ('trust_authenticated', 'challenge')),
        requires_approval BOOLEAN NOT NULL DEFAULT false
    )""",
    """CREATE TABLE IF NOT EXISTS agent_groups (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL UNIQUE,
        description TEXT DEFAULT '',
        match_os VARCHAR(100) DEFAULT '',
        match_architecture VARCHAR(100) DEFAULT '',
        match_ip_cidr VARCHAR(45) DEFAULT '',
        match_version VARCHAR(50) DEFAULT '',
        enabled BOOLEAN NOT NULL DEFAULT true,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS renewal_policies (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL UNIQUE,
        renewal_window_days INTEGER NOT NULL,
        auto_renew BOOLEAN NOT NULL DEFAULT true,
        max_retries INTEGER NOT NULL DEFAULT 3,
        retry_interval_seconds INTEGER NOT NULL DEFAULT 60,
        alert_thresholds_days JSONB NOT NULL DEFAULT '[30, 14, 7, 0]',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        certificate_profile_id TEXT REFERENCES certificate_profiles(id) ON DELETE SET NULL,
        agent_group_id TEXT REFERENCES agent_groups(id) ON DELETE SET NULL,
        alert_channels JSONB NOT NULL DEFAULT '{}',
        alert_severity_map JSONB NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE IF NOT EXISTS issuers (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL UNIQUE,
        type VARCHAR(255) NOT NULL,
        config JSONB,
        enabled BOOLEAN NOT NULL DEFAULT true,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        encrypted_config BYTEA,
        last_tested_at TIMESTAMPTZ,
        test_status TEXT NOT NULL DEFAULT 'untested',
        source TEXT NOT NULL DEFAULT 'database',
        hierarchy_mode VARCHAR(20) NOT NULL DEFAULT 'single'
    )""",
    """CREATE TABLE IF NOT EXISTS agents (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL UNIQUE,
        hostname VARCHAR(255) NOT NULL,
        status VARCHAR(50) NOT NULL DEFAULT 'offline',
        last_heartbeat_at TIMESTAMPTZ,
        registered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        api_key_hash VARCHAR(255) NOT NULL,
        os VARCHAR(100) DEFAULT '',
        architecture VARCHAR(100) DEFAULT '',
        ip_address VARCHAR(45) DEFAULT '',
        version VARCHAR(50) DEFAULT '',
        retired_at TIMESTAMPTZ,
        retired_reason TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS deployment_targets (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL,
        type VARCHAR(255) NOT NULL,
        agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE RESTRICT,
        config JSONB,
        enabled BOOLEAN NOT NULL DEFAULT true,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        encrypted_config BYTEA,
        last_tested_at TIMESTAMPTZ,
        test_status TEXT NOT NULL DEFAULT 'untested',
        source TEXT NOT NULL DEFAULT 'database',
        retired_at TIMESTAMPTZ,
        retired_reason TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS managed_certificates (
        id TEXT PRIMARY KEY,
        name VARCHAR(255) NOT NULL UNIQUE,
        common_name VARCHAR(255) NOT NULL,
        sans TEXT[] DEFAULT ARRAY[]::TEXT[],
        environment VARCHAR(50),
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE RESTRICT,
        team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
        issuer_id TEXT NOT NULL REFERENCES issuers(id) ON DELETE RESTRICT,
        renewal_policy_id TEXT NOT NULL REFERENCES renewal_policies(id) ON DELETE RESTRICT,
        status VARCHAR(50) NOT NULL DEFAULT 'pending',
        expires_at TIMESTAMPTZ,
        tags JSONB NOT NULL DEFAULT '{}',
        last_renewal_at TIMESTAMPTZ,
        last_deployment_at TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        certificate_profile_id TEXT REFERENCES certificate_profiles(id) ON DELETE SET NULL,
        revoked_at TIMESTAMPTZ,
        revocation_reason VARCHAR(50),
        source TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE IF NOT EXISTS certificate_target_mappings (
        certificate_id TEXT NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
        target_id TEXT NOT NULL REFERENCES deployment_targets(id) ON DELETE CASCADE,
        PRIMARY KEY (certificate_id, target_id)
    )""",
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        type VARCHAR(255) NOT NULL,
        certificate_id TEXT REFERENCES managed_certificates(id) ON DELETE CASCADE,
        target_id TEXT REFERENCES deployment_targets(id) ON DELETE SET NULL,
        agent_id TEXT REFERENCES agents(id) ON DELETE SET NULL,
        status VARCHAR(50) NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        last_error TEXT,
        deployment_result JSONB,
        scheduled_at TIMESTAMPTZ,
        started_at TIMESTAMPTZ,
        completed_at TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        verification_status TEXT DEFAULT 'pending',
        verified_at TIMESTAMPTZ,
        verification_fingerprint TEXT,
        verification_error TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS certificate_versions (
        id TEXT PRIMARY KEY,
        certificate_id TEXT NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
        serial_number VARCHAR(255) NOT NULL,
        not_before TIMESTAMPTZ NOT NULL,
        not_after TIMESTAMPTZ NOT NULL,
        fingerprint_sha256 VARCHAR(255) NOT NULL UNIQUE,
        pem_chain TEXT NOT NULL,
        csr_pem TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        key_algorithm VARCHAR(50) DEFAULT '',
        key_size INTEGER DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS notification_events (
        id TEXT PRIMARY KEY,
        type VARCHAR(255) NOT NULL,
        certificate_id TEXT REFERENCES managed_certificates(id) ON DELETE CASCADE,
        channel VARCHAR(255) NOT NULL,
        recipient VARCHAR(255) NOT NULL,
        message TEXT NOT NULL,
        sent_at TIMESTAMPTZ,
        status VARCHAR(50) NOT NULL DEFAULT 'pending',
        error TEXT,
        retry_count INTEGER NOT NULL DEFAULT 0,
        next_retry_at TIMESTAMPTZ,
        last_error TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS acme_accounts (
        account_id TEXT PRIMARY KEY,
        jwk_thumbprint TEXT NOT NULL,
        jwk_pem TEXT NOT NULL,
        contact TEXT[],
        status TEXT NOT NULL,
        profile_id TEXT NOT NULL,
        owner_id TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        FOREIGN KEY (profile_id) REFERENCES certificate_profiles(id),
        FOREIGN KEY (owner_id) REFERENCES owners(id),
        UNIQUE (profile_id, jwk_thumbprint)
    )""",
    """CREATE TABLE IF NOT EXISTS acme_orders (
        order_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        identifiers JSONB NOT NULL,
        status TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        not_before TIMESTAMPTZ,
        not_after TIMESTAMPTZ,
        error JSONB,
        csr_pem TEXT,
        certificate_id TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        FOREIGN KEY (account_id) REFERENCES acme_accounts(account_id),
        FOREIGN KEY (certificate_id) REFERENCES managed_certificates(id)
    )""",
    """CREATE TABLE IF NOT EXISTS acme_authorizations (
        authz_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        identifier JSONB NOT NULL,
        status TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        wildcard BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        FOREIGN KEY (order_id) REFERENCES acme_orders(order_id)
    )""",
    """CREATE TABLE IF NOT EXISTS acme_challenges (
        challenge_id TEXT PRIMARY KEY,
        authz_id TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        token TEXT NOT NULL,
        validated_at TIMESTAMPTZ,
        error JSONB,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        FOREIGN KEY (authz_id) REFERENCES acme_authorizations(authz_id)
    )""",
    """CREATE TABLE IF NOT EXISTS acme_nonces (
        nonce TEXT PRIMARY KEY,
        issued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires_at TIMESTAMPTZ NOT NULL,
        used BOOLEAN NOT NULL DEFAULT false
    )""",
)

# certctl's secondary indexes on these tables (same names), so query plans resemble the real ones.
INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS idx_teams_name ON teams (name)",
    "CREATE INDEX IF NOT EXISTS idx_owners_email ON owners (email)",
    "CREATE INDEX IF NOT EXISTS idx_owners_team_id ON owners (team_id)",
    "CREATE INDEX IF NOT EXISTS idx_certificate_profiles_enabled ON certificate_profiles (enabled)",
    "CREATE INDEX IF NOT EXISTS idx_certificate_profiles_name ON certificate_profiles (name)",
    "CREATE INDEX IF NOT EXISTS idx_agent_groups_enabled ON agent_groups (enabled)",
    "CREATE INDEX IF NOT EXISTS idx_agent_groups_name ON agent_groups (name)",
    "CREATE INDEX IF NOT EXISTS idx_renewal_policies_name ON renewal_policies (name)",
    "CREATE INDEX IF NOT EXISTS idx_issuers_enabled ON issuers (enabled)",
    "CREATE INDEX IF NOT EXISTS idx_issuers_name ON issuers (name)",
    "CREATE INDEX IF NOT EXISTS idx_agents_architecture ON agents (architecture)",
    "CREATE INDEX IF NOT EXISTS idx_agents_hostname ON agents (hostname)",
    "CREATE INDEX IF NOT EXISTS idx_agents_last_heartbeat_at ON agents (last_heartbeat_at)",
    "CREATE INDEX IF NOT EXISTS idx_agents_online_heartbeat ON agents (status, last_heartbeat_at)"
    " WHERE status = 'online'",
    "CREATE INDEX IF NOT EXISTS idx_agents_os ON agents (os)",
    "CREATE INDEX IF NOT EXISTS idx_agents_retired_at ON agents (retired_at) WHERE retired_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_agents_status ON agents (status)",
    "CREATE INDEX IF NOT EXISTS idx_deployment_targets_agent_id ON deployment_targets (agent_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_deployment_targets_agent_name"
    " ON deployment_targets (agent_id, name)",
    "CREATE INDEX IF NOT EXISTS idx_deployment_targets_enabled ON deployment_targets (enabled)",
    "CREATE INDEX IF NOT EXISTS idx_deployment_targets_name ON deployment_targets (name)",
    "CREATE INDEX IF NOT EXISTS idx_deployment_targets_retired_at ON deployment_targets (retired_at)"
    " WHERE retired_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_managed_certificates_expires_at ON managed_certificates (expires_at)",
    "CREATE INDEX IF NOT EXISTS idx_managed_certificates_issuer_id ON managed_certificates (issuer_id)",
    "CREATE INDEX IF NOT EXISTS idx_managed_certificates_name ON managed_certificates (name)",
    "CREATE INDEX IF NOT EXISTS idx_managed_certificates_owner_id ON managed_certificates (owner_id)",
    "CREATE INDEX IF NOT EXISTS idx_managed_certificates_profile_id"
    " ON managed_certificates (certificate_profile_id)",
    "CREATE INDEX IF NOT EXISTS idx_managed_certificates_status ON managed_certificates (status)",
    "CREATE INDEX IF NOT EXISTS idx_managed_certificates_team_id ON managed_certificates (team_id)",
    "CREATE INDEX IF NOT EXISTS idx_certificate_target_mappings_target_id"
    " ON certificate_target_mappings (target_id)",
    "CREATE INDEX IF NOT EXISTS idx_jobs_agent_id ON jobs (agent_id)",
    "CREATE INDEX IF NOT EXISTS idx_jobs_certificate_id ON jobs (certificate_id)",
    "CREATE INDEX IF NOT EXISTS idx_jobs_scheduled_at ON jobs (scheduled_at)",
    "CREATE INDEX IF NOT EXISTS idx_jobs_status ON jobs (status)",
    "CREATE INDEX IF NOT EXISTS idx_jobs_status_scheduled_at ON jobs (status, scheduled_at)",
    "CREATE INDEX IF NOT EXISTS idx_jobs_verification_status ON jobs (verification_status)",
    "CREATE INDEX IF NOT EXISTS idx_jobs_verified_at ON jobs (verified_at)",
    "CREATE INDEX IF NOT EXISTS idx_certificate_versions_certificate_id"
    " ON certificate_versions (certificate_id)",
    "CREATE INDEX IF NOT EXISTS idx_certificate_versions_fingerprint"
    " ON certificate_versions (fingerprint_sha256)",
    "CREATE INDEX IF NOT EXISTS idx_certificate_versions_cert_created"
    " ON certificate_versions (certificate_id, created_at DESC)",
    "CREATE INDEX IF NOT EXISTS idx_notification_events_certificate_id"
    " ON notification_events (certificate_id)",
    "CREATE INDEX IF NOT EXISTS idx_notification_events_status ON notification_events (status)",
    "CREATE INDEX IF NOT EXISTS idx_notification_events_type ON notification_events (type)",
    "CREATE INDEX IF NOT EXISTS idx_notification_events_retry_sweep ON notification_events (next_retry_at)"
    " WHERE status = 'failed' AND next_retry_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_acme_accounts_jwk_thumb ON acme_accounts (profile_id, jwk_thumbprint)",
    "CREATE INDEX IF NOT EXISTS idx_acme_accounts_status ON acme_accounts (status) WHERE status = 'valid'",
    "CREATE INDEX IF NOT EXISTS idx_acme_orders_account ON acme_orders (account_id)",
    "CREATE INDEX IF NOT EXISTS idx_acme_orders_status ON acme_orders (status)"
    " WHERE status IN ('pending', 'ready', 'processing')",
    "CREATE INDEX IF NOT EXISTS idx_acme_orders_expires ON acme_orders (expires_at)",
    "CREATE INDEX IF NOT EXISTS idx_acme_authz_order ON acme_authorizations (order_id)",
    "CREATE INDEX IF NOT EXISTS idx_acme_authz_status ON acme_authorizations (status)"
    " WHERE status IN ('pending', 'processing')",
    "CREATE INDEX IF NOT EXISTS idx_acme_challenges_authz ON acme_challenges (authz_id)",
    "CREATE INDEX IF NOT EXISTS idx_acme_nonces_expires ON acme_nonces (expires_at) WHERE used = false",
)

# The foreign-key rows every load scenario names (k6.js hard-codes them), with the values
# certctl's seed.sql / seed_demo.sql give them. No ON CONFLICT target: a clash on id *or* on a
# UNIQUE name (a database certctl seeded differently) is skipped rather than fatal.
DEMO_ROWS: tuple[str, ...] = (
    """INSERT INTO teams (id, name, description, created_at, updated_at) VALUES
        ('t-platform', 'Platform Engineering', 'Core infrastructure and platform services',
         now() - interval '180 days', now() - interval '180 days')
       ON CONFLICT DO NOTHING""",
    """INSERT INTO owners (id, name, email, team_id, created_at, updated_at) VALUES
        ('o-alice', 'Alice Chen', 'alice@example.com', 't-platform',
         now() - interval '180 days', now() - interval '180 days')
       ON CONFLICT DO NOTHING""",
    """INSERT INTO renewal_policies (id, name, renewal_window_days, auto_renew, max_retries,
                                     retry_interval_seconds, alert_thresholds_days) VALUES
        ('rp-default', 'default', 30, true, 3, 60, '[30, 14, 7, 0]'::jsonb),
        ('rp-standard', 'Standard 30-day', 30, true, 3, 60, '[30, 14, 7, 0]'::jsonb)
       ON CONFLICT DO NOTHING""",
    """INSERT INTO issuers (id, name, type, config, enabled, created_at, updated_at) VALUES
        ('iss-local', 'Local Dev CA', 'GenericCA',
         '{"ca_common_name": "CertCtl Demo CA", "validity_days": 90}'::jsonb, true,
         now() - interval '180 days', now() - interval '180 days')
       ON CONFLICT DO NOTHING""",
)

DEMO_IDS = {
    "teams": "t-platform",
    "owners": "o-alice",
    "renewal_policies": "rp-standard",
    "issuers": "iss-local",
}


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the tables and indexes that are missing; commit. Safe to run concurrently."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        for statement in DDL + INDEXES:
            conn.execute(statement)
        ensure_audit_schema(conn)  # audit_events + hash-chain trigger, RBAC tables (audit_schema.py)


def ensure_demo_rows(conn: psycopg.Connection) -> None:
    """Insert iss-local, o-alice, t-platform, rp-standard (and rp-default) if absent; commit."""
    with conn.transaction():
        for statement in DEMO_ROWS:
            conn.execute(statement)


def missing_tables(conn: psycopg.Connection) -> list[str]:
    """The tables of :data:`TABLES` that do not exist in the connection's search path."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname = ANY(current_schemas(false))"
    ).fetchall()
    present = {r[0] for r in rows}
    return [t for t in TABLES if t not in present]
