"""``/api/v1/certificates``: create, get, list and bulk-renew, as certctl's CertificateHandler answers.

The handlers parse the request the Go way (:mod:`.gocompat`), apply certctl's service rules
(required fields, paging limits, bulk-renew skips) and shape the response; the SQL is in
:mod:`.repository.certificates` and :mod:`.repository.jobs`.
"""

from __future__ import annotations

from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiohttp import web

from pytest_certload.standin.audit import ADMIN_KEY_NAME, record_event_logged
from pytest_certload.standin.gocompat import (
    GO_ZERO_TIME,
    DecodeError,
    as_string,
    as_string_list,
    as_string_map,
    as_time,
    atoi,
    go_json,
    go_time,
    parse_rfc3339,
    validate_common_name,
)
from pytest_certload.standin.pool import PoolSlot
from pytest_certload.standin.repository import ScanError, generate_id, jobs
from pytest_certload.standin.repository import certificates as repo
from pytest_certload.standin.request_body import decode_struct
from pytest_certload.standin.responses import etagged, handler_error, json_response

BULK_RENEW_CAP = 50  # certctl's repository resets per_page > 500 to 50; criteria mode sees 50 rows
SKIP_RENEWAL = frozenset({"Archived", "Revoked", "Expired", "RenewalInProgress"})
CERT_FIELDS = (
    "id", "name", "common_name", "sans", "environment", "owner_id", "team_id", "issuer_id", "target_ids",
    "renewal_policy_id", "certificate_profile_id", "status", "expires_at", "tags", "last_renewal_at",
    "last_deployment_at", "revoked_at", "revocation_reason", "created_at", "updated_at", "source",
)  # fmt: skip
REQUIRED_FIELDS = ("owner_id", "team_id", "issuer_id", "name", "renewal_policy_id")
SORT_COLUMNS = {
    "notAfter": "expires_at", "expiresAt": "expires_at", "createdAt": "created_at", "updatedAt": "updated_at",
    "commonName": "common_name", "name": "name", "status": "status", "environment": "environment",
}  # fmt: skip
LIST_FILTERS = ("status", "environment", "owner_id", "team_id", "issuer_id", "agent_id", "profile_id")
TIME_FILTERS = ("expires_before", "expires_after", "created_after", "updated_after")
BULK_FIELDS = ("profile_id", "owner_id", "agent_id", "issuer_id", "team_id", "certificate_ids")


def cert_json(row: dict[str, Any]) -> dict[str, Any]:
    """A managed certificate as certctl's ManagedCertificate struct serialises (omitempty honoured)."""
    out: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "common_name": row["common_name"],
        "sans": row["sans"],
        "environment": row["environment"],
        "owner_id": row["owner_id"],
        "team_id": row["team_id"],
        "issuer_id": row["issuer_id"],
        "target_ids": row["target_ids"],
        "renewal_policy_id": row["renewal_policy_id"],
    }
    if row["certificate_profile_id"]:
        out["certificate_profile_id"] = row["certificate_profile_id"]
    out["status"] = row["status"]
    out["expires_at"] = go_time(row["expires_at"])
    out["tags"] = row["tags"]
    for key in ("last_renewal_at", "last_deployment_at", "revoked_at"):
        if row[key] is not None:
            out[key] = go_time(row[key])
    if row["revocation_reason"]:
        out["revocation_reason"] = row["revocation_reason"]
    out["created_at"] = go_time(row["created_at"])
    out["updated_at"] = go_time(row["updated_at"])
    if row["source"]:
        out["source"] = row["source"]
    return out


def decode_certificate(raw: dict[str, Any]) -> dict[str, Any]:
    """Decoded struct fields as a ManagedCertificate; DecodeError on a value of the wrong type."""
    return {
        "id": as_string(raw.get("id")),
        "name": as_string(raw.get("name")),
        "common_name": as_string(raw.get("common_name")),
        "sans": as_string_list(raw.get("sans")),
        "environment": as_string(raw.get("environment")),
        "owner_id": as_string(raw.get("owner_id")),
        "team_id": as_string(raw.get("team_id")),
        "issuer_id": as_string(raw.get("issuer_id")),
        "target_ids": as_string_list(raw.get("target_ids")),
        "renewal_policy_id": as_string(raw.get("renewal_policy_id")),
        "certificate_profile_id": as_string(raw.get("certificate_profile_id")),
        "status": as_string(raw.get("status")),
        "expires_at": as_time(raw.get("expires_at")) or GO_ZERO_TIME,
        "tags": as_string_map(raw.get("tags")),
        "last_renewal_at": as_time(raw.get("last_renewal_at")),
        "last_deployment_at": as_time(raw.get("last_deployment_at")),
        "revoked_at": as_time(raw.get("revoked_at")),
        "revocation_reason": as_string(raw.get("revocation_reason")),
        "created_at": as_time(raw.get("created_at")),
        "updated_at": as_time(raw.get("updated_at")),
        "source": as_string(raw.get("source")),
    }


