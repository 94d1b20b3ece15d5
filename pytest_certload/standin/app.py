"""The stand-in's HTTP application: certctl's routing, middleware order and response shapes.

Middleware order follows certctl's ``buildFinalHandler``: ``/health`` and ``/ready`` take the
no-auth chain (request id, security headers, their own rate limiter); everything else takes the
full chain (request id, security headers, API rate limiter, Bearer auth, router). So an unknown
path without a token is a 401, with a token a 404, exactly as on certctl without a dashboard.

Not reproduced (stand-in limits, on purpose): RBAC queries, the audit trail, the scheduler, ETag
on routes other than the certificate list, every route the load scenarios do not use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import random
import secrets
import time
import uuid
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import psycopg
from aiohttp import web

from pytest_certload.standin.config import StandinConfig
from pytest_certload.standin.gocompat import (
    GO_ZERO_TIME,
    DecodeError,
    as_string,
    as_string_list,
    as_string_map,
    as_time,
    atoi,
    decode_first_value,
    go_json,
    go_time,
    parse_rfc3339,
    struct_fields,
    valid_ari_cert_id,
    validate_common_name,
)
from pytest_certload.standin.pool import ConnectionPool
from pytest_certload.standin.ratelimit import KeyedRateLimiter

log = logging.getLogger("certload.standin")

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer-when-downgrade",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "Permissions-Policy": "accelerometer=(), camera=(), geolocation=(), microphone=(), payment=(), usb=(), "
    "interest-cohort=()",
}
SERVER_LABEL = "certctl-stand-in (pytest-certload test double)"
JSON_CT = "application/json"
TEXT_CT = "text/plain; charset=utf-8"
PROBLEM_CT = "application/problem+json"
ETAG_MAX_BODY = 64 * 1024
NONCE_TTL = timedelta(minutes=5)
BULK_RENEW_CAP = 50  # certctl's repository resets per_page > 500 to 50; criteria mode sees 50 rows
SKIP_RENEWAL = frozenset({"Archived", "Revoked", "Expired", "RenewalInProgress"})

CERT_FIELDS = (
    "id", "name", "common_name", "sans", "environment", "owner_id", "team_id", "issuer_id", "target_ids",
    "renewal_policy_id", "certificate_profile_id", "status", "expires_at", "tags", "last_renewal_at",
    "last_deployment_at", "revoked_at", "revocation_reason", "created_at", "updated_at", "source",
)  # fmt: skip
CERT_COLUMNS = (
    "id, name, common_name, sans, environment, owner_id, team_id, issuer_id, renewal_policy_id, "
    "certificate_profile_id, status, expires_at, tags, last_renewal_at, last_deployment_at, revoked_at, "
    "revocation_reason, source, created_at, updated_at"
)
SORT_COLUMNS = {
    "notAfter": "expires_at", "expiresAt": "expires_at", "createdAt": "created_at", "updatedAt": "updated_at",
    "commonName": "common_name", "name": "name", "status": "status", "environment": "environment",
}  # fmt: skip
INSERT_CERT_SQL = """
    INSERT INTO managed_certificates (
        id, name, common_name, sans, environment, owner_id, team_id, issuer_id, renewal_policy_id,
        certificate_profile_id, status, expires_at, tags, last_renewal_at, last_deployment_at, revoked_at,
        revocation_reason, source, created_at, updated_at
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s)"""
INSERT_JOB_SQL = """
    INSERT INTO jobs (
        id, type, certificate_id, target_id, agent_id, status, attempts, max_attempts, last_error,
        scheduled_at, started_at, completed_at, created_at
    ) VALUES (%s, %s, %s, NULL, NULL, 'AwaitingCSR', 0, 3, NULL, %s, NULL, NULL, %s)"""
CSR_JOBS_SQL = """
    SELECT {cols} FROM jobs j
    WHERE j.status = 'AwaitingCSR' AND j.type IN ('Renewal', 'Issuance')
      AND EXISTS (SELECT 1 FROM certificate_target_mappings ctm
                  JOIN deployment_targets dt ON ctm.target_id = dt.id
                  WHERE ctm.certificate_id = j.certificate_id AND dt.agent_id = %s)
    ORDER BY j.created_at ASC FOR UPDATE SKIP LOCKED"""
BULK_FIELDS = ("profile_id", "owner_id", "agent_id", "issuer_id", "team_id", "certificate_ids")
HEARTBEAT_FIELDS = ("version", "hostname", "os", "architecture", "ip_address")

_ids = itertools.count(1)


def generate_id(prefix: str) -> str:
    """certctl's generateID: ``<prefix>-<unix nanos>-<process counter>``."""
    return f"{prefix}-{time.time_ns()}-{next(_ids)}"


