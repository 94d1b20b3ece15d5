"""The ACME tables as certctl's ACMERepository reads and writes them (internal/repository/postgres/acme.go).

``certificate_profiles``, ``acme_nonces``, ``acme_accounts``, ``acme_orders``,
``acme_authorizations``, ``acme_challenges``, and the ``managed_certificates`` +
``certificate_versions`` rows a finalize produces. Rows come back as dicts keyed by column.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pytest_certload.standin.repository import audit, generate_id

NONCE_TTL = timedelta(minutes=5)
ACTIVE_ORDER_STATES = ("pending", "ready", "processing")
#: the rows the stand-in files ACME certificates under (certctl leaves them empty: its defect)
ACME_OWNER, ACME_TEAM, ACME_POLICY = "o-acme-standin", "t-acme-standin", "rp-default"

_ORDER_COLUMNS = (
    "order_id, account_id, identifiers, status, expires_at, not_before, not_after, error, csr_pem, "
    "certificate_id, created_at, updated_at"
)
_ORDER_NAMES = tuple(c.strip() for c in _ORDER_COLUMNS.split(","))


async def profile_exists(conn: psycopg.AsyncConnection, profile_id: str) -> bool:
    row = await (
        await conn.execute("SELECT 1 FROM certificate_profiles WHERE id = %s", (profile_id,))
    ).fetchone()
    return row is not None


async def profile(conn: psycopg.AsyncConnection, profile_id: str) -> dict[str, Any] | None:
    row = await (
        await conn.execute(
            "SELECT id, acme_auth_mode, max_ttl_seconds, allowed_ekus, must_staple"
            " FROM certificate_profiles WHERE id = %s",
            (profile_id,),
        )
    ).fetchone()
    if row is None:
        return None
    return dict(
        zip(("id", "acme_auth_mode", "max_ttl_seconds", "allowed_ekus", "must_staple"), row, strict=True)
    )


async def issue_nonce(conn: psycopg.AsyncConnection) -> str:
    """A fresh Replay-Nonce, stored unused for NONCE_TTL."""
    nonce = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO acme_nonces (nonce, issued_at, expires_at, used) VALUES (%s, NOW(), %s, FALSE)",
        (nonce, datetime.now(UTC) + NONCE_TTL),
    )
    return nonce


async def consume_nonce(conn: psycopg.AsyncConnection, nonce: str) -> bool:
    """certctl's ConsumeNonce: one UPDATE, true only for an unused, unexpired nonce."""
    cur = await conn.execute(
        "UPDATE acme_nonces SET used = TRUE WHERE nonce = %s AND used = FALSE AND expires_at > NOW()",
        (nonce,),
    )
    return cur.rowcount == 1


_ACCOUNT_COLUMNS = ("account_id", "jwk_thumbprint", "jwk_pem", "contact", "status", "profile_id")


async def _account(conn: psycopg.AsyncConnection, where: str, params: tuple) -> dict[str, Any] | None:
    row = await (
        await conn.execute(f"SELECT {', '.join(_ACCOUNT_COLUMNS)} FROM acme_accounts WHERE {where}", params)
    ).fetchone()
    return None if row is None else dict(zip(_ACCOUNT_COLUMNS, row, strict=True))


async def account_by_id(conn: psycopg.AsyncConnection, account_id: str) -> dict[str, Any] | None:
    return await _account(conn, "account_id = %s", (account_id,))


async def account_by_thumbprint(conn: psycopg.AsyncConnection, profile_id: str, thumb: str) -> dict | None:
    return await _account(conn, "profile_id = %s AND jwk_thumbprint = %s", (profile_id, thumb))


async def insert_account(conn: psycopg.AsyncConnection, account: dict[str, Any]) -> None:
    """The account and its audit row (``acme_account_created``) in one transaction, as in certctl."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO acme_accounts (account_id, jwk_thumbprint, jwk_pem, contact, status, profile_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            tuple(account[c] for c in _ACCOUNT_COLUMNS),
        )
        aid = account["account_id"]
        await acme_audit(conn, aid, "acme_account_created", "acme_account", aid)


async def acme_audit(conn: psycopg.AsyncConnection, acct: str, action: str, kind: str, rid: str) -> None:
    """An ACME service audit row (actor ``acme:<account>``) on the caller's transaction."""
    await audit.insert_event(
        conn, event_id=generate_id("audit"), actor=f"acme:{acct}", actor_type="User", action=action,
        resource_type=kind, resource_id=rid, details={}, timestamp=datetime.now(UTC),
    )  # fmt: skip