def decode_cursor(text: str) -> tuple[datetime, str] | None:
    """certctl's decodeCursor, bug for bug: it splits at the *first* colon, which is inside the
    RFC 3339 time, so every cursor certctl itself hands out fails to parse and is ignored."""
    try:
        raw = urlsafe_b64decode(text.encode()).decode()
    except ValueError:
        return None
    stamp, sep, cert_id = raw.partition(":")
    parsed = parse_rfc3339(stamp) if sep else None
    return (parsed, cert_id) if parsed is not None else None


def encode_cursor(last: dict[str, Any]) -> str:
    """certctl's encodeCursor: base64url of ``<created_at RFC 3339>:<id>``."""
    return urlsafe_b64encode(f"{go_time(last['created_at'])}:{last['id']}".encode()).decode()


def _page_size(text: str) -> int | None:
    """A ?per_page= / ?page_size= value certctl accepts (1-500), else None."""
    parsed = atoi(text) if text else None
    return parsed if parsed is not None and 0 < parsed <= 500 else None


async def resolve_bulk_renewal(
    conn: psycopg.AsyncConnection, criteria: dict[str, str], ids: list[str], has_filters: bool
) -> list[dict[str, Any]]:
    """certctl's bulk-renew resolution: ids alone are looked up one by one; with criteria,
    the first BULK_RENEW_CAP matches, narrowed to the ids when both are given."""
    if not has_filters:
        found = []
        for cert_id in ids:
            try:
                cert = await repo.find_certificate(conn, cert_id)
                if cert is not None:
                    found.append(cert)
            except (ScanError, psycopg.DataError):
                continue  # certctl drops ids whose lookup fails, whatever the reason
        return found
    certs, _ = await repo.list_certificates(conn, criteria, limit=BULK_RENEW_CAP)
    if ids:
        wanted = set(ids)
        certs = [c for c in certs if c["id"] in wanted]
    return certs