class ScanError(RuntimeError):
    """A row certctl's Go scanner would refuse (NULL in a string column, non-string tag)."""


# ---------------------------------------------------------------- responses


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    """certctl's handler.JSON."""
    return web.Response(
        status=status, body=go_json(data), headers={"Content-Type": JSON_CT, **(headers or {})}
    )


def handler_error(status: int, message: str, request_id: str) -> web.Response:
    """certctl's handler.ErrorWithRequestID: {"error","message","request_id"}."""
    body = {"error": HTTPStatus(status).phrase, "message": message, "request_id": request_id}
    return json_response(status, body)


def http_error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """Go's http.Error: text/plain whatever the text looks like, newline-terminated."""
    return web.Response(
        status=status,
        body=(text + "\n").encode(),
        headers={"Content-Type": TEXT_CT, "X-Content-Type-Options": "nosniff", **(headers or {})},
    )


def problem(status: int, type_: str, detail: str) -> web.Response:
    """certctl's acme.WriteProblem (RFC 7807)."""
    body = {"type": f"urn:ietf:params:acme:error:{type_}", "detail": detail, "status": status}
    return web.Response(status=status, body=go_json(body), headers={"Content-Type": PROBLEM_CT})


def not_found() -> web.Response:
    return http_error(404, "404 page not found")


def method_not_allowed(allow: str) -> web.Response:
    """ServeMux's 405 for a path whose patterns do not include the method."""
    return http_error(405, "Method Not Allowed", {"Allow": allow})


def get_only() -> web.Response:
    """A GET handler reached by HEAD: certctl's handler.Error 405 (no request_id, no Allow)."""
    return json_response(405, {"error": "Method Not Allowed", "message": "Method not allowed"})


def clean_path(path: str) -> str:
    """Go's ServeMux cleanPath: collapse // and resolve . and .., keep a trailing slash."""
    if path == "" or path[0] != "/":
        path = "/" + path
    if "//" not in path and "/." not in path:
        return path
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    cleaned = "/" + "/".join(parts)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


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


def scan_cert(values: tuple) -> dict[str, Any]:
    """A SELECT CERT_COLUMNS row as a dict, refusing what certctl's scanner refuses."""
    names = [c.strip() for c in CERT_COLUMNS.split(",")]
    row = dict(zip(names, values, strict=True))
    if row["environment"] is None or row["expires_at"] is None:
        raise ScanError("NULL environment or expires_at")
    tags = row["tags"]
    if tags is None:
        row["tags"] = {}
    elif not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ScanError("tags are not an object of strings")
    row["target_ids"] = []
    return row


# ---------------------------------------------------------------- application