async def count_active_orders(conn: psycopg.AsyncConnection, account_id: str) -> int:
    row = await (
        await conn.execute(
            "SELECT COUNT(1) FROM acme_orders WHERE account_id = %s AND status = ANY(%s)",
            (account_id, list(ACTIVE_ORDER_STATES)),
        )
    ).fetchone()
    return int(row[0])


async def insert_order(
    conn: psycopg.AsyncConnection, order: dict[str, Any], authzs: list[dict[str, Any]]
) -> None:
    """The order, one authorization per identifier and one http-01 challenge per authorization.

    Its audit row (``acme_order_created``) is the transaction's last statement, as in certctl.
    """
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO acme_orders (order_id, account_id, identifiers, status, expires_at, not_before,"
            " not_after, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                order["order_id"],
                order["account_id"],
                Jsonb(order["identifiers"]),
                order["status"],
                order["expires_at"],
                order["not_before"],
                order["not_after"],
                order["created_at"],
                order["created_at"],
            ),
        )
        for a in authzs:
            await conn.execute(
                "INSERT INTO acme_authorizations (authz_id, order_id, identifier, status, expires_at,"
                " wildcard, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    a["authz_id"],
                    order["order_id"],
                    Jsonb(a["identifier"]),
                    a["status"],
                    a["expires_at"],
                    a["wildcard"],
                    order["created_at"],
                    order["created_at"],
                ),
            )
            ch = a["challenge"]
            await conn.execute(
                "INSERT INTO acme_challenges (challenge_id, authz_id, type, status, token, validated_at,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    ch["challenge_id"],
                    a["authz_id"],
                    "http-01",
                    ch["status"],
                    ch["token"],
                    ch["validated_at"],
                    order["created_at"],
                ),
            )
        await acme_audit(conn, order["account_id"], "acme_order_created", "acme_order", order["order_id"])


async def order_by_id(conn: psycopg.AsyncConnection, order_id: str) -> dict[str, Any] | None:
    row = await (
        await conn.execute(f"SELECT {_ORDER_COLUMNS} FROM acme_orders WHERE order_id = %s", (order_id,))
    ).fetchone()
    return None if row is None else dict(zip(_ORDER_NAMES, row, strict=True))


async def authz_ids(conn: psycopg.AsyncConnection, order_id: str) -> list[str]:
    rows = await (
        await conn.execute(
            "SELECT authz_id FROM acme_authorizations WHERE order_id = %s ORDER BY created_at, authz_id",
            (order_id,),
        )
    ).fetchall()
    return [r[0] for r in rows]


async def authz_with_challenges(conn: psycopg.AsyncConnection, authz_id: str) -> dict[str, Any] | None:
    row = await (
        await conn.execute(
            "SELECT identifier, status, expires_at, wildcard FROM acme_authorizations WHERE authz_id = %s",
            (authz_id,),
        )
    ).fetchone()
    if row is None:
        return None
    chals = await (
        await conn.execute(
            "SELECT challenge_id, type, status, token, validated_at, error FROM acme_challenges"
            " WHERE authz_id = %s ORDER BY created_at, challenge_id",
            (authz_id,),
        )
    ).fetchall()
    keys = ("challenge_id", "type", "status", "token", "validated_at", "error")
    return {
        "identifier": row[0],
        "status": row[1],
        "expires_at": row[2],
        "wildcard": row[3],
        "challenges": [dict(zip(keys, c, strict=True)) for c in chals],
    }


async def set_order_status(
    conn: psycopg.AsyncConnection, order_id: str, status: str, error: dict[str, Any] | None = None
) -> None:
    await conn.execute(
        "UPDATE acme_orders SET status = %s, error = %s, updated_at = NOW() WHERE order_id = %s",
        (status, Jsonb(error) if error else None, order_id),
    )


