"""``managed_certificates`` and their target mappings: certctl's CertificateRepository.

Rows come back as dicts keyed by column (plus ``target_ids``), checked the way certctl's scanner
checks them, so a row the real server cannot serve is refused here too.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg

from pytest_certload.standin.repository import ScanError

CERT_COLUMNS = (
    "id, name, common_name, sans, environment, owner_id, team_id, issuer_id, renewal_policy_id, "
    "certificate_profile_id, status, expires_at, tags, last_renewal_at, last_deployment_at, revoked_at, "
    "revocation_reason, source, created_at, updated_at"
)
_COLUMN_NAMES = tuple(c.strip() for c in CERT_COLUMNS.split(","))
INSERT_CERT_SQL = """
    INSERT INTO managed_certificates (
        id, name, common_name, sans, environment, owner_id, team_id, issuer_id, renewal_policy_id,
        certificate_profile_id, status, expires_at, tags, last_renewal_at, last_deployment_at, revoked_at,
        revocation_reason, source, created_at, updated_at
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s)"""
# Filters certctl's List turns into `column = value`: query/body key -> column.
_EQUAL_FILTERS = (
    ("status", "status"), ("environment", "environment"), ("owner_id", "owner_id"), ("team_id", "team_id"),
    ("issuer_id", "issuer_id"), ("profile_id", "certificate_profile_id"),
)  # fmt: skip
_RANGE_FILTERS = (
    ("expires_before", "<", "expires_at"),
    ("expires_after", ">", "expires_at"),
    ("created_after", ">", "created_at"),
    ("updated_after", ">", "updated_at"),
)


def scan_cert(values: tuple) -> dict[str, Any]:
    """A SELECT CERT_COLUMNS row as a dict, refusing what certctl's scanner refuses."""
    row = dict(zip(_COLUMN_NAMES, values, strict=True))
    if row["environment"] is None or row["expires_at"] is None:
        raise ScanError("NULL environment or expires_at")
    tags = row["tags"]
    if tags is None:
        row["tags"] = {}
    elif not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ScanError("tags are not an object of strings")
    row["target_ids"] = []
    return row


async def insert_certificate(conn: psycopg.AsyncConnection, cert: dict[str, Any]) -> None:
    """certctl's Create: empty profile id and revocation reason are stored as NULL."""
    await conn.execute(
        INSERT_CERT_SQL,
        (
            cert["id"], cert["name"], cert["common_name"], cert["sans"], cert["environment"],
            cert["owner_id"], cert["team_id"], cert["issuer_id"], cert["renewal_policy_id"],
            cert["certificate_profile_id"] or None, cert["status"], cert["expires_at"],
            json.dumps(cert["tags"], sort_keys=True), cert["last_renewal_at"],
            cert["last_deployment_at"], cert["revoked_at"], cert["revocation_reason"] or None,
            cert["source"], cert["created_at"], cert["updated_at"],
        ),
    )  # fmt: skip


async def find_certificate(conn: psycopg.AsyncConnection, cert_id: str) -> dict[str, Any] | None:
    """One scanned row (``target_ids`` left empty), None when there is no such id."""
    row = await (
        await conn.execute(f"SELECT {CERT_COLUMNS} FROM managed_certificates WHERE id = %s", (cert_id,))
    ).fetchone()
    return None if row is None else scan_cert(row)


async def target_ids(conn: psycopg.AsyncConnection, cert_id: str) -> list[str]:
    """The certificate's deployment target ids, sorted."""
    rows = await (
        await conn.execute(
            "SELECT target_id FROM certificate_target_mappings WHERE certificate_id = %s ORDER BY target_id",
            (cert_id,),
        )
    ).fetchall()
    return [r[0] for r in rows]