class Standin:
    """Route table and handlers; one instance per process."""

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self.pool: ConnectionPool | None = None
        self.api_limiter = KeyedRateLimiter(config.rate_limit_rps, config.rate_limit_burst)
        self.noauth_limiter = KeyedRateLimiter(config.rate_limit_rps, config.rate_limit_burst)
        self._token = config.token.encode()

    # -- entry point ---------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        try:
            response = await self._dispatch(request, request_id)
        except Exception:  # certctl's Recovery middleware: log, answer 500, keep serving
            log.exception(
                "unhandled error on %s %s (request_id %s)", request.method, request.path, request_id
            )
            response = http_error(500, '{"error":"Internal Server Error"}')
        response.headers.update(SECURITY_HEADERS)
        response.headers["X-Request-ID"] = request_id
        response.headers["Server"] = SERVER_LABEL  # certctl sends none; the double says what it is
        return response

    async def _dispatch(self, request: web.Request, rid: str) -> web.StreamResponse:
        path = request.path
        peer = request.remote or ""
        if path in ("/health", "/ready"):
            if self.config.rate_limit and not self.noauth_limiter.allow(peer):
                return self._rate_limited()
            if request.method not in ("GET", "HEAD"):
                return method_not_allowed("GET, HEAD")
            if request.method == "HEAD":  # ServeMux routes HEAD to the GET handler, which refuses it
                return http_error(405, "Method not allowed")
            route = "health" if path == "/health" else "ready"
            return await self._run(route, request, rid, self.health if route == "health" else self.ready)
        if self.config.rate_limit and not self.api_limiter.allow(peer):
            return self._rate_limited()
        if request.method == "OPTIONS":  # certctl's CORS middleware answers preflights before auth
            return web.Response(status=204)
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        return await self._route(request, rid, path)

    async def _route(self, request: web.Request, rid: str, path: str) -> web.StreamResponse:
        method = request.method
        get = method in ("GET", "HEAD")
        cleaned = clean_path(path)
        if cleaned != path:  # ServeMux redirects to the cleaned path
            location = cleaned + (f"?{request.query_string}" if request.query_string else "")
            return web.Response(
                status=307,
                body=f'<a href="{location}">Temporary Redirect</a>.\n\n'.encode(),
                headers={"Location": location, "Content-Type": "text/html; charset=utf-8"},
            )
        # ServeMux matches patterns against the escaped path; handlers then read the decoded one.
        parts = [unquote(p) for p in request.raw_path.split("?", 1)[0].split("/")[1:]]
        request["path_values"] = parts
        if path == "/api/v1/certificates":
            if method == "HEAD":
                return get_only()
            if get:
                return await self._run("list_certificates", request, rid, self.list_certificates)
            if method == "POST":
                return await self._run("create_certificate", request, rid, self.create_certificate)
            return method_not_allowed("GET, HEAD, POST")
        if len(parts) == 4 and parts[:3] == ["api", "v1", "certificates"] and parts[3]:
            if parts[3] == "bulk-renew" and method == "POST":
                return await self._run("bulk_renew", request, rid, self.bulk_renew)
            if method == "HEAD":
                return get_only()
            if get:
                return await self._run("get_certificate", request, rid, self.get_certificate)
            return method_not_allowed("GET, HEAD, POST" if parts[3] == "bulk-renew" else "GET, HEAD")
        if len(parts) == 5 and parts[:3] == ["api", "v1", "agents"] and parts[3]:
            if parts[4] == "heartbeat":
                if method == "POST":
                    return await self._run("heartbeat", request, rid, self.heartbeat)
                return method_not_allowed("POST")
            if parts[4] == "work":
                if method == "HEAD":
                    return get_only()
                if get:
                    return await self._run("work", request, rid, self.work)
                return method_not_allowed("GET, HEAD")
        if len(parts) >= 4 and parts[:2] == ["acme", "profile"] and parts[2]:
            tail = parts[3:]
            handler: Callable | None = None
            route = ""
            if tail == ["directory"]:
                route, handler = "acme_directory", self.acme_directory
            elif tail == ["new-nonce"]:
                route, handler = "acme_new_nonce", self.acme_new_nonce
            elif len(tail) == 2 and tail[0] == "renewal-info" and tail[1]:
                route, handler = "acme_renewal_info", self.acme_renewal_info
            if handler is not None:
                if not get:
                    return method_not_allowed("GET, HEAD")
                return await self._run(route, request, rid, handler)
        return not_found()

    async def _run(
        self,
        route: str,
        request: web.Request,
        rid: str,
        handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        delay = self.config.latency_for(route)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)  # injected latency, the point of the option
        rate = self.config.error_rate_for(route)
        if rate > 0 and random.random() < rate:
            return handler_error(500, "injected failure (certctl stand-in --error-rate)", rid)
        return await handler(request, rid)

    def _rate_limited(self) -> web.Response:
        return http_error(429, '{"error":"Rate limit exceeded"}', {"Retry-After": "1"})

    def _authenticate(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if header == "":
            return http_error(
                401,
                '{"error":"Authorization header required"}',
                {"WWW-Authenticate": 'Bearer realm="certctl"'},
            )
        if len(header) < 8 or not header.startswith("Bearer "):
            return http_error(
                401, '{"error":"Invalid Authorization header format, expected: Bearer <token>"}'
            )
        if not hmac.compare_digest(header[7:].encode("utf-8", "surrogateescape"), self._token):
            return http_error(401, '{"error":"Invalid API key"}')
        return None

    async def _body(self, request: web.Request) -> tuple[bytes, bool]:
        """At most max_body_size bytes of the body, and whether there was more (MaxBytesReader)."""
        if not request.body_exists:
            return b"", False
        limit = self.config.max_body_size
        buf = bytearray()
        while len(buf) <= limit:
            chunk = await request.content.read(limit + 1 - len(buf))
            if not chunk:
                break
            buf += chunk
        return bytes(buf[:limit]), len(buf) > limit

    async def _decode(self, request: web.Request, names: tuple[str, ...]) -> dict[str, Any]:
        body, _truncated = await self._body(request)
        # Past the limit Go's decoder errors unless the first value ended inside it: same here.
        return struct_fields(decode_first_value(body), names)

    # -- health ------------------------------------------------------------------

    async def health(self, request: web.Request, rid: str) -> web.StreamResponse:
        return json_response(200, {"status": "healthy"})

    async def ready(self, request: web.Request, rid: str) -> web.StreamResponse:
        assert self.pool is not None
        try:
            async with asyncio.timeout(2.0), self.pool.connection() as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, OSError, TimeoutError):
            return json_response(503, {"error": "database ping failed", "status": "db_unavailable"})
        return json_response(200, {"db": "reachable", "status": "ready"})

    # -- certificates ------------------------------------------------------------

    async def create_certificate(self, request: web.Request, rid: str) -> web.StreamResponse:
        try:
            raw = await self._decode(request, CERT_FIELDS)
            cert = {
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
        except DecodeError:
            return handler_error(400, "Invalid request body", rid)
        if cert["common_name"] == "":
            return handler_error(400, "common_name is required", rid)
        problem_text = validate_common_name(cert["common_name"])
        if problem_text:
            return handler_error(400, problem_text, rid)
        for field in ("owner_id", "team_id", "issuer_id", "name", "renewal_policy_id"):
            if cert[field] == "":
                return handler_error(400, f"{field} is required", rid)
        now = datetime.now(UTC)
        cert["id"] = cert["id"] or generate_id("cert")
        cert["created_at"] = cert["created_at"] or now
        cert["updated_at"] = cert["updated_at"] or now
        cert["status"] = cert["status"] or "Pending"
        if cert["tags"] is None:
            cert["tags"] = {}
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
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
        except (psycopg.Error, OSError):
            return handler_error(500, "Failed to create certificate", rid)
        return json_response(201, cert_json(cert))

    async def get_certificate(self, request: web.Request, rid: str) -> web.StreamResponse:
        cert_id = request.path.removeprefix("/api/v1/certificates/")
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                row = await (
                    await conn.execute(
                        f"SELECT {CERT_COLUMNS} FROM managed_certificates WHERE id = %s", (cert_id,)
                    )
                ).fetchone()
                if row is None:
                    raise LookupError(cert_id)
                cert = scan_cert(row)
                targets = await (
                    await conn.execute(
                        "SELECT target_id FROM certificate_target_mappings WHERE certificate_id = %s"
                        " ORDER BY target_id",
                        (cert_id,),
                    )
                ).fetchall()
        except (LookupError, ScanError, psycopg.Error, OSError):
            return handler_error(404, "Certificate not found", rid)
        cert["target_ids"] = [t[0] for t in targets]
        return json_response(200, cert_json(cert))

    async def _list_rows(
        self,
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
        """certctl's CertificateRepository.List: COUNT, page SELECT, target ids for the page."""
        where: list[str] = []
        args: list[Any] = []
        for column in ("status", "environment", "owner_id", "team_id", "issuer_id"):
            if filters.get(column):
                where.append(f"{column} = %s")
                args.append(filters[column])
        if filters.get("profile_id"):
            where.append("certificate_profile_id = %s")
            args.append(filters["profile_id"])
        for key, op, column in (
            ("expires_before", "<", "expires_at"),
            ("expires_after", ">", "expires_at"),
            ("created_after", ">", "created_at"),
            ("updated_after", ">", "updated_at"),
        ):
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

    async def list_certificates(self, request: web.Request, rid: str) -> web.StreamResponse:
        q = request.query
        filters: dict[str, Any] = {
            k: q.get(k, "")
            for k in ("status", "environment", "owner_id", "team_id", "issuer_id", "agent_id", "profile_id")
        }
        for key in ("expires_before", "expires_after", "created_after", "updated_after"):
            filters[key] = parse_rfc3339(q[key]) if q.get(key) else None
        sort, desc = "created_at", False
        if q.get("sort"):
            raw_sort = q["sort"]
            if raw_sort.startswith("-"):
                raw_sort, desc = raw_sort[1:], True
            else:
                desc = q.get("sort_desc") == "true"
            sort = SORT_COLUMNS.get(raw_sort, "created_at")
        page, per_page, page_size = 1, 50, 0
        if q.get("page"):
            parsed = atoi(q["page"])
            if parsed is not None and parsed > 0:
                page = parsed
        if q.get("per_page"):
            parsed = atoi(q["per_page"])
            if parsed is not None and 0 < parsed <= 500:
                per_page = parsed
        if q.get("page_size"):
            parsed = atoi(q["page_size"])
            if parsed is not None and 0 < parsed <= 500:
                page_size = parsed
        cursor_text = q.get("cursor", "")
        cursor = _decode_cursor(cursor_text) if cursor_text else None
        limit = page_size or per_page
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                certs, total = await self._list_rows(
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
                last = certs[-1]
                raw = f"{go_time(last['created_at'])}:{last['id']}".encode()
                body["next_cursor"] = urlsafe_b64encode(raw).decode()
            body["page_size"] = page_size or per_page
        else:
            body = {"data": data, "total": total, "page": page, "per_page": per_page}
        return _etagged(request, go_json(body))

    async def bulk_renew(self, request: web.Request, rid: str) -> web.StreamResponse:
        try:
            raw = await self._decode(request, BULK_FIELDS)
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
        assert self.pool is not None
        result: dict[str, Any] = {
            "total_matched": 0,
            "total_enqueued": 0,
            "total_skipped": 0,
            "total_failed": 0,
        }
        enqueued: list[dict[str, str]] = []
        errors: list[dict[str, str]] = []
        try:
            async with self.pool.connection() as conn:
                try:
                    certs = await self._resolve_bulk(conn, criteria, ids, has_filters)
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
                        await conn.execute(
                            "UPDATE managed_certificates SET status = 'RenewalInProgress' WHERE id = %s",
                            (cert["id"],),
                        )
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
                    job_id = generate_id("job")
                    now = datetime.now(UTC)
                    try:
                        await conn.execute(
                            INSERT_JOB_SQL,
                            (job_id, job_type, cert["id"], now, now),
                        )
                    except psycopg.Error as exc:
                        result["total_failed"] += 1
                        errors.append(
                            {"certificate_id": cert["id"], "error": f"failed to create renewal job: {exc}"}
                        )
                        continue
                    result["total_enqueued"] += 1
                    enqueued.append({"certificate_id": cert["id"], "job_id": job_id})
        except OSError:
            return handler_error(500, "Bulk renewal failed: database unavailable", rid)
        if enqueued:
            result["enqueued_jobs"] = enqueued
        if errors:
            result["errors"] = errors
        return json_response(200, result)

    async def _resolve_bulk(
        self, conn: psycopg.AsyncConnection, criteria: dict[str, str], ids: list[str], has_filters: bool
    ) -> list[dict[str, Any]]:
        if not has_filters:
            found = []
            for cert_id in ids:
                try:
                    row = await (
                        await conn.execute(
                            f"SELECT {CERT_COLUMNS} FROM managed_certificates WHERE id = %s", (cert_id,)
                        )
                    ).fetchone()
                    if row is not None:
                        found.append(scan_cert(row))
                except (ScanError, psycopg.DataError):
                    continue  # certctl drops ids whose lookup fails, whatever the reason
            return found
        certs, _ = await self._list_rows(conn, criteria, limit=BULK_RENEW_CAP)
        if ids:
            wanted = set(ids)
            certs = [c for c in certs if c["id"] in wanted]
        return certs

    # -- agents ------------------------------------------------------------------

    async def _load_agent(self, conn: psycopg.AsyncConnection, agent_id: str) -> tuple[str, Any] | None:
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

    async def heartbeat(self, request: web.Request, rid: str) -> web.StreamResponse:
        agent_id = request.path.removeprefix("/api/v1/agents/").split("/")[0]
        metadata: dict[str, str] | None = None
        try:
            raw = await self._decode(request, HEARTBEAT_FIELDS)
            fields = {k: as_string(raw.get(k)) for k in HEARTBEAT_FIELDS}
            if any(fields.values()):
                metadata = fields
        except DecodeError:
            metadata = None  # certctl ignores an undecodable heartbeat body
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                agent = await self._load_agent(conn, agent_id)
                if agent is None:
                    # certctl HEAD wraps sql.ErrNoRows twice, so "not found" surfaces as a 500.
                    return handler_error(500, "Failed to record heartbeat", rid)
                status, retired_at = agent
                if retired_at is not None:
                    return handler_error(410, "Agent has been retired", rid)
                now = datetime.now(UTC)
                if metadata is None:
                    cur = await conn.execute(
                        "UPDATE agents SET last_heartbeat_at = %s WHERE id = %s AND retired_at IS NULL",
                        (now, agent_id),
                    )
                else:
                    cur = await conn.execute(
                        "UPDATE agents SET last_heartbeat_at = %(now)s,"
                        " hostname = CASE WHEN %(hostname)s = '' THEN hostname ELSE %(hostname)s END,"
                        " os = CASE WHEN %(os)s = '' THEN os ELSE %(os)s END,"
                        " architecture = CASE WHEN %(architecture)s = '' THEN architecture"
                        " ELSE %(architecture)s END,"
                        " ip_address = CASE WHEN %(ip_address)s = '' THEN ip_address ELSE %(ip_address)s END,"
                        " version = CASE WHEN %(version)s = '' THEN version ELSE %(version)s END"
                        " WHERE id = %(id)s AND retired_at IS NULL",
                        {"now": now, "id": agent_id, **metadata},
                    )
                if cur.rowcount == 0:
                    return handler_error(404, "Agent not found", rid)
                if status != "Online":
                    await conn.execute("UPDATE agents SET status = 'Online' WHERE id = %s", (agent_id,))
        except (psycopg.Error, OSError):
            return handler_error(500, "Failed to record heartbeat", rid)
        return json_response(200, {"status": "heartbeat_recorded"})

    async def work(self, request: web.Request, rid: str) -> web.StreamResponse:
        agent_id = request.path.removeprefix("/api/v1/agents/").split("/")[0]
        job_cols = "j.id, j.type, j.certificate_id, j.target_id, j.status, j.scheduled_at"
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                if await self._load_agent(conn, agent_id) is None:
                    return handler_error(500, "Failed to get pending work", rid)
                async with conn.transaction():
                    direct = await (
                        await conn.execute(
                            f"SELECT {job_cols} FROM jobs j WHERE j.agent_id = %s AND j.status = 'Pending'"
                            " AND j.type = 'Deployment' ORDER BY j.created_at ASC FOR UPDATE SKIP LOCKED",
                            (agent_id,),
                        )
                    ).fetchall()
                    fallback = await (
                        await conn.execute(
                            f"SELECT {job_cols} FROM jobs j JOIN deployment_targets dt ON j.target_id = dt.id"
                            " WHERE j.agent_id IS NULL AND j.status = 'Pending' AND j.type = 'Deployment'"
                            " AND dt.agent_id = %s ORDER BY j.created_at ASC FOR UPDATE OF j SKIP LOCKED",
                            (agent_id,),
                        )
                    ).fetchall()
                    csr = await (
                        await conn.execute(
                            CSR_JOBS_SQL.format(cols=job_cols),
                            (agent_id,),
                        )
                    ).fetchall()
                    if any(r[2] is None or r[5] is None for r in direct + fallback + csr):
                        # certctl's scanJob reads certificate_id and scheduled_at into non-pointer fields
                        raise ScanError("job row with NULL certificate_id or scheduled_at")
                    claimed = [r[0] for r in direct + fallback]
                    if claimed:
                        await conn.execute(
                            "UPDATE jobs SET status = 'Running' WHERE id = ANY(%s)", (claimed,)
                        )
                items = []
                for job_id, job_type, cert_id, target_id, status, _scheduled in direct + fallback + csr:
                    item: dict[str, Any] = {"id": job_id, "type": job_type, "certificate_id": cert_id or ""}
                    if status == "AwaitingCSR" and cert_id:
                        crow = await (
                            await conn.execute(
                                "SELECT common_name, sans FROM managed_certificates WHERE id = %s", (cert_id,)
                            )
                        ).fetchone()
                        if crow is not None:
                            if crow[0]:
                                item["common_name"] = crow[0]
                            if crow[1]:
                                item["sans"] = crow[1]
                    if target_id:
                        item["target_id"] = target_id
                        trow = await (
                            await conn.execute(
                                "SELECT type, config FROM deployment_targets WHERE id = %s", (target_id,)
                            )
                        ).fetchone()
                        if trow is not None:
                            if trow[0]:
                                item["target_type"] = trow[0]
                            if trow[1] is not None:
                                item["target_config"] = trow[1]
                    item["status"] = "Running" if job_id in claimed else status
                    items.append(item)
        except (ScanError, psycopg.Error, OSError):
            return handler_error(500, "Failed to get pending work", rid)
        return json_response(200, {"count": len(items), "jobs": items})

    # -- ACME --------------------------------------------------------------------

    async def _profile_exists(self, conn: psycopg.AsyncConnection, profile_id: str) -> bool:
        row = await (
            await conn.execute("SELECT 1 FROM certificate_profiles WHERE id = %s", (profile_id,))
        ).fetchone()
        return row is not None

    async def _issue_nonce(self, conn: psycopg.AsyncConnection) -> str:
        nonce = secrets.token_urlsafe(32)
        await conn.execute(
            "INSERT INTO acme_nonces (nonce, issued_at, expires_at, used) VALUES (%s, NOW(), %s, FALSE)",
            (nonce, datetime.now(UTC) + NONCE_TTL),
        )
        return nonce

    @staticmethod
    def _unknown_profile() -> web.Response:
        # certctl HEAD: the profile repository's double-wrapped ErrNoRows falls through to serverInternal.
        return problem(500, "serverInternal", "ACME server error")

    async def acme_directory(self, request: web.Request, rid: str) -> web.StreamResponse:
        profile_id = request["path_values"][2]
        base = f"https://{request.host}/acme/profile/{profile_id}"
        headers = {"Cache-Control": "public, max-age=0, no-cache"}
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                if not await self._profile_exists(conn, profile_id):
                    return self._unknown_profile()
                with contextlib.suppress(psycopg.Error):  # certctl serves the directory without a nonce then
                    headers["Replay-Nonce"] = await self._issue_nonce(conn)
        except (psycopg.Error, OSError):
            return self._unknown_profile()
        directory = {
            "newNonce": f"{base}/new-nonce",
            "newAccount": f"{base}/new-account",
            "newOrder": f"{base}/new-order",
            "revokeCert": f"{base}/revoke-cert",
            "keyChange": f"{base}/key-change",
            "renewalInfo": f"{base}/renewal-info",
        }
        return json_response(200, directory, headers)

    async def acme_new_nonce(self, request: web.Request, rid: str) -> web.StreamResponse:
        profile_id = request["path_values"][2]
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                if not await self._profile_exists(conn, profile_id):
                    return self._unknown_profile()
                try:
                    nonce = await self._issue_nonce(conn)
                except psycopg.Error:
                    return problem(500, "serverInternal", "nonce issuance failed")
        except (psycopg.Error, OSError):
            return self._unknown_profile()
        status = 200 if request.method == "HEAD" else 204
        response = web.Response(status=status, headers={"Replay-Nonce": nonce, "Cache-Control": "no-store"})
        return response

    async def acme_renewal_info(self, request: web.Request, rid: str) -> web.StreamResponse:
        profile_id, cert_id = request["path_values"][2], request["path_values"][4]
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                if not await self._profile_exists(conn, profile_id):
                    return self._unknown_profile()
                if not valid_ari_cert_id(cert_id):
                    return problem(400, "malformed", "ARI cert-id is malformed")
                # certctl looks the serial up in certificate_versions; the stand-in has no versions,
                # so it pays one comparable indexed lookup and always reports "not found".
                await conn.execute("SELECT 1 FROM managed_certificates WHERE id = %s", (cert_id,))
        except (psycopg.Error, OSError):
            return self._unknown_profile()
        return problem(404, "malformed", "resource not found")


def _decode_cursor(text: str) -> tuple[datetime, str] | None:
    """certctl's decodeCursor, bug for bug: it splits at the *first* colon, which is inside the
    RFC 3339 time, so every cursor certctl itself hands out fails to parse and is ignored."""
    try:
        raw = urlsafe_b64decode(text.encode()).decode()
    except ValueError:
        return None
    stamp, sep, cert_id = raw.partition(":")
    parsed = parse_rfc3339(stamp) if sep else None
    return (parsed, cert_id) if parsed is not None else None


def _etagged(request: web.Request, body: bytes) -> web.Response:
    """certctl's ETag middleware on list routes: strong SHA-256 validator, 304 on If-None-Match."""
    if len(body) > ETAG_MAX_BODY:
        return web.Response(status=200, body=body, headers={"Content-Type": JSON_CT})
    etag = '"' + sha256(body).hexdigest() + '"'
    inm = request.headers.get("If-None-Match", "")
    if inm and (inm.strip() == "*" or any(c.strip() == etag for c in inm.split(","))):
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(status=200, body=body, headers={"Content-Type": JSON_CT, "ETag": etag})


def build_app(config: StandinConfig) -> web.Application:
    """The aiohttp application: one catch-all route so 404/405 look like Go's ServeMux."""
    standin = Standin(config)
    app = web.Application(client_max_size=1 << 40)  # bodies are bounded by Standin._body, not aiohttp

    async def pool_lifecycle(_app: web.Application):
        standin.pool = ConnectionPool(config.dsn, max_size=config.pool_size)
        yield
        await standin.pool.close()

    app.cleanup_ctx.append(pool_lifecycle)
    app.router.add_route("*", "/{tail:.*}", standin.handle)
    app["standin"] = standin
    return app
