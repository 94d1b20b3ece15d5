"""certctl's own metrics endpoint, scraped before and after a phase; the deltas are kept.

certctl serves Prometheus text at ``GET /api/v1/metrics/prometheus`` (Bearer + ``metrics.read``;
certctl internal/api/handler/metrics.go:304-395, router.go:800-801). Its figures are certificate,
agent, job and issuance counts -- no request counters, pool or runtime figures (facts sheet D.1).
A scrape is not free: it loads every job and agent, so the "before" scrape runs before the database
snapshot and the "after" scrape after it. A server that does not answer 200 (the stand-in has no
such endpoint) gives n/a with the status, never a guess.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pytest_certload.stack.probes import https_get
from pytest_certload.stack.secret import Secret

METRICS_PATH = "/api/v1/metrics/prometheus"
_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?P<labels>\{[^}]*\})?\s+(?P<value>\S+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample line (comments and malformed lines skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if math.isfinite(value):
            out[match["name"] + (match["labels"] or "")] = value
    return out


def scrape(url: str, token: Secret | None, ca_file: str | None) -> tuple[dict[str, float] | None, str]:
    """(samples, '') or (None, why not)."""
    if token is None:
        return None, "n/a: no API token for this stack"
    try:
        status, body = https_get(url, METRICS_PATH, ca_file, token, timeout=10.0)
    except OSError as exc:
        return None, f"n/a: {METRICS_PATH} unreachable ({type(exc).__name__}: {exc})"
    if status != 200:
        return None, f"n/a: {METRICS_PATH} answered {status}"
    return parse_prometheus(body.decode("utf-8", "replace")), ""


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Every sample present after: its value after and its change over the phase."""
    return {
        "path": METRICS_PATH,
        "after": dict(sorted(after.items())),
        "delta": {k: v - before[k] for k, v in sorted(after.items()) if k in before and v != before[k]},
    }