async def list_certificates(
    conn: psycopg.AsyncConnection,
    filters: dict[str, Any],
    *,
    limit: int,
    offset: int = 0,
    sort: str = "created_at",
    desc: bool = False,
    cursor_mode: bool = False,
    cursor: tuple[datetime, str] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """certctl's CertificateRepository.List: COUNT, page SELECT, target ids for the page.

    ``sort`` must be a column name (the caller maps the query's sort key); falsy filters are unset.
    """
    where: list[str] = []
    args: list[Any] = []
    for key, column in _EQUAL_FILTERS:
        if filters.get(key):
            where.append(f"{column} = %s")
            args.append(filters[key])
    for key, op, column in _RANGE_FILTERS:
        if filters.get(key) is not None:
            where.append(f"{column} {op} %s")
            args.append(filters[key])
    if filters.get("agent_id"):
        where.append(
            "id IN (SELECT DISTINCT certificate_id FROM certificate_target_mappings ctm"
            " JOIN deployment_targets dt ON ctm.target_id = dt.id WHERE dt.agent_id = %s)"
        )
        args.append(filters["agent_id"])
    if cursor is not None:
        where.append("(created_at, id) < (%s, %s)")
        args.extend(cursor)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    count_sql = f"SELECT COUNT(*) FROM managed_certificates {clause}"
    total = (await (await conn.execute(count_sql, args)).fetchone())[0]
    # certctl's cursor mode (any non-empty ?cursor=) pages with LIMIT only, whatever the page.
    paging = "LIMIT %s" if cursor_mode else "LIMIT %s OFFSET %s"
    page_args = [limit] if cursor_mode else [limit, offset]
    rows = await (
        await conn.execute(
            f"SELECT {CERT_COLUMNS} FROM managed_certificates {clause}"
            f" ORDER BY {sort} {'DESC' if desc else 'ASC'} {paging}",
            args + page_args,
        )
    ).fetchall()
    certs = [scan_cert(r) for r in rows]
    if certs:
        mappings = await (
            await conn.execute(
                "SELECT certificate_id, target_id FROM certificate_target_mappings"
                " WHERE certificate_id = ANY(%s) ORDER BY certificate_id, target_id",
                ([c["id"] for c in certs],),
            )
        ).fetchall()
        by_cert: dict[str, list[str]] = {}
        for cert_id, target_id in mappings:
            by_cert.setdefault(cert_id, []).append(target_id)
        for c in certs:
            c["target_ids"] = by_cert.get(c["id"], [])
    return certs, total


async def mark_renewal_in_progress(conn: psycopg.AsyncConnection, cert_id: str) -> None:
    await conn.execute(
        "UPDATE managed_certificates SET status = 'RenewalInProgress' WHERE id = %s", (cert_id,)
    )


async def insert_version(conn: psycopg.AsyncConnection, version: dict[str, Any]) -> None:
    """certctl's CreateVersion (certificate.go:504-530): one certificate_versions row."""
    await conn.execute(
        "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,"
        " fingerprint_sha256, pem_chain, csr_pem, key_algorithm, key_size, created_at)"
        " VALUES (%(id)s, %(certificate_id)s, %(serial_number)s, %(not_before)s, %(not_after)s,"
        " %(fingerprint_sha256)s, %(pem_chain)s, %(csr_pem)s, %(key_algorithm)s, %(key_size)s,"
        " %(created_at)s)",
        version,
    )


async def mark_renewed(
    conn: psycopg.AsyncConnection, cert_id: str, expires_at: datetime, now: datetime
) -> bool:
    """The columns certctl's full-row Update changes after a signing (renewal.go:783-792)."""
    cur = await conn.execute(
        "UPDATE managed_certificates SET status = 'Active', expires_at = %s, last_renewal_at = %s,"
        " updated_at = %s WHERE id = %s",
        (expires_at, now, now, cert_id),
    )
    return cur.rowcount != 0


async def version_chains(conn: psycopg.AsyncConnection, cert_id: str) -> list[tuple[str, datetime]]:
    """(pem_chain, created_at) of every version, newest first: certctl's ListVersions
    (certificate.go:463-498) loads them all for a pickup."""
    rows = await (
        await conn.execute(
            "SELECT pem_chain, created_at FROM certificate_versions WHERE certificate_id = %s"
            " ORDER BY created_at DESC",
            (cert_id,),
        )
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


async def mapped_targets(conn: psycopg.AsyncConnection, cert_id: str) -> list[tuple[str, str | None]]:
    """(target_id, agent_id) per mapping, by target id: certctl's getTargetIDs (certificate.go:683-688)
    then one target lookup each (renewal.go:832-841); a missing target has no agent."""
    rows = await (
        await conn.execute(
            "SELECT m.target_id, dt.agent_id FROM certificate_target_mappings m"
            " LEFT JOIN deployment_targets dt ON dt.id = m.target_id"
            " WHERE m.certificate_id = %s ORDER BY m.target_id",
            (cert_id,),
        )
    ).fetchall()
    return [(r[0], r[1] or None) for r in rows]


async def profile_policy(conn: psycopg.AsyncConnection, profile_id: str) -> dict[str, Any] | None:
    """The profile fields a CSR is checked and signed against, None when there is no such profile."""
    row = await (
        await conn.execute(
            "SELECT name, allowed_key_algorithms, allowed_ekus, max_ttl_seconds"
            " FROM certificate_profiles WHERE id = %s",
            (profile_id,),
        )
    ).fetchone()
    if row is None:
        return None
    return {"name": row[0], "key_rules": row[1] or [], "ekus": row[2] or [], "max_ttl_seconds": row[3]}
