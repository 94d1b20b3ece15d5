"""A capacity search's plan: the marker's ``capacity={...}`` parsed at collection (rates per second)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: the keys of the marker's ``capacity={...}``
OPTION_KEYS = (
    "max_rate", "factor", "resolution", "confirm", "budget", "cooldown", "max_lost", "keep_up", "margin",
)  # fmt: skip


class CapacityOptionError(ValueError):
    """A ``capacity={...}`` option that cannot run; the message names it and the fix."""


@dataclass(frozen=True)
class CapacityPlan:
    """How one search climbs; rates in iterations per second, times in seconds."""

    start: float
    max_rate: float
    step_s: float
    budget_s: float
    graceful_stop_s: float
    factor: float = 2.0
    resolution: float = 0.05
    confirm: int = 2
    cooldown_s: float = 1.0
    max_lost: float = 0.01
    keep_up: float = 0.9
    margin: float = 0.5
    time_unit: float = 1.0  # the marker's, to write a step's rate back as k6 options
    scale: float = 1.0  # --certload-duration's factor on the step duration (the budget gets it too)
    source: Mapping[str, Any] = field(default_factory=dict)  # the marker's capacity={...} as written

    @property
    def ramp_steps(self) -> int:
        return 1 + max(0, math.ceil(math.log(self.max_rate / self.start) / math.log(self.factor) - 1e-9))

    @property
    def bisect_steps(self) -> int:
        ratio = math.log(self.factor) / math.log1p(self.resolution)
        return max(0, math.ceil(math.log2(ratio) - 1e-9)) if ratio > 1 else 0

    @property
    def step_wall_s(self) -> float:
        """The longest one run may take: its schedule and the graceful stop."""
        return self.step_s + self.graceful_stop_s

    @property
    def max_runs(self) -> int:
        """At most this many runs: the search's worst case, or what the budget affords."""
        worst = (self.ramp_steps + self.bisect_steps) * (2 * self.confirm - 1)
        return min(worst, max(1, math.floor(self.budget_s / self.step_s)))

    def updated(self, overrides: Mapping[str, Any]) -> CapacityPlan:
        """The same plan with some capacity options replaced (``certload.capacity(..., budget="2m")``)."""
        return parse_plan(
            {**self.source, **overrides},
            start=self.start,
            step_s=self.step_s,
            graceful_stop_s=self.graceful_stop_s,
            time_unit=self.time_unit,
            scale=self.scale,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "source"}
        return {
            **out,
            "ramp_steps": self.ramp_steps,
            "bisect_steps": self.bisect_steps,
            "max_runs": self.max_runs,
        }


def _finite(value: float) -> bool:
    """math.isfinite, False for an int too large for a float (10**400) instead of OverflowError."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_vu_headroom(plan: CapacityPlan, max_vus: int) -> None:
    """The last step's VUs (the marker's ``max_vus`` scaled by max_rate / rate) stay within MAX_VUS.

    Steps scale VUs with the rate; without this, ``max_rate`` far above the marker's rate would ask
    the engine for more virtual users than any scenario may have.
    """
    from pytest_certload.engine.spec import MAX_VUS

    needed = math.ceil(max_vus * plan.max_rate / plan.start)
    if needed > MAX_VUS:
        most = math.floor(MAX_VUS * plan.start / max_vus * plan.time_unit)
        raise CapacityOptionError(
            f"capacity max_rate {plan.max_rate * plan.time_unit:g} would scale max_vus {max_vus} to {needed} "
            f"virtual users at the last step (more than {MAX_VUS}); lower max_rate to <= {most} "
            "or the marker's max_vus"
        )


def parse_plan(
    options: object,
    *,
    start: float,
    step_s: float,
    graceful_stop_s: float,
    time_unit: float = 1.0,
    scale: float = 1.0,
) -> CapacityPlan:
    """``capacity=True`` or ``capacity={...}`` -> a plan; raises CapacityOptionError.

    ``max_rate`` is in the marker's unit (per ``time_unit``); ``budget`` and ``cooldown`` are k6
    durations; the budget (default 15 steps) is scaled as --certload-duration scaled the step.
    """
    from pytest_certload.engine.durations import ExecutorOptionError, parse_duration

    if options is True:
        options = {}
    if not isinstance(options, Mapping):
        raise CapacityOptionError(
            f"capacity must be True or a dict of {', '.join(OPTION_KEYS)}, got {options!r}"
        )
    unknown = set(options) - set(OPTION_KEYS)
    if unknown:
        raise CapacityOptionError(
            f"unknown capacity option(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"use {', '.join(OPTION_KEYS)}"
        )

    def number(key: str, default: float, low: float, low_ok: bool = False, high: float = math.inf) -> float:
        value = options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            raise CapacityOptionError(f"capacity {key}: {value!r} is not a finite number")
        if value < low or (value == low and not low_ok) or value >= high:
            raise CapacityOptionError(
                f"capacity {key}: {value!r} must be {'>=' if low_ok else '>'} {low:g}"
                + (f" and < {high:g}" if high < math.inf else "")
            )
        return float(value)

    try:
        budget = (
            parse_duration(options["budget"], "capacity budget") * scale
            if "budget" in options
            else 15 * step_s
        )
        cooldown = parse_duration(options.get("cooldown", 1.0), "capacity cooldown", True)
    except ExecutorOptionError as exc:
        raise CapacityOptionError(str(exc)) from None
    confirm = options.get("confirm", 2)
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 1:
        raise CapacityOptionError(
            f"capacity confirm: {confirm!r} must be a whole number >= 1 (1: no repeats)"
        )
    factor = number("factor", 2.0, 1.0)
    plan = CapacityPlan(
        start=start,
        max_rate=number("max_rate", 64 * start * time_unit, start * time_unit, low_ok=True) / time_unit,
        step_s=step_s,
        budget_s=budget,
        graceful_stop_s=graceful_stop_s,
        factor=factor,
        resolution=number("resolution", 0.05, 0.0, high=factor - 1),
        confirm=confirm,
        cooldown_s=cooldown,
        max_lost=number("max_lost", 0.01, 0.0, low_ok=True, high=1.0),
        keep_up=number("keep_up", 0.9, 0.0, low_ok=True, high=1.0 + 1e-9),
        margin=number("margin", 0.5, 0.0),
        time_unit=time_unit,
        scale=scale,
        source=dict(options),
    )
    if budget < plan.step_wall_s:
        raise CapacityOptionError(
            f"capacity budget {budget:g}s is shorter than one step "
            f"({step_s:g}s + graceful stop {graceful_stop_s:g}s)"
        )
    return plan