@dataclass(frozen=True)
class CertificateHandlers:
    """certctl's CertificateHandler for the routes the scenarios use."""

    db: PoolSlot
    max_body_size: int  # certctl's MaxBytesReader limit (--max-body-size)

    async def create_certificate(self, request: web.Request, rid: str) -> web.StreamResponse:
        try:
            cert = decode_certificate(await decode_struct(request, CERT_FIELDS, self.max_body_size))
        except DecodeError:
            return handler_error(400, "Invalid request body", rid)
        if cert["common_name"] == "":
            return handler_error(400, "common_name is required", rid)
        problem_text = validate_common_name(cert["common_name"])
        if problem_text:
            return handler_error(400, problem_text, rid)
        for field in REQUIRED_FIELDS:
            if cert[field] == "":
                return handler_error(400, f"{field} is required", rid)
        now = datetime.now(UTC)
        cert["id"] = cert["id"] or generate_id("cert")
        cert["created_at"] = cert["created_at"] or now
        cert["updated_at"] = cert["updated_at"] or now
        cert["status"] = cert["status"] or "Pending"
        if cert["tags"] is None:
            cert["tags"] = {}
        try:
            async with self.db.connection() as conn:
                await repo.insert_certificate(conn, cert)
        except (psycopg.Error, OSError):
            return handler_error(500, "Failed to create certificate", rid)
        return json_response(201, cert_json(cert))

    async def get_certificate(self, request: web.Request, rid: str) -> web.StreamResponse:
        cert_id = request.path.removeprefix("/api/v1/certificates/")
        try:
            async with self.db.connection() as conn:
                cert = await repo.find_certificate(conn, cert_id)
                if cert is None:
                    raise LookupError(cert_id)
                cert["target_ids"] = await repo.target_ids(conn, cert_id)
        except (LookupError, ScanError, psycopg.Error, OSError):
            return handler_error(404, "Certificate not found", rid)
        return json_response(200, cert_json(cert))

    async def list_certificates(self, request: web.Request, rid: str) -> web.StreamResponse:
        q = request.query
        filters: dict[str, Any] = {k: q.get(k, "") for k in LIST_FILTERS}
        for key in TIME_FILTERS:
            filters[key] = parse_rfc3339(q[key]) if q.get(key) else None
        sort, desc = "created_at", False
        if q.get("sort"):
            raw_sort = q["sort"]
            if raw_sort.startswith("-"):
                raw_sort, desc = raw_sort[1:], True
            else:
                desc = q.get("sort_desc") == "true"
            sort = SORT_COLUMNS.get(raw_sort, "created_at")
        page = 1
        if q.get("page"):
            parsed = atoi(q["page"])
            if parsed is not None and parsed > 0:
                page = parsed
        per_page = _page_size(q.get("per_page", "")) or 50
        page_size = _page_size(q.get("page_size", "")) or 0
        cursor_text = q.get("cursor", "")
        cursor = decode_cursor(cursor_text) if cursor_text else None
        limit = page_size or per_page
        try:
            async with self.db.connection() as conn:
                certs, total = await repo.list_certificates(
                    conn,
                    filters,
                    limit=limit,
                    offset=(page - 1) * limit,
                    sort=sort,
                    desc=desc,
                    cursor_mode=bool(cursor_text),
                    cursor=cursor,
                )
        except (ScanError, psycopg.Error, OSError):
            return handler_error(500, "Failed to list certificates", rid)
        data: Any = [cert_json(c) for c in certs]  # certctl's service turns an empty page into []
        if q.get("fields"):
            keep = set(q["fields"].split(","))
            data = [{k: v for k, v in item.items() if k in keep} for item in data]
        if cursor_text:
            body: dict[str, Any] = {"data": data, "total": total}
            if certs:
                body["next_cursor"] = encode_cursor(certs[-1])
            body["page_size"] = limit
        else:
            body = {"data": data, "total": total, "page": page, "per_page": per_page}
        return etagged(request, go_json(body))

    async def bulk_renew(self, request: web.Request, rid: str) -> web.StreamResponse:
        try:
            raw = await decode_struct(request, BULK_FIELDS, self.max_body_size)
            criteria = {k: as_string(raw.get(k)) for k in BULK_FIELDS if k != "certificate_ids"}
            ids = as_string_list(raw.get("certificate_ids")) or []
        except DecodeError:
            return handler_error(400, "Invalid request body", rid)
        has_filters = any(criteria.values())
        if not has_filters and not ids:
            return handler_error(
                400,
                "At least one filter criterion is required"
                " (profile_id, owner_id, agent_id, issuer_id, team_id, or certificate_ids)",
                rid,
            )
        result: dict[str, Any] = {
            "total_matched": 0,
            "total_enqueued": 0,
            "total_skipped": 0,
            "total_failed": 0,
        }
        enqueued: list[dict[str, str]] = []
        errors: list[dict[str, str]] = []
        try:
            async with self.db.connection() as conn:
                try:
                    certs = await resolve_bulk_renewal(conn, criteria, ids, has_filters)
                except (ScanError, psycopg.Error) as exc:
                    kind = type(exc).__name__
                    return handler_error(
                        500, f"Bulk renewal failed: failed to resolve certificates: {kind}", rid
                    )
                result["total_matched"] = len(certs)
                for cert in certs:
                    if cert["status"] in SKIP_RENEWAL:
                        result["total_skipped"] += 1
                        continue
                    try:
                        await repo.mark_renewal_in_progress(conn, cert["id"])
                    except psycopg.Error as exc:
                        result["total_failed"] += 1
                        errors.append(
                            {
                                "certificate_id": cert["id"],
                                "error": f"failed to update certificate status: {exc}",
                            }
                        )
                        continue
                    expires = cert["expires_at"]
                    job_type = "Issuance" if expires is None or expires.year < 2000 else "Renewal"
                    try:
                        job_id = await jobs.enqueue_csr_job(conn, cert["id"], job_type)
                    except psycopg.Error as exc:
                        result["total_failed"] += 1
                        errors.append(
                            {"certificate_id": cert["id"], "error": f"failed to create renewal job: {exc}"}
                        )
                        continue
                    result["total_enqueued"] += 1
                    enqueued.append({"certificate_id": cert["id"], "job_id": job_id})
                await record_event_logged(
                    conn, ADMIN_KEY_NAME, "User", "bulk_renewal_initiated", "certificate", "bulk",
                    {**{k: v for k, v in criteria.items() if v}, "certificate_ids": ids, **result},
                )  # fmt: skip
        except OSError:
            return handler_error(500, "Bulk renewal failed: database unavailable", rid)
        if enqueued:
            result["enqueued_jobs"] = enqueued
        if errors:
            result["errors"] = errors
        return json_response(200, result)
