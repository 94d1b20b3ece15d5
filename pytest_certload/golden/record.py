"""Measure each endpoint K times, one request at a time; write the golden files or compare with them.

A profile is the median over K requests of each figure (a scheduler tick landing in one request's
window moves one sample, not the median), the response record of the last request, and the
statements (verb + table) of a median request, so a mismatch says which statements differ.
Golden files: one JSON file per endpoint in ``tests/contract/golden/`` plus ``_recording.json``
(what they were recorded from, and the command).
"""

from __future__ import annotations

import json
import re
import ssl
import statistics
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from pytest_certload.golden.endpoints import ENDPOINTS, Context, Endpoint, send
from pytest_certload.golden.measure import DbProbe, RequestCost
from pytest_certload.golden.shapes import response_differences, response_record

DEFAULT_REQUESTS = 5
RECORDING_FILE = "_recording.json"
#: how far the stand-in may be from the golden figure per request before CI fails (row locks: shown only)
TOLERANCE = {"queries": 1, "audit_rows": 0, "write_commits": 1, "rows_written": 1}
#: a path segment made for one request (seeded ids, ACME orders) -> {id} in the golden file
_GENERATED = re.compile(r"[^/?]*(?:-golden-|acme-ord-)[^/?]*")


def median(values: Iterable[int]) -> int:
    return int(statistics.median_low(list(values)))


def profile_of(endpoint: Endpoint, calls: list[Any], costs: list[RequestCost], responses: list[dict]) -> dict:
    figures = {name: median(c.figures()[name] for c in costs) for name in costs[0].figures()}
    typical = next(c for c in costs if c.queries == figures["queries"])
    first = calls[0]
    return {
        "endpoint": endpoint.name,
        "request": {"method": first.method, "path": _GENERATED.sub("{id}", first.path.split("?")[0])},
        "requests": len(costs),
        "per_request": figures,
        "samples": [c.figures() for c in costs],
        "statements": dict(sorted(typical.statements.items())),
        "statuses": [r["status"] for r in responses],
        "response": responses[-1],
    }


def measure_endpoint(ctx: Context, probe: DbProbe, endpoint: Endpoint, requests: int) -> dict[str, Any]:
    """``requests`` calls of one endpoint, each alone in its measurement window."""
    calls, windows, responses = [], [], []
    for _ in range(requests):
        call = endpoint.prepare(ctx)
        probe.settle()  # the preparation's requests (and their audit rows) are done
        before = probe.snapshot()
        resp = send(ctx, call)
        probe.settle()
        windows.append((before, probe.snapshot()))
        calls.append(call)
        responses.append(response_record(resp.status_code, resp.headers, resp.content))
    costs = [probe.cost(before, after) for before, after in windows]
    return profile_of(endpoint, calls, costs, responses)


def measure_all(
    base_url: str,
    token: str,
    ssl_context: ssl.SSLContext,
    dsn: str,
    workdir: Path,
    *,
    endpoints: Iterable[Endpoint] = ENDPOINTS,
    requests: int = DEFAULT_REQUESTS,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, dict[str, Any]]:
    """The profile of every endpoint on one running server (its database at ``dsn``)."""
    probe = DbProbe(dsn)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with (
            httpx.Client(base_url=base_url, verify=ssl_context, headers=headers, timeout=30) as http,
            psycopg.connect(dsn, autocommit=True) as db,
        ):
            ctx = Context(http, db, workdir)
            profiles = {}
            for endpoint in endpoints:
                profiles[endpoint.name] = measure_endpoint(ctx, probe, endpoint, requests)
                figures = profiles[endpoint.name]["per_request"]
                progress(f"{endpoint.name}: {figures} statuses {profiles[endpoint.name]['statuses']}")
            return profiles
    finally:
        probe.close()


def write_golden(out: Path, profiles: dict[str, dict[str, Any]], recorded_from: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, profile in profiles.items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(profile, indent=2, sort_keys=True) + "\n")
        written.append(path)
    meta = {"recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), **recorded_from}
    (out / RECORDING_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return written


def load_golden(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        p.stem: json.loads(p.read_text())
        for p in sorted(directory.glob("*.json"))
        if p.name != RECORDING_FILE
    }


def compare(golden: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """Why ``measured`` does not match ``golden`` (empty when it does), naming the figures."""
    name = golden["endpoint"]
    problems = []
    for figure, tolerance in TOLERANCE.items():
        want, got = golden["per_request"][figure], measured["per_request"][figure]
        if abs(want - got) > tolerance:
            problems.append(
                f"{name}: {figure} per request golden {want}, measured {got} (allowed ±{tolerance});"
                f" golden statements {golden['statements']}, measured {measured['statements']}"
            )
    problems += [f"{name}: {d}" for d in response_differences(golden["response"], measured["response"])]
    return problems


def side_by_side(golden: dict[str, dict], measured: dict[str, dict]) -> list[str]:
    """One line per endpoint: every figure, golden -> measured (for logs and the README)."""
    lines = []
    for name in golden:
        if name not in measured:
            continue
        g, m = golden[name]["per_request"], measured[name]["per_request"]
        lines.append(f"{name:22} " + "  ".join(f"{k} {g[k]}->{m[k]}" for k in g))
    return lines
