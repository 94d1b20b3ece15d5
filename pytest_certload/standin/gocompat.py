"""Go-isms the stand-in must reproduce to answer like certctl does.

certctl decodes bodies with ``json.NewDecoder(r.Body).Decode(&struct)``: only the first JSON value
is read (trailing bytes are ignored), keys match struct tags case-insensitively, unknown keys are
ignored, ``null`` leaves the zero value, and a value of the wrong type is an error. It writes JSON
with ``json.Encoder`` (compact, ``<``/``>``/``&`` escaped, trailing newline) and times as RFC 3339
with nanoseconds. These helpers do the same in Python.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from datetime import UTC, datetime
from typing import Any

GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_ATOI = re.compile(r"^[+-]?\d+$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class DecodeError(ValueError):
    """The body is not what the Go struct decoder accepts."""


def decode_first_value(body: bytes) -> Any:
    """The first JSON value in ``body``, as Go's json.Decoder.Decode reads it (rest ignored)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")  # Go replaces invalid UTF-8 inside strings
    start = len(text) - len(text.lstrip(_WS))
    if start >= len(text):
        raise DecodeError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise DecodeError(str(exc)) from exc
    except RecursionError:  # Go's decoder stops at depth 10000 with an error too
        raise DecodeError("exceeded max depth") from None
    return value


def struct_fields(value: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Map a decoded JSON value onto struct fields ``names`` the way Go does.

    A top-level ``null`` gives the zero struct; anything but an object is an error. Exact key
    matches win over case-insensitive ones; later duplicates overwrite earlier ones.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError("cannot unmarshal non-object into struct")
    lowered = {n.lower(): n for n in names}
    out: dict[str, Any] = {}
    exact: set[str] = set()
    for key, item in value.items():
        if key in names:
            out[key] = item
            exact.add(key)
            continue
        name = lowered.get(key.lower())
        if name is not None and name not in exact:
            out[name] = item
    return out


def as_string(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError("expected string")
    return value


def as_bool(value: Any) -> bool:
    """Go's bool field: ``null`` leaves it false; anything but true/false is a decode error."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise DecodeError("expected bool")
    return value


def as_string_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise DecodeError("expected array of strings")
    return [as_string(v) for v in value]


def as_string_map(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DecodeError("expected object of strings")
    return {k: as_string(v) for k, v in value.items()}


def as_time(value: Any) -> datetime | None:
    """Go's time.Time.UnmarshalJSON: an RFC 3339 string (``null`` leaves it unset)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError("expected RFC 3339 time string")
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise DecodeError("cannot parse time")
    return parsed


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 timestamp (fraction up to ns, truncated to µs), or None."""
    m = _RFC3339.match(text)
    if not m:
        return None
    frac = (m.group(7) or "")[1:7].ljust(6, "0") if m.group(7) else "000000"
    tz = m.group(8)
    tz = "+00:00" if tz in ("Z", "z") else tz
    try:
        return datetime.fromisoformat(
            f"{m.group(1)}-{m.group(2)}-{m.group(3)}T{m.group(4)}:{m.group(5)}:{m.group(6)}.{frac}{tz}"
        )
    except ValueError:
        return None


def go_time(value: datetime | None) -> str | None:
    """RFC 3339 with trailing fractional zeros trimmed, ``Z`` for UTC (Go's RFC3339Nano)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset()
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.year < 1000:
        base = f"{value.year:04d}" + base[base.index("-") :]
    frac = f"{value.microsecond:06d}".rstrip("0")
    if frac:
        base += "." + frac
    if not offset:
        return base + "Z"
    total = int(offset.total_seconds())
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{base}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def go_json(data: Any) -> bytes:
    """json.Encoder output: compact, HTML characters escaped, newline-terminated."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return (text + "\n").encode("utf-8")


def atoi(text: str) -> int | None:
    """strconv.Atoi: optional sign and decimal digits only, else None."""
    if not _ATOI.match(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def validate_common_name(cn: str) -> str | None:
    """certctl's ValidateCommonName: the error message, or None when valid."""
    if cn == "":
        return "common_name is required"
    if len(cn.encode("utf-8")) > 253:
        return "common_name must be 253 characters or fewer"
    if "@" in cn:
        problem = _mail_address_problem(cn)
        return f"invalid email format for S/MIME common name: {problem}" if problem else None
    problem = _hostname_problem(cn)
    return f"invalid hostname format: {problem}" if problem else None


def _hostname_problem(hostname: str) -> str | None:
    if _is_go_ip(hostname):
        return None
    for char in hostname:
        if not (char.isascii() and (char.isalnum() or char in ".-_*")):
            return f"hostname contains invalid character: {char}"
    for label in hostname.split("."):
        if label == "":
            return "hostname has empty label"
        if label.startswith("-") or label.endswith("-"):
            return "hostname labels cannot start or end with hyphen"
    return None


def _is_go_ip(text: str) -> bool:
    """net.ParseIP: dotted IPv4 (no leading zeros) or IPv6 without a zone."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


def _mail_address_problem(text: str) -> str | None:
    """A simplified net/mail.ParseAddress: ``local@domain`` (dot-atoms) or ``Name <local@domain>``.

    Failing inputs get the message Go gives for the usual mistakes; exotic RFC 5322 forms
    (quoted strings, comments, groups) are not modelled.
    """
    s = text.strip()
    if "<" in s:
        inner = s[s.find("<") + 1 : s.rfind(">")] if s.rfind(">") > s.find("<") else None
        if inner is None:
            return "mail: unclosed angle-addr"
        return None if _addr_spec_ok(inner) else "mail: missing @ in addr-spec"
    if _addr_spec_ok(s):
        return None
    phrase = s.split("@", 1)[0]
    if phrase and _ATEXT.match(phrase):
        return "mail: missing '@' or angle-addr"
    return "mail: no angle-addr"


def _addr_spec_ok(spec: str) -> bool:
    local, at, domain = spec.rpartition("@")
    return bool(at) and _dot_atom(local) and _dot_atom(domain)


def _dot_atom(part: str) -> bool:
    return (
        bool(part)
        and bool(_ATEXT.match(part))
        and not part.startswith(".")
        and not part.endswith(".")
        and (".." not in part)
    )


def valid_ari_cert_id(cert_id: str) -> bool:
    """RFC 9773 cert-id as certctl parses it: two non-empty base64url (no padding) parts."""
    parts = cert_id.split(".")
    if len(parts) != 2:
        return False
    return all(_b64url_nonempty(p) for p in parts)


def _b64url_nonempty(part: str) -> bool:
    if part == "" or not _B64URL.match(part) or len(part) % 4 == 1:
        return False
    try:
        return len(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) > 0
    except ValueError:
        return False
