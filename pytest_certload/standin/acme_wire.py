"""ACME wire shapes for the stand-in: ids, URLs, order/authz JSON, payload decoding, the order limiter.

What certctl's internal/api/acme package renders and parses (order.go MarshalOrder,
MarshalAuthorization, ValidateIdentifiers, the payload structs) and its per-account orders/hour
token bucket (ratelimit.go), kept apart from the handlers in :mod:`.acme`.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

ORDERS_PER_HOUR = 100  # CERTCTL_ACME_SERVER_RATE_LIMIT_ORDERS_PER_HOUR default
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def rand_id() -> str:
    """certctl's randIDSuffix: 10 random bytes in its lowercase base32 alphabet (16 characters)."""
    n = int.from_bytes(secrets.token_bytes(10), "big")
    return "".join(_ID_ALPHABET[(n >> s) & 31] for s in range(75, -1, -5))


def seconds(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OrderRateLimit:
    """certctl's per-account orders/hour token bucket (capacity = limit, refill limit/3600 per s)."""

    def __init__(self, per_hour: int = ORDERS_PER_HOUR) -> None:
        self.per_hour = per_hour
        self.buckets: dict[str, list[float]] = {}  # account -> [tokens, last refill]

    def _refill(self, key: str) -> list[float]:
        now = time.monotonic()
        b = self.buckets.setdefault(key, [float(self.per_hour), now])
        b[0] = min(float(self.per_hour), b[0] + (now - b[1]) * self.per_hour / 3600.0)
        b[1] = now
        return b

    def allow(self, key: str) -> bool:
        b = self._refill(key)
        if b[0] < 1:
            return False
        b[0] -= 1
        return True

    def retry_after(self, key: str) -> int:
        """RateLimiter.RetryAfter, which certctl's handler was meant to send (whole seconds, >= 1)."""
        return max(1, math.ceil((1 - self._refill(key)[0]) * 3600.0 / self.per_hour))


class Urls:
    """The URLs certctl builds from the request: https + Host + the per-profile path."""

    def __init__(self, request: web.Request) -> None:
        self.profile = request["path_values"][2]
        self.base = f"https://{request.host}/acme/profile/{self.profile}"
        self.request_url = f"https://{request.host}{request.path}"

    def kid(self, account_id: str) -> str:
        return f"{self.base}/account/{account_id}"

    def order(self, order: dict[str, Any], authz_ids: list[str]) -> dict[str, Any]:
        """acme.MarshalOrder's wire shape."""
        out: dict[str, Any] = {"status": order["status"], "expires": seconds(order["expires_at"])}
        for key, name in (("not_before", "notBefore"), ("not_after", "notAfter")):
            if order.get(key):
                out[name] = seconds(order[key])
        out["identifiers"] = [{"type": i["type"], "value": i["value"]} for i in order["identifiers"]]
        out["authorizations"] = [f"{self.base}/authz/{a}" for a in authz_ids]
        out["finalize"] = f"{self.base}/order/{order['order_id']}/finalize"
        if order.get("certificate_id") and order["status"] == "valid":
            out["certificate"] = f"{self.base}/cert/{order['certificate_id']}"
        if order.get("error"):
            err = order["error"]
            out["error"] = {
                "type": err.get("type", ""),
                "detail": err.get("detail", ""),
                "status": err.get("status", 0),
            }
        return out


def payload(raw: bytes, fields: dict[str, type]) -> dict[str, Any]:
    """json.Unmarshal into a Go struct: the whole payload one JSON object, fields of the right type."""
    doc = json.loads(raw)  # ValueError on "" or trailing bytes, as Go's Unmarshal
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    out = {}
    for key, value in doc.items():
        name = next((f for f in fields if f.lower() == key.lower()), None)
        if name is None or value is None:
            continue
        if not isinstance(value, fields[name]) or (fields[name] is int and isinstance(value, bool)):
            raise ValueError(f"{key}: wrong type")
        out[name] = value
    return out


def csr_names(csr: x509.CertificateSigningRequest) -> tuple[str, set[str]]:
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    try:
        dns = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {n.lower() for n in dns.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        names = set()
    return cn, names | ({cn.lower()} if cn else set())


def pem(label: str, der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def rfc3339(text: str | None) -> datetime | None:
    if not text:
        return None
    try:  # silently dropped when unparseable, as certctl's parseOptionalTime
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def identifier_problems(ids: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """acme.ValidateIdentifiers: at least one; type dns (any case) with a non-empty value."""
    if not ids:
        return [
            {
                "type": "urn:ietf:params:acme:error:malformed",
                "detail": "new-order requires at least one identifier",
                "status": 400,
            }
        ]
    out = []
    for i in ids:
        kind, value = i.get("type", ""), i.get("value", "")
        detail = (
            ""
            if kind.lower() == "dns" and value
            else (
                "identifier value is empty"
                if kind.lower() == "dns"
                else f'identifier type "{kind}" is not supported (Phase 2: dns only)'
            )
        )
        if detail:
            out.append(
                {
                    "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                    "detail": detail,
                    "status": 400,
                    "identifier": {"type": kind, "value": value},
                }
            )
    return out


def challenge(c: dict[str, Any], urls: Urls) -> dict[str, Any]:
    out = {
        "type": c["type"],
        "url": f"{urls.base}/challenge/{c['challenge_id']}",
        "status": c["status"],
        "token": c["token"],
    }
    if c["validated_at"]:
        out["validated"] = seconds(c["validated_at"])
    if c["error"]:
        out["error"] = c["error"]
    return out
