"""One step of a capacity search: its phase's options, and the judged phase as a StepRun."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from pytest_certload.capacity.plan import CapacityPlan
from pytest_certload.capacity.search import StepRun
from pytest_certload.thresholds import MetricKey, Threshold, ThresholdSet, Verdict, parse_thresholds


def step_name(name: str, index: int) -> str:
    return f"{name}.step{index:02d}"


def step_options(options: Any, plan: CapacityPlan, name: str, rate: float, index: int) -> tuple[str, Any]:
    """The marker's ScenarioOptions for run ``index`` at ``rate``/s: a scenario of its own name.

    VUs scale with the rate (the marker's VUs are for its own rate); thresholds that name the
    scenario name the step instead. Returns (step scenario name, options).
    """
    spec = options.spec
    scale = rate / plan.start
    pre = max(1, math.ceil(spec.pre_allocated_vus * scale))
    most = max(pre, math.ceil(spec.max_vus * scale))
    new = step_name(name, index)
    step_spec = replace(
        spec,
        rate=rate * spec.time_unit,
        duration=plan.step_s,
        pre_allocated_vus=pre,
        max_vus=most,
        graceful_stop=plan.graceful_stop_s,
    )
    raw = {k: v for k, v in options.raw.items() if k not in ("preAllocatedVUs", "maxVUs", "gracefulStop")}
    raw.update(
        rate=round(rate * spec.time_unit, 6),
        duration=f"{plan.step_s:g}s",
        pre_allocated_vus=pre,
        max_vus=most,
        graceful_stop=f"{plan.graceful_stop_s:g}s",
    )
    thresholds = ThresholdSet(
        tuple(_renamed(t, name, new) for t in options.thresholds), options.thresholds.source
    )
    return new, replace(options, raw=raw, spec=step_spec, thresholds=thresholds)


def _renamed(threshold: Threshold, old: str, new: str) -> Threshold:
    tags = tuple((k, new if (k, v) == ("scenario", old) else v) for k, v in threshold.key.tags)
    return replace(threshold, key=MetricKey(threshold.key.name, tags))


def verdict_excess(verdict: Verdict) -> float:
    """How far a verdict is from its limit: observed / limit for '<', limit / observed for '>'."""
    if verdict.observed is None:
        return 0.0 if verdict.ok else math.inf
    (threshold,) = parse_thresholds({verdict.metric_key: [verdict.expression]}).thresholds
    observed, limit = float(verdict.observed), float(verdict.limit)
    if threshold.op in ("<", "<=") and limit > 0:
        return max(observed, 0.0) / limit
    if threshold.op in (">", ">=") and limit > 0:
        return limit / observed if observed > 0 else math.inf
    return 0.0 if verdict.ok else math.inf


def kept_up(samples: Any, wanted: dict[str, str], rate: float, step_s: float) -> float | None:
    """Completed iterations per second in the schedule's second half (whole seconds), as a fraction
    of the offered rate: ~1 when the server keeps up (whatever its latency, once the pipeline is
    full), its throughput / rate when a queue grows. None without per-second marks or under 2 s."""
    from pytest_certload.stats.timeline import Timeline

    timeline = Timeline.of(samples)
    whole = math.floor(step_s + 1e-9)
    if timeline is None or whole < 2 or rate <= 0:
        return None
    done = timeline.counter("iterations", wanted)
    seconds = range(whole // 2, min(whole, len(done)))
    return float(sum(done[k] for k in seconds)) / (rate * len(seconds)) if seconds else None


def judge_step(phase: Any, scenario: str, rate: float, plan: CapacityPlan) -> StepRun:
    """A judged step phase (a PhaseVerdict, merged under xdist) -> StepRun."""
    samples = phase.samples
    wanted = {"scenario": scenario}
    trend = samples.trend_stats("http_req_duration", wanted)
    failed, requests = samples.select_rate("http_req_failed", wanted)
    meta = (samples.meta.get("scenarios") or {}).get(scenario) or {}
    due = float(meta.get("scheduled_arrivals") or 0)
    dropped = samples.select_counter("dropped_iterations", wanted)
    cut = samples.select_counter("interrupted_iterations", wanted)
    lost = (dropped + cut) / due if due else 0.0
    # served: completed iterations per second of the step's own run (as the summary counts them)
    began, ended = meta.get("started_at"), meta.get("ended_at")
    span = max(ended - began, plan.step_s) if began and ended else plan.step_s
    excess = max([verdict_excess(v) for v in phase.verdicts] or [0.0])
    reasons = [v.describe() for v in phase.verdicts if not v.ok]
    if lost > plan.max_lost:
        reasons.append(
            f"{lost:.1%} of {due:g} due iterations not served (dropped {dropped:g}, cut off at the "
            f"graceful stop {cut:g}) > max_lost {plan.max_lost:.1%}"
        )
    excess = max(excess, lost / plan.max_lost if plan.max_lost else (math.inf if lost else 0.0))
    kept = kept_up(samples, wanted, rate, plan.step_s)
    if kept is not None and plan.keep_up > 0:
        if kept < plan.keep_up:
            reasons.append(
                f"served {kept:.0%} of the offered {rate:.4g}/s in the step's second half < keep_up "
                f"{plan.keep_up:.0%}: a queue is growing (a longer step would breach the thresholds)"
            )
        # on the deficit's scale: serving all of it is no closer to the limit than losing nothing
        excess = max(excess, max(0.0, 1.0 - kept) / (1.0 - plan.keep_up) if plan.keep_up < 1 else 0.0)
    if phase.aborted:
        reasons.append(f"abortOnFail: {phase.aborted}")
    stats = {
        "kept_up": kept,
        "served_per_s": samples.select_counter("iterations", wanted) / span,
        "p50_ms": trend.get("med"),
        "p95_ms": trend.get("p(95)"),
        "p99_ms": trend.get("p(99)"),
        "error_rate": failed / requests if requests else None,
        "requests": requests,
        "due": due,
        "dropped": dropped,
        "cut_off": cut,
        "lag_p99_ms": (phase.health or {}).get("lag_p99_ms"),
        "cpu_fraction": (phase.health or {}).get(
            "cpu_fraction_max", (phase.health or {}).get("cpu_fraction")
        ),
    }
    common = {
        "rate": rate,
        "excess": excess,
        "seconds": float(phase.duration_s),
        "stats": stats,
        "scenario": scenario,
    }
    if phase.saturated:
        return StepRun(passed=False, saturated=True, reasons=(phase.saturation_reason,), **common)
    return StepRun(passed=not reasons, reasons=tuple(reasons), **common)
