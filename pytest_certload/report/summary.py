"""The session summary in the shape of k6's summary export (``handleSummary``'s ``data``), plus ours.

k6's keys: ``root_group``, ``options``, ``state``, ``metrics`` (each ``{type, contains, values,
thresholds}``; tagged sub-metrics under their own keys such as ``http_req_duration{scenario:x}``).
Beyond k6: each threshold entry carries the observed value, limit and sample count, and the document
adds ``stack``, ``machine``, ``generator_health``, ``scenarios`` and the harness's ``connector_tier``.

Metric ``values`` are over the whole session (every phase pooled); a threshold entry's ``observed``
is what its own phase measured -- they agree when one phase produced the key, as in a k6 run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_certload.report.fleet import fleet_entries
from pytest_certload.serverside.derived import SERVER_METRICS
from pytest_certload.serverside.summary import scenario_server, server_entry
from pytest_certload.stack.model import STANDIN_CAVEAT
from pytest_certload.thresholds import KNOWN_METRICS, MetricKey, Verdict, parse_metric_key
from pytest_certload.verdict import PhaseVerdict, ScenarioVerdict

TREND_STATS = ("avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "p(99.9)")
CONNECTOR_TARGETS = ("nginx", "apache", "haproxy", "f5")
#: metrics written per scenario (``name{scenario:x}``) and per target type, when recorded
PER_SCENARIO_METRICS = (
    "http_req_duration",
    "http_req_failed",
    "http_reqs",
    "iterations",
    "iteration_duration",
    "dropped_iterations",
)
_TIME_TRENDS = {name for name, kind in KNOWN_METRICS.items() if kind == "trend"}


def _merged(records: Sequence[PhaseVerdict]) -> Any:
    from pytest_certload.stats import PhaseSamples

    return PhaseSamples.merge(r.samples for r in records)


def metric_entry(records: Sequence[PhaseVerdict], merged: Any, key: MetricKey, kind: str) -> dict[str, Any]:
    """One ``metrics[<key>]`` entry: k6's type/contains/values over every phase."""
    if kind == "trend":
        stats = merged.trend_stats(key.name, key.filter)
        values = {name: stats.get(name) for name in TREND_STATS}
        contains = (
            "time" if key.name in _TIME_TRENDS or key.name.endswith(("_duration", "_time")) else "default"
        )
        return {"type": "trend", "contains": contains, "values": values, "count": stats["count"]}
    if kind == "rate":
        trues, total = merged.select_rate(key.name, key.filter)
        return {
            "type": "rate",
            "contains": "default",
            "values": {"rate": trues / total if total else None, "passes": trues, "fails": total - trues},
            "count": total,
        }
    count = 0.0
    seconds = 0.0
    for record in records:  # count per second of the phases that contributed
        n = record.samples.select_counter(key.name, key.filter)
        if n:
            count += n
            seconds += record.duration_s
    return {
        "type": "counter",
        "contains": "default",
        "values": {"count": _number(count), "rate": count / seconds if seconds else 0.0},
        "count": _number(count),
    }


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _scenario_keys(records: Sequence[PhaseVerdict], merged: Any) -> list[MetricKey]:
    """Per-scenario and per-target-type sub-metric keys worth writing."""
    names = merged.metric_names()
    keys: list[MetricKey] = []
    for tag in ("scenario", "target_type"):
        for value in sorted(merged.tag_values(tag)):
            keys += [MetricKey(n, ((tag, value),)) for n in PER_SCENARIO_METRICS if n in names]
    return keys


