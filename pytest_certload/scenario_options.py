"""The ``certload`` marker's options: k6 option names in, an ExecutorSpec and a ThresholdSet out.

Parsed at collection, so a bad executor option or threshold is a collection error naming the test
and the fix, before any stack starts. ``--certload-duration`` scales every phase here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_certload.thresholds import ThresholdError, ThresholdSet, parse_thresholds

#: marker keys that are not executor options
SCENARIO_KEYS = {"thresholds", "fleets", "tags", "split", "capacity"}
EXECUTOR_KEYS = {
    "executor", "rate", "time_unit", "duration", "vus", "stages", "pre_allocated_vus", "max_vus",
    "graceful_stop", "start_rate", "start_time", "start_offset", "max_iterations",
    "timeUnit", "preAllocatedVUs", "maxVUs", "gracefulStop", "startRate", "startTime",
}  # fmt: skip
#: per-scenario HTTP options (engine/spec.py): http_version="1.1"|"2"|"auto", timeout="30s"
EXECUTOR_KEYS |= {"http_version", "timeout"}
#: executor="agent-fleet"'s own options (simulated certctl agents: pytest_certload/engine/agent_timing.py)
EXECUTOR_KEYS |= {
    "agents", "heartbeat_interval", "poll_interval", "jitter", "first_heartbeat_within",
    "first_poll_within", "http_version", "seed",
}  # fmt: skip


class ScenarioOptionError(ValueError):
    """A certload marker (or run_many entry) that cannot run; the message says what to change."""


@dataclass(frozen=True)
class ScenarioOptions:
    """A parsed ``certload`` marker: executor spec, thresholds, fleets, scenario tags."""

    raw: Mapping[str, Any]  # executor options as written (after --certload-duration), JSON-safe
    spec: Any | None  # engine ExecutorSpec; None when the marker gives no executor (run_many defaults)
    thresholds: ThresholdSet = field(default_factory=ThresholdSet)
    fleets: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    split: bool = True  # under pytest-xdist: a share on every worker (False: whole on one worker)
    capacity: Any | None = None  # capacity.CapacityPlan: capacity={...} makes the test a capacity search

    @property
    def target_rate_per_s(self) -> float | None:
        spec = self.spec
        if spec is None or not spec.open_model:
            return None
        if spec.executor == "ramping-arrival-rate":
            return max([spec.start_rate, *(s.target for s in spec.stages)]) / spec.time_unit
        return spec.rate / spec.time_unit

    def describe_rate(self) -> str:
        spec = self.spec
        if spec is None:
            return "-"
        if spec.executor == "constant-vus":
            return f"{spec.vus} vus"
        unit = self.raw.get("time_unit", self.raw.get("timeUnit", "1s"))
        if spec.executor == "ramping-arrival-rate":
            return " -> ".join(f"{s.target:g}" for s in spec.stages) + f" / {unit}"
        if self.capacity is not None:  # a capacity search climbs from the marker's rate
            return f"{spec.rate:g} -> {self.capacity.max_rate * spec.time_unit:g} / {unit} (capacity)"
        return f"{spec.rate:g} / {unit}"


def _seconds_text(seconds: float) -> str:
    """A k6 duration string for ``seconds`` (fixed point: k6's grammar has no exponent)."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text or '0'}s"


#: spellings of k6's ``startTime`` a marker may use
START_TIME_KEYS = ("start_time", "startTime", "start_offset")


def _scale_duration(raw: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Apply --certload-duration: replace ``duration``; stretch or shrink ramping stages to fit.

    A start time (k6's ``startTime``) is scaled by the same factor as the duration, so scenarios
    that overlapped in the original still overlap in a shortened run (k6.js: 5 s and 10 s
    stagger over 5 minutes -> 0.05 s and 0.1 s over 3 s).
    """
    from pytest_certload.engine.durations import parse_duration

    out = dict(raw)
    stages = out.get("stages")
    if isinstance(stages, list | tuple) and all(isinstance(s, Mapping) and "duration" in s for s in stages):
        lengths = [
            parse_duration(s["duration"], f"stages[{i}].duration") for i, s in enumerate(out["stages"])
        ]
        total = sum(lengths)
        out["stages"] = [
            {**s, "duration": _seconds_text(seconds * length / total)}
            for s, length in zip(out["stages"], lengths, strict=True)
        ]
    elif "stages" in out or out.get("executor") == "ramping-arrival-rate":
        return out  # malformed or missing stages: ExecutorSpec says which, unscaled
    else:
        total = parse_duration(out["duration"], "duration") if "duration" in out else 0.0
        out["duration"] = _seconds_text(seconds)
    for key in START_TIME_KEYS:
        if key in out and total > 0:
            start = parse_duration(out[key], key, True)
            out[key] = _seconds_text(start * seconds / total)
    return out


def parse_scenario_options(
    options: Mapping[str, Any], duration_override_s: float | None = None, require_executor: bool = False
) -> ScenarioOptions:
    """Marker keyword arguments -> :class:`ScenarioOptions`; raises ScenarioOptionError."""
    from pytest_certload.engine.durations import ExecutorOptionError, parse_duration
    from pytest_certload.engine.spec import ExecutorSpec

    unknown = set(options) - EXECUTOR_KEYS - SCENARIO_KEYS
    if unknown:
        raise ScenarioOptionError(
            f"unknown certload option(s) {', '.join(sorted(unknown))}; use k6's scenario options "
            f"({', '.join(sorted(k for k in EXECUTOR_KEYS if '_' in k or k.islower()))}) "
            "plus thresholds, fleets, tags, split, capacity"
        )
    raw = {k: v for k, v in options.items() if k in EXECUTOR_KEYS}
    try:
        thresholds = parse_thresholds(options.get("thresholds"))
    except ThresholdError as exc:
        raise ScenarioOptionError(str(exc)) from None
    fleets = options.get("fleets", ())
    if (
        isinstance(fleets, str)
        or not isinstance(fleets, list | tuple)
        or not all(isinstance(f, str) for f in fleets)
    ):
        raise ScenarioOptionError(
            f"fleets must be a list of fleet names, e.g. fleets=['agents_5k'], got {fleets!r}"
        )
    tags = options.get("tags", {})
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) for k, v in tags.items()
    ):
        raise ScenarioOptionError(
            f"tags must be a dict of tag name -> value (a string or number), e.g. "
            f"tags={{'target_type': 'nginx'}}, got {tags!r}"
        )
    str_tags = {k: str(v) for k, v in tags.items()}
    split = options.get("split", True)
    if not isinstance(split, bool):
        raise ScenarioOptionError(
            f"split must be True (under pytest-xdist, a share on every worker) or False (whole on one "
            f"worker, for a scenario whose subject is one client, e.g. one ACME account), got {split!r}"
        )
    if "scenario" in tags:
        raise ScenarioOptionError(
            "tags may not set 'scenario': it is the scenario's name (pass name= to run())"
        )
    if "executor" not in raw:
        if "capacity" in options:
            raise ScenarioOptionError(
                "capacity needs executor='constant-arrival-rate' with rate (the first step) and duration "
                "(each step's length)"
            )
        if require_executor:
            raise ScenarioOptionError(
                "no executor: give executor='constant-arrival-rate' (or 'ramping-arrival-rate', "
                "'constant-vus') with its options"
            )
        return ScenarioOptions(
            raw, None, thresholds, tuple(fleets), {k: str(v) for k, v in tags.items()}, split
        )
    try:
        if duration_override_s is not None:
            raw = _scale_duration(raw, duration_override_s)
        for key in ("start_time", "startTime"):  # named as written (the engine says start_offset)
            if key in raw:
                parse_duration(raw[key], key, True)
        engine_options = {("start_offset" if k == "start_time" else k): v for k, v in raw.items()}
        if "start_time" in raw and ("start_offset" in raw or "startTime" in raw):
            raise ScenarioOptionError("give start_time once (not also start_offset / startTime)")
        spec = ExecutorSpec.from_options(engine_options)
    except (ExecutorOptionError, KeyError, TypeError) as exc:
        raise ScenarioOptionError(str(exc)) from None
    capacity = _capacity_plan(options, spec, duration_override_s) if "capacity" in options else None
    return ScenarioOptions(raw, spec, thresholds, tuple(fleets), str_tags, split, capacity)


def _capacity_plan(options: Mapping[str, Any], spec: Any, duration_override_s: float | None) -> Any:
    """``capacity={...}``: the marker's rate is the first step, its duration each step's length
    (--certload-duration shortens the steps and scales the budget by the same factor)."""
    from pytest_certload.capacity import CapacityOptionError, check_vu_headroom, parse_plan
    from pytest_certload.engine.durations import parse_duration

    if spec.executor != "constant-arrival-rate":
        raise ScenarioOptionError(
            "capacity needs executor='constant-arrival-rate' (its rate is the first step), "
            f"not {spec.executor!r}"
        )
    written = parse_duration(options["duration"], "duration")
    try:
        plan = parse_plan(
            options["capacity"],
            start=spec.rate / spec.time_unit,
            step_s=spec.duration,
            graceful_stop_s=min(spec.graceful_stop, spec.duration),
            time_unit=spec.time_unit,
            scale=spec.duration / written if duration_override_s is not None else 1.0,
        )
        check_vu_headroom(plan, spec.max_vus)
        return plan
    except CapacityOptionError as exc:
        raise ScenarioOptionError(str(exc)) from None


def marker_options(item: pytest.Item) -> dict[str, Any] | None:
    """Keyword arguments of every certload marker on ``item``; the closest marker wins per key."""
    marks = list(item.iter_markers("certload"))
    if not marks:
        return None
    merged: dict[str, Any] = {}
    for mark in reversed(marks):  # farthest first, so the closest overrides
        if mark.args:
            raise ScenarioOptionError(
                f"certload takes keyword arguments only (k6 option names), got {mark.args!r}"
            )
        merged.update(mark.kwargs)
    return merged


def scenario_name(item: pytest.Item) -> str:
    """The test's function name, or its parameter id for a parametrized test."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.id:
        return callspec.id
    return getattr(item, "originalname", item.name)
