"""Merging the workers' shares of a phase: exact pooled samples, thresholds judged once.

Samples are pooled, never averaged (:meth:`PhaseSamples.merge`), so merged percentiles equal those of
one process that recorded every request. Two uses: right after a phase the barrier merges the shares
and hands the whole phase back to every worker's test body (:func:`merge_phase_dicts`); at the end of
a test the controller merges the shares the workers reported, for the summary, and emits one report
per test phase: an ERROR naming the worker if any generator saturated, else the first worker's
failure, else a pass.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_certload.report.summary import scenario_seconds
from pytest_certload.session import SATURATED_PREFIX
from pytest_certload.stats import PhaseSamples
from pytest_certload.thresholds import ThresholdSet, Verdict, evaluate, parse_thresholds
from pytest_certload.verdict import SPLIT_META_KEY, PhaseVerdict, ScenarioVerdict
from pytest_certload.xdist.mode import worker_order

_FIRST_KEYS = {"started_at"}
_LAST_KEYS = {"ended_at"}
_SAME_KEYS = {"schedule_seconds", "late_start_tolerance_ms"}


def _merge_scenario_meta(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One scenario's executor facts over the shares: counts and rates add, bounds widen."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in _FIRST_KEYS and isinstance(value, int | float):
                out[key] = min(out.get(key, value), value)
            elif key in _LAST_KEYS and isinstance(value, int | float):
                out[key] = max(out.get(key, value), value)
            elif key in _SAME_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
                out.setdefault(key, value)
            else:
                out[key] = out.get(key, 0) + value
    out["share"] = [0, 1]
    out["shares"] = len(parts)
    return out


def _reevaluate(verdicts: Sequence[Verdict], samples: PhaseSamples, seconds: float) -> list[Verdict]:
    """The same thresholds, judged again on the merged samples."""
    thresholds = tuple(parse_thresholds({v.metric_key: [v.expression]}).thresholds[0] for v in verdicts)
    return evaluate(ThresholdSet(thresholds), samples, seconds)


def merge_phase_verdicts(parts: Sequence[PhaseVerdict]) -> PhaseVerdict:
    """One verdict from the workers' verdicts of one phase; thresholds are judged on the pooled data."""
    parts = sorted(parts, key=lambda p: worker_order(p.split.get("worker", "")))
    if len(parts) == 1:
        return parts[0]
    result = PhaseSamples.merge(p.samples for p in parts)
    metas = [p.samples.meta for p in parts]
    workers = [m.get(SPLIT_META_KEY, {}).get("worker", f"part{i}") for i, m in enumerate(metas)]
    for m in metas:
        m.setdefault("scenarios", {})
    names = list(dict.fromkeys(n for m in metas for n in m["scenarios"]))
    result.meta = {
        "started_at": min(m.get("started_at", math.inf) for m in metas),
        "ended_at": max(m.get("ended_at", 0.0) for m in metas),
        "event_loop": metas[0].get("event_loop"),
        "late_start_tolerance_ms": metas[0].get("late_start_tolerance_ms"),
        "scenarios": {n: _merge_scenario_meta([m["scenarios"][n] for m in metas if n in m["scenarios"]])
                      for n in names},
        "workers": workers,
        "parts": metas,
        SPLIT_META_KEY: {"workers": workers, "count": len(parts)},
    }  # fmt: skip
    result.meta["wall_seconds"] = result.meta["ended_at"] - result.meta["started_at"]
    duration_s = max(p.duration_s for p in parts)
    scenarios = []
    for info in parts[0].scenarios:
        seconds = scenario_seconds(result, info.name, info.start_offset_s, duration_s, info.scheduled_s)
        scenarios.append(
            ScenarioVerdict(
                name=info.name,
                options=info.options,
                executor=info.executor,
                target_rate_per_s=info.target_rate_per_s,
                target_vus=info.target_vus,
                verdicts=_reevaluate(info.verdicts, result, seconds),
                start_offset_s=info.start_offset_s,
                scheduled_s=info.scheduled_s,
            )
        )
    healths = {w: p.health for w, p in zip(workers, parts, strict=True)}
    worst = max(parts, key=lambda p: (p.saturated, p.health.get("lag_p99_ms", 0.0)))
    saturated = [(w, p) for w, p in zip(workers, parts, strict=True) if p.saturated]
    aborted = [(w, p.aborted) for w, p in zip(workers, parts, strict=True) if p.aborted]
    return PhaseVerdict(
        nodeid=parts[0].nodeid,
        samples=result,
        duration_s=duration_s,
        scenarios=scenarios,
        phase_verdicts=_reevaluate(parts[0].phase_verdicts, result, duration_s),
        health={**worst.health, "cpu_fraction_max": max(p.health.get("cpu_fraction", 0.0) for p in parts),
                "workers": healths},
        saturated=bool(saturated),
        saturation_reason="; ".join(f"worker {w}: {p.saturation_reason}" for w, p in saturated),
        aborted="; ".join(f"worker {w}: {a}" for w, a in aborted) or None,
        stack=next((p.stack for p in parts if p.stack is not None), None),
        id=parts[0].id,
    )  # fmt: skip


