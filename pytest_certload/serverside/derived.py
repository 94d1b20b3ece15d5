"""Server-side figures per request, usable in thresholds like any other metric.

The raw block (:mod:`~pytest_certload.serverside.sampler`) holds totals over the phase; these divide
them by the requests the phase sent, at judging time. So under pytest-xdist the merged phase's request
count divides the one block share 0 sampled -- never per worker, then summed.

Per scenario when the phase ran one scenario; when it ran several, the server cannot tell them
apart and the figure is phase-wide (the verdict and the report say so).

This module knows nothing of thresholds: :func:`server_metric` returns the values and a reason, and
``thresholds.py`` makes the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: PhaseSamples.meta entry holding the phase's raw server block (written by serverside/sampler.py)
META_KEY = "serverside"
MIB = 1024 * 1024
#: metric name -> (unit shown, what it is)
SERVER_METRICS: dict[str, tuple[str, str]] = {
    "server_cpu_per_request": ("ms", "certctl CPU time per request (ms)"),
    "db_queries_per_request": (
        "",
        "SQL statements per request (pg_stat_statements; BEGIN/COMMIT not counted)",
    ),
    "db_time_per_request": ("ms", "PostgreSQL execution time per request (ms, pg_stat_statements)"),
    "db_commits_per_request": ("", "write transactions committed per request (transaction ids taken)"),
    "server_rss_growth": ("MiB", "certctl resident memory after minus before the phase (MiB)"),
    "server_connections": ("", "established TCP connections on certctl's port, sampled once a second"),
}


def raw_block(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The phase's server block: its own, or (a merged xdist phase) the one share that sampled."""
    if meta.get(META_KEY):
        return meta[META_KEY]
    for part in meta.get("parts") or ():
        if isinstance(part, Mapping) and part.get(META_KEY):
            return part[META_KEY]
    return None


def scenario_names(samples: Any) -> list[str]:
    names = list((samples.meta.get("scenarios") or {}).keys())
    return names or sorted(samples.tag_values("scenario"))


def scope_of(samples: Any, scenario: str | None) -> tuple[dict[str, str], str]:
    """(filter for the request count, the scope as words)."""
    names = scenario_names(samples)
    if scenario is not None and len(names) <= 1:
        return {"scenario": scenario}, f"scenario {scenario}"
    if len(names) <= 1:
        return {}, f"scenario {names[0]}" if names else "phase"
    return {}, f"phase-wide ({len(names)} scenarios share the server)"


def _per_request(total: float | None, requests: int) -> float | None:
    return None if total is None or requests <= 0 else total / requests


def values(block: Mapping[str, Any], requests: int) -> dict[str, Any]:
    """Every derived figure of one block for ``requests`` requests (None: n/a)."""
    certctl = block.get("certctl") or {}
    database = block.get("database") or {}
    statements = database.get("statements") or {}
    counters = database.get("counters") or {}
    cpu_s = certctl.get("cpu_s")
    rss0, rss1 = certctl.get("rss_before"), certctl.get("rss_after")
    series = [c for c in ((certctl.get("series") or {}).get("connections") or []) if c is not None]
    return {
        "requests": requests,
        "server_cpu_per_request": _per_request(cpu_s * 1e3 if cpu_s is not None else None, requests),
        "db_queries_per_request": _per_request(statements.get("calls"), requests),
        "db_time_per_request": _per_request(statements.get("exec_ms"), requests),
        "db_commits_per_request": _per_request(counters.get("write_transactions"), requests),
        "db_rows_written_per_request": _per_request(statements.get("rows_written"), requests),
        "server_rss_growth": (rss1 - rss0) / MIB if rss0 is not None and rss1 is not None else None,
        "server_connections": series or None,
    }


def server_metric(name: str, samples: Any, tags: Mapping[str, str]) -> tuple[list[float], int, str]:
    """(values, requests, note) of one server metric for a threshold; no values: the note says why."""
    block = raw_block(samples.meta)
    if block is None:
        return [], 0, "n/a: no server-side block for this phase (no stack, or not the sampling share)"
    other = sorted(k for k in tags if k != "scenario")
    if other:
        return [], 0, f"n/a: server-side metrics cannot be filtered by {', '.join(other)} (only scenario)"
    scenario = tags.get("scenario")
    names = scenario_names(samples)
    if scenario is not None and names and scenario not in names:
        return [], 0, f"n/a: scenario {scenario} did not run in this phase"
    where, scope = scope_of(samples, scenario)
    requests = int(samples.select_counter("http_reqs", where))
    value = values(block, requests)[name]
    note = scope if scope.startswith("phase-wide") else ""
    if value is None:
        return [], requests, _why_na(name, block, requests)
    return (list(map(float, value)) if isinstance(value, list) else [float(value)]), requests, note


def _why_na(name: str, block: Mapping[str, Any], requests: int) -> str:
    part = "database" if name.startswith("db_") else "certctl"
    reason = (block.get(part) or {}).get("na")
    if name in ("db_queries_per_request", "db_time_per_request"):
        reason = reason or ((block.get("database") or {}).get("statements") or {}).get("na")
    if reason is None and requests <= 0 and name.endswith("_per_request"):
        reason = "n/a: no requests in this phase"
    return reason or f"n/a: {name} could not be measured"