async def ensure_acme_owner(conn: psycopg.AsyncConnection) -> None:
    """The team and owner ACME certificates are filed under (idempotent)."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO teams (id, name, description) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (ACME_TEAM, "ACME (certctl stand-in)", "certificates issued over ACME by the stand-in"),
        )
        await conn.execute(
            "INSERT INTO owners (id, name, email, team_id) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (ACME_OWNER, "ACME (certctl stand-in)", "acme@certload.test", ACME_TEAM),
        )


async def store_issued(
    conn: psycopg.AsyncConnection, order: dict[str, Any], cert: dict[str, Any], version: dict[str, Any]
) -> None:
    """The managed certificate, its version, and the order ``valid`` -- in one transaction."""
    now = datetime.now(UTC)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO managed_certificates (id, name, common_name, sans, environment, owner_id, team_id,"
            " issuer_id, renewal_policy_id, certificate_profile_id, status, expires_at, tags, source,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, '', %s, %s, %s, %s, %s, 'Active', %s,"
            " '{}'::jsonb, 'ACME', %s, %s)",
            (
                cert["id"],
                cert["name"],
                cert["common_name"],
                cert["sans"],
                ACME_OWNER,
                ACME_TEAM,
                cert["issuer_id"],
                ACME_POLICY,
                cert["profile_id"],
                cert["expires_at"],
                now,
                now,
            ),
        )
        await conn.execute(
            "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,"
            " fingerprint_sha256, pem_chain, csr_pem, key_algorithm, key_size, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                version["id"],
                cert["id"],
                version["serial"],
                version["not_before"],
                version["not_after"],
                version["fingerprint"],
                version["pem_chain"],
                version["csr_pem"],
                version["key_algorithm"],
                version["key_size"],
                now,
            ),
        )
        await conn.execute(
            "UPDATE acme_orders SET status = 'valid', error = NULL, csr_pem = %s, certificate_id = %s,"
            " updated_at = NOW() WHERE order_id = %s",
            (version["csr_pem"], cert["id"], order["order_id"]),
        )


async def certificate_chain(conn: psycopg.AsyncConnection, cert_id: str) -> str | None:
    """The latest version's PEM chain of an ACME certificate (None: no such ACME certificate)."""
    row = await (
        await conn.execute(
            "SELECT cv.pem_chain FROM managed_certificates mc JOIN certificate_versions cv"
            " ON cv.certificate_id = mc.id WHERE mc.id = %s AND mc.source = 'ACME'"
            " ORDER BY cv.created_at DESC LIMIT 1",
            (cert_id,),
        )
    ).fetchone()
    return None if row is None else row[0]


async def version_by_serial(conn: psycopg.AsyncConnection, issuer_id: str, serial_hex: str) -> dict | None:
    """ARI's lookup, as certctl intends it: the serial compared as a number (leading zeros ignored)."""
    row = await (
        await conn.execute(
            "SELECT cv.not_before, cv.not_after, mc.expires_at FROM certificate_versions cv"
            " JOIN managed_certificates mc ON mc.id = cv.certificate_id"
            " WHERE mc.issuer_id = %s AND ltrim(lower(cv.serial_number), '0') = ltrim(%s, '0')"
            " ORDER BY cv.created_at DESC LIMIT 1",
            (issuer_id, serial_hex),
        )
    ).fetchone()
    return None if row is None else {"not_before": row[0], "not_after": row[1], "expires_at": row[2]}


async def issuer_config(conn: psycopg.AsyncConnection, issuer_id: str) -> dict[str, Any] | None:
    """The enabled issuer's config (None: no such enabled issuer)."""
    row = await (
        await conn.execute("SELECT config FROM issuers WHERE id = %s AND enabled", (issuer_id,))
    ).fetchone()
    if row is None:
        return None
    config = row[0]
    return json.loads(config) if isinstance(config, str) else (config or {})


async def update_issuer(conn: psycopg.AsyncConnection, issuer: dict[str, Any]) -> int:
    """certctl's IssuerRepository.Update (no encrypted copy here); the number of rows updated."""
    cur = await conn.execute(
        "UPDATE issuers SET name = %s, type = %s, config = %s, enabled = %s, test_status = %s,"
        " updated_at = %s WHERE id = %s",
        (
            issuer["name"],
            issuer["type"],
            Jsonb(issuer["config"]) if issuer["config"] is not None else None,
            issuer["enabled"],
            issuer["test_status"],
            issuer["updated_at"],
            issuer["id"],
        ),
    )
    return cur.rowcount
