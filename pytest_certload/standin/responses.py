"""The response shapes certctl writes, in one place so every resource answers alike.

certctl has several ways to fail a request and clients can tell them apart: its handlers write
JSON (``handler.JSON`` / ``handler.ErrorWithRequestID``), its middleware and Go's ServeMux write
plain text (``http.Error``), and its ACME server writes RFC 7807 problems. A handler picks the
helper named after the certctl function it imitates, never builds a body by hand.
"""

from __future__ import annotations

from hashlib import sha256
from http import HTTPStatus
from typing import Any

from aiohttp import web

from pytest_certload.standin.gocompat import go_json

JSON_CT = "application/json"
TEXT_CT = "text/plain; charset=utf-8"
PROBLEM_CT = "application/problem+json"
ETAG_MAX_BODY = 64 * 1024


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
    """ServeMux's 404 for a path no pattern matches."""
    return http_error(404, "404 page not found")


def method_not_allowed(allow: str) -> web.Response:
    """ServeMux's 405 for a path whose patterns do not include the method."""
    return http_error(405, "Method Not Allowed", {"Allow": allow})


def get_only() -> web.Response:
    """A GET handler reached by HEAD: certctl's handler.Error 405 (no request_id, no Allow)."""
    return json_response(405, {"error": "Method Not Allowed", "message": "Method not allowed"})


def etagged(request: web.Request, body: bytes) -> web.Response:
    """certctl's ETag middleware on list routes: strong SHA-256 validator, 304 on If-None-Match."""
    if len(body) > ETAG_MAX_BODY:
        return web.Response(status=200, body=body, headers={"Content-Type": JSON_CT})
    etag = '"' + sha256(body).hexdigest() + '"'
    inm = request.headers.get("If-None-Match", "")
    if inm and (inm.strip() == "*" or any(c.strip() == etag for c in inm.split(","))):
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(status=200, body=body, headers={"Content-Type": JSON_CT, "ETag": etag})
