"""A response reduced to what the stand-in must reproduce: status, the headers that matter, body shape.

Values (ids, timestamps, nonces) differ between any two runs; the shape does not. A JSON body
becomes its keys and value types (``{"data": [{"id": "string", ...}], "total": "number"}``); a
list is the shape of its first element; a non-JSON body is ``"text"`` or ``"empty"``.
"""

from __future__ import annotations

import json
from typing import Any

#: headers whose value matters as such (compared when present in the golden response)
VALUE_HEADERS = ("content-type", "retry-after", "cache-control")
#: headers whose presence matters but whose value is per request (ids, nonces, digests)
PRESENCE_HEADERS = ("location", "replay-nonce", "link", "etag", "www-authenticate", "x-request-id")


def shape_of(value: Any) -> Any:
    """The JSON value's keys and types, recursively (lists: the first element's shape)."""
    if isinstance(value, dict):
        return {key: shape_of(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [shape_of(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string"


def body_shape(content_type: str, body: bytes) -> Any:
    if not body:
        return "empty"
    if "json" in content_type or body[:1] in (b"{", b"["):
        try:
            return shape_of(json.loads(body))
        except ValueError:
            pass
    return "text"


def response_record(status: int, headers: Any, body: bytes) -> dict[str, Any]:
    """What the golden file keeps of one response (``headers``: any case-insensitive mapping)."""
    values = {name: headers[name] for name in VALUE_HEADERS if name in headers}
    present = sorted(name for name in PRESENCE_HEADERS if name in headers)
    return {
        "status": status,
        "headers": values,
        "headers_present": present,
        "body_shape": body_shape(headers.get("content-type", ""), body),
    }


def response_differences(golden: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """Human-readable differences between two response records (empty when they match)."""
    out = []
    if golden["status"] != measured["status"]:
        out.append(f"status: golden {golden['status']}, measured {measured['status']}")
    for name, value in golden["headers"].items():
        got = measured["headers"].get(name)
        if got != value:
            out.append(f"header {name}: golden {value!r}, measured {got!r}")
    missing = sorted(set(golden["headers_present"]) - set(measured["headers_present"]))
    if missing:
        out.append(f"headers missing: {', '.join(missing)}")
    if golden["body_shape"] != measured["body_shape"]:
        out.append(
            f"body shape: golden {json.dumps(golden['body_shape'], sort_keys=True)},"
            f" measured {json.dumps(measured['body_shape'], sort_keys=True)}"
        )
    return out