def threshold_entries(records: Iterable[PhaseVerdict]) -> dict[str, dict[str, dict[str, Any]]]:
    """metric key -> expression -> {ok, observed, limit, count}; the worst verdict wins on a clash."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        tagged: list[tuple[str | None, Verdict]] = [(s.name, v) for s in record.scenarios for v in s.verdicts]
        tagged += [(None, v) for v in record.phase_verdicts]
        for scenario, verdict in tagged:
            entry = {
                "ok": verdict.ok,
                "observed": verdict.observed,
                "limit": verdict.limit,
                "count": verdict.count,
                "scenario": scenario,
                "test": record.nodeid,
            }
            if verdict.reason:
                entry["reason"] = verdict.reason
            slot = out.setdefault(verdict.metric_key, {})
            previous = slot.get(verdict.expression)
            if previous is None or (previous["ok"] and not verdict.ok):
                slot[verdict.expression] = entry
    return out


def scenario_seconds(
    result: Any, name: str, start_offset_s: float, phase_seconds: float, scheduled_s: float = 0.0
) -> float:
    """How long one scenario generated load: its own run minus k6's startTime wait, and never less
    than its schedule (the last arrival of a short schedule comes before the schedule's end)."""
    bounds = (result.meta.get("scenarios") or {}).get(name) or {}
    began, ended = bounds.get("started_at"), bounds.get("ended_at")
    if isinstance(began, int | float) and isinstance(ended, int | float):
        seconds = ended - began
    else:
        seconds = phase_seconds
    return max(seconds - start_offset_s, scheduled_s, 0.0)


def stack_caveat(stack: dict[str, Any] | None) -> str | None:
    """What must stand next to a verdict measured on this stack: the stand-in's caveat, or None.

    Read from the description (``Stack.describe()``: ``caveat``); a description without the key that
    still names the stand-in gets the caveat all the same.
    """
    if not stack:
        return None
    if stack.get("caveat"):
        return stack["caveat"]
    if stack.get("server") == "stand-in" or stack.get("target") == "certctl stand-in":
        return STANDIN_CAVEAT
    return None


def scenario_entry(record: PhaseVerdict, info: ScenarioVerdict) -> dict[str, Any]:
    """Our per-scenario results: what ran, at what rate, how it came out, and against what."""
    result = record.samples
    wanted = {"scenario": info.name}
    stats = result.trend_stats("http_req_duration", wanted)
    trues, total = result.select_rate("http_req_failed", wanted)
    iterations = result.select_counter("iterations", wanted)
    seconds = scenario_seconds(result, info.name, info.start_offset_s, record.duration_s, info.scheduled_s)
    return {
        "test": record.nodeid,
        "executor": info.executor,
        "options": info.options,
        "duration_s": seconds,
        "target_rate_per_s": info.target_rate_per_s,
        "target_vus": info.target_vus,
        "achieved_rate_per_s": iterations / seconds if seconds else None,
        "iterations": _number(iterations),
        "dropped_iterations": _number(result.select_counter("dropped_iterations", wanted)),
        "requests": _number(result.select_counter("http_reqs", wanted)),
        "http_req_duration": {k: stats.get(k) for k in ("avg", "min", "med", "p(95)", "p(99)", "max")},
        "error_rate": trues / total if total else None,
        "thresholds": [v.to_dict() for v in info.verdicts],
        "ok": all(v.ok for v in info.verdicts),
        "saturated": record.saturated,
        "aborted": record.aborted,
        # the phase ended early: Ctrl-C / SIGTERM (its samples are what ran until then) or abortOnFail
        "interrupted": record.interrupted or (f"abortOnFail: {record.aborted}" if record.aborted else None),
        # what answered: every verdict of the stand-in carries its caveat
        "target": (record.stack or {}).get("target"),
        "caveat": stack_caveat(record.stack),
        "postgres_profile": (record.stack or {}).get("postgres_profile"),
        # certctl / PostgreSQL / machine over the phase (serverside/); "scope" says if it is phase-wide
        "server": scenario_server(record),
    }


def connector_tier(merged: Any) -> dict[str, dict[str, Any] | None]:
    """The harness's ``connector_tier``: per target type, latency and errors; null if it did not run."""
    out: dict[str, dict[str, Any] | None] = {}
    for target in CONNECTOR_TARGETS:
        wanted = {"target_type": target}
        stats = merged.trend_stats("http_req_duration", wanted)
        if not stats["count"]:
            out[target] = None
            continue
        trues, total = merged.select_rate("http_req_failed", wanted)
        iterations = merged.select_counter("iterations", wanted)
        if (
            not iterations
        ):  # target_type was a request tag, not a scenario tag: count its scenarios' iterations
            scenarios = {
                s
                for s in merged.tag_values("scenario")
                if merged.select_counter("http_reqs", {"scenario": s, "target_type": target})
            }
            iterations = sum(merged.select_counter("iterations", {"scenario": s}) for s in scenarios)
        out[target] = {
            "p50": stats["med"],
            "p95": stats["p(95)"],
            "p99": stats["p(99)"],
            "max": stats["max"],
            "avg": stats["avg"],
            "error_rate": trues / total if total else 0.0,
            "iterations": _number(iterations),
            "requests": _number(merged.select_counter("http_reqs", wanted)),
        }
    return out


def build_summary(
    records: Sequence[PhaseVerdict],
    *,
    run_duration_s: float,
    machine: dict[str, Any],
    stack: dict[str, Any] | None,
    interrupted: bool = False,
    exit_status: int | None = None,
    stdout_tty: bool = False,
    duration_override_s: float | None = None,
) -> dict[str, Any]:
    """The whole JSON document for one pytest session."""
    records = list(records)
    merged = _merged(records)
    kinds = merged.metric_names()
    thresholds = threshold_entries(records)

    metrics: dict[str, Any] = {}
    keys = [MetricKey(name) for name in sorted(kinds)] + _scenario_keys(records, merged)
    keys += [parse_metric_key(k) for k in thresholds]
    for key in keys:
        text = str(key)
        if text in metrics:
            continue
        kind = kinds.get(key.name) or KNOWN_METRICS.get(key.name)
        if kind is None:  # thresholded but never recorded: keep the verdicts visible
            metrics[text] = {"type": None, "contains": None, "values": None, "count": 0}
        elif key.name in SERVER_METRICS:  # one value per phase: each phase's "server_side" entry
            unit = SERVER_METRICS[key.name][0]
            metrics[text] = {"type": "server", "contains": unit, "values": None, "count": 0}
        else:
            metrics[text] = metric_entry(records, merged, key, kind)
        if text in thresholds:
            metrics[text]["thresholds"] = thresholds[text]

    scenarios: dict[str, Any] = {}
    for record in records:
        for info in record.scenarios:
            name = info.name if info.name not in scenarios else f"{info.name} ({record.nodeid})"
            scenarios[name] = scenario_entry(record, info)

    if stack is None:
        stack_entry: dict[str, Any] = {
            "target": None,
            "description": "no certload_stack in this session: the tests supplied their own servers",
        }
    else:
        caveat = stack_caveat(stack)
        parts = [f"target: {stack.get('target')}", caveat]
        if stack.get("fallback_reason"):
            parts.append(f"certctl=auto fell back to the certctl stand-in: {stack['fallback_reason']}")
        if stack.get("postgres"):
            parts.append(f"postgres: {stack['postgres']}")
        stack_entry = {**stack, "caveat": caveat, "description": "; ".join(p for p in parts if p)}

    return {
        "root_group": {
            "name": "",
            "path": "",
            "id": hashlib.md5(b"").hexdigest(),
            "groups": [],
            "checks": [],
        },
        "options": {
            "summaryTrendStats": list(TREND_STATS),
            "summaryTimeUnit": "ms",
            "durationOverrideSeconds": duration_override_s,  # --certload-duration, when given
            "noColor": True,
            "scenarios": {
                name: {**entry["options"], "test": entry["test"]} for name, entry in scenarios.items()
            },
            "thresholds": {key: list(entries) for key, entries in thresholds.items()},
        },
        "state": {
            "isStdOutTTY": stdout_tty,
            "isStdErrTTY": False,
            "testRunDurationMs": run_duration_s * 1000.0,
            "interrupted": interrupted,
            "exitStatus": exit_status,
        },
        "metrics": metrics,
        "stack": stack_entry,
        "machine": machine,
        "generator_health": [
            {
                **r.health,
                "test": r.nodeid,
                "scenarios": [s.name for s in r.scenarios],
                "saturated": r.saturated,
                "reason": r.saturation_reason,
                "aborted": r.aborted,
                "interrupted": r.interrupted,
            }
            for r in records
        ],
        "scenarios": scenarios,
        "connector_tier": connector_tier(merged),
        "agent_fleet": fleet_entries(records),  # report/fleet.py: fleet size, connections held, drain
        "server_side": [
            {"test": r.nodeid, "scenarios": [i.name for i in r.scenarios], **server_entry(r)} for r in records
        ],
    }