def merge_phase_dicts(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The wire form of :func:`merge_phase_verdicts` (what the barrier hands back to the workers)."""
    return merge_phase_verdicts([PhaseVerdict.from_dict(p) for p in parts]).to_dict()


def merge_worker_phases(by_worker: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[PhaseVerdict]:
    """Serialised verdicts per worker (as xdist delivered them) -> one merged verdict per phase."""
    phases: dict[int, list[PhaseVerdict]] = {}
    for data in (d for serialised in by_worker.values() for d in serialised):
        phase = PhaseVerdict.from_dict(data)
        phases.setdefault(int(phase.split.get("phase", 0)), []).append(phase)
    return [merge_phase_verdicts(phases[k]) for k in sorted(phases)]


def _section(parts: Sequence[tuple[str, Any]], chosen: str) -> tuple[str, str]:
    lines = [f"{w}: {r.outcome}" + (" (shown above)" if w == chosen else "") for w, r in parts]
    return "certload split", "per-worker outcome: " + "; ".join(lines)


def merge_reports(when: str, parts: Sequence[tuple[str, Any]], phases: Sequence[PhaseVerdict]) -> Any:
    """One TestReport from the workers' reports of one test phase (setup, call or teardown)."""
    parts = sorted(parts, key=lambda p: worker_order(p[0]))
    saturated = [(w, r) for w, r in parts if getattr(r, "certload_saturated", False)]
    failed = [(w, r) for w, r in parts if r.failed and not getattr(r, "certload_saturated", False)]
    chosen_w, chosen = (saturated or failed or [p for p in parts if p[1].passed] or parts)[0]
    report = copy.copy(chosen)
    report.sections = list(chosen.sections)
    # a crashed worker's report (made by the controller) has no line number: name the test as others do
    report.location = next((r.location for _, r in parts if r.location[1] is not None), report.location)
    report.duration = max(r.duration for _, r in parts)
    report.certload_phases = None
    report.certload_split_workers = [w for w, _ in parts]
    if when != "call":
        if report.failed or len({r.outcome for _, r in parts}) > 1:
            report.sections.append(_section(parts, chosen_w))
        return report
    # the session adopts these as it adopts a worker's phases (session.SessionPlugin)
    report.certload_phases = [p.to_dict() for p in phases] or None
    if saturated:
        reasons = [p.saturation_reason for p in phases if p.saturated] or [chosen.longreprtext]
        report.outcome = "failed"
        report.certload_saturated = True
        report.longrepr = f"{SATURATED_PREFIX} {'; '.join(reasons)}"
    elif failed:
        report.sections.append(_section(parts, chosen_w))
    return report
