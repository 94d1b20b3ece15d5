"""The search itself: ramp x factor, bisect to the resolution, confirm near the boundary."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pytest_certload.capacity.plan import CapacityPlan

if TYPE_CHECKING:
    from pytest_certload.capacity.fleet import Fleet

#: how a search ended
STATUSES = ("bracketed", "budget", "holds_at_max", "fails_at_start", "generator_saturated")
SATURATED = "saturated"


class CapacityNotFound(AssertionError):
    """The search found no rate that held (it failed at the start rate)."""


@dataclass(frozen=True)
class StepRun:
    """One run of one step: the offered rate, how it came out, and its point on the latency curve."""

    rate: float  # offered iterations/s
    passed: bool
    saturated: bool = False  # the generator, not the server, was the limit: no verdict
    excess: float = 0.0  # the worst observed / limit of the pass rule (> 1: breached; inf: no margin)
    reasons: tuple[str, ...] = ()  # what breached, or why the generator saturated
    seconds: float = 0.0  # the phase's wall seconds (merged under xdist)
    stats: Mapping[str, Any] = field(default_factory=dict)  # achieved/s, p50/p95/p99 ms, error rate, ...
    scenario: str = ""  # the step phase's scenario name (its key in the summary)
    index: int = 0  # filled in by the search: run number, stage and what the run counted as
    stage: str = ""  # "ramp" or "bisect"
    counted: str = ""  # "held", "failed", "outvoted", "saturated", "undecided"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out["excess"] = None if math.isinf(self.excess) else self.excess
        out["stats"] = dict(self.stats)
        return out


Step = Callable[[float, int], StepRun]  # (rate per second, run number) -> StepRun


def nice_rate(rate: float) -> float:
    """Three significant digits: 84.8528 -> 84.9."""
    return float(f"{rate:.3g}")


class _Search:
    def __init__(
        self,
        plan: CapacityPlan,
        step: Step,
        pause: Callable[[float], None],
        on_run: Callable[[StepRun], None],
    ) -> None:
        self.plan, self.step, self.pause, self.on_run = plan, step, pause, on_run
        self.runs: list[StepRun] = []
        self.spent = 0.0
        self.holds: float | None = None
        self.fails: float | None = None
        self.saturated: StepRun | None = None

    def _run(self, rate: float, stage: str) -> StepRun:
        if self.runs and not self.runs[-1].passed and self.plan.cooldown_s:  # let a backlog drain
            self.pause(self.plan.cooldown_s)
            self.spent += self.plan.cooldown_s
        index = len(self.runs) + 1
        run = replace(self.step(rate, index), index=index, stage=stage, counted="undecided")
        self.runs.append(run)
        self.spent += run.seconds
        self.on_run(run)
        return run

    def _near(self, run: StepRun) -> bool:
        return 1.0 / (1.0 + self.plan.margin) <= run.excess <= 1.0 + self.plan.margin

    def probe(self, rate: float, stage: str, near: bool) -> bool | str | None:
        """True (held), False (failed), SATURATED, or None (the budget ran out first)."""
        confirm = self.plan.confirm
        mine: list[int] = []
        saturated = 0
        while True:
            cooldown = self.plan.cooldown_s if self.runs and not self.runs[-1].passed else 0.0
            if self.spent + cooldown + self.plan.step_wall_s > self.plan.budget_s + 1e-9:
                return None
            run = self._run(rate, stage)
            mine.append(len(self.runs) - 1)
            if run.saturated:
                saturated += 1
                self.runs[-1] = replace(run, counted="saturated")
                if saturated >= min(confirm, 2):
                    self.saturated = run
                    return SATURATED
                continue
            votes = [self.runs[i].passed for i in mine if not self.runs[i].saturated]
            held, failed = sum(votes), len(votes) - sum(votes)
            if len(votes) == 1 and not near and not self._near(run):
                outcome = run.passed  # clearly held or clearly failed: one run is enough
            elif held >= confirm or failed >= confirm:
                outcome = held >= confirm
            else:
                continue
            for i in mine:
                if not self.runs[i].saturated:
                    agree = self.runs[i].passed == outcome
                    self.runs[i] = replace(
                        self.runs[i], counted=("held" if outcome else "failed") if agree else "outvoted"
                    )
            return outcome

    def climb(self) -> str:
        plan = self.plan
        rate = plan.start
        while True:  # ramp: x factor until a step fails
            outcome = self.probe(rate, "ramp", near=False)
            if outcome is None or outcome == SATURATED:
                return "budget" if outcome is None else "generator_saturated"
            if not outcome:
                self.fails = rate
                break
            self.holds = rate
            if rate >= plan.max_rate:
                return "holds_at_max"
            nxt = nice_rate(rate * plan.factor)  # rounding must never hold the ramp on one rate
            rate = min(nxt if nxt > rate else rate * plan.factor, plan.max_rate)
        if self.holds is None:
            return "fails_at_start"
        while self.fails / self.holds > 1.0 + plan.resolution + 1e-12:  # bisect to the resolution
            mid = math.sqrt(self.holds * self.fails)
            nice = nice_rate(mid)
            mid = nice if self.holds < nice < self.fails else mid
            outcome = self.probe(mid, "bisect", near=True)
            if outcome is None or outcome == SATURATED:
                return "budget" if outcome is None else "generator_saturated"
            if outcome:
                self.holds = mid
            else:
                self.fails = mid
        return "bracketed"


def search(
    plan: CapacityPlan,
    step: Step,
    *,
    name: str = "",
    fleet: Fleet | None = None,
    pause: Callable[[float], None] = lambda seconds: None,
    on_run: Callable[[StepRun], None] = lambda run: None,
) -> CapacityResult:
    """Run the search with ``step`` (one short phase at a rate) and return its interval.

    ``pause`` sleeps the cool-down after a failed run; ``on_run`` hears of every run as it ends.
    """
    s = _Search(plan, step, pause, on_run)
    status = s.climb()
    return CapacityResult(
        name=name,
        plan=plan,
        status=status,
        holds=s.holds,
        fails=s.fails,
        runs=s.runs,
        spent_s=s.spent,
        fleet=fleet,
        saturated=s.saturated,
    )


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.3g}/s" if rate < 1000 else f"{rate:,.0f}/s"


@dataclass
class CapacityResult:
    """Where a search ended: the highest rate that held and the lowest that failed (server-side)."""

    name: str
    plan: CapacityPlan
    status: str
    holds: float | None
    fails: float | None
    runs: list[StepRun]
    spent_s: float
    fleet: Fleet | None = None
    saturated: StepRun | None = None  # the run at which the generator saturated, if it did

    @property
    def width(self) -> float | None:
        """fails / holds - 1: how wide the interval is (the resolution, once bracketed)."""
        return self.fails / self.holds - 1.0 if self.holds and self.fails else None

    def describe(self) -> str:
        plan, holds, fails = self.plan, fmt_rate(self.holds), fmt_rate(self.fails)
        within = f" (within {self.width:.1%})" if self.width is not None else ""
        if self.status == "bracketed":
            return f"holds at {holds}, fails at {fails}{within}"
        if self.status == "holds_at_max":
            return f"holds at the maximum {holds}: capacity >= {holds} (raise max_rate to look further)"
        if self.status == "fails_at_start":
            return f"fails at the start rate {fails}: capacity < {fails} (start lower: the marker's rate)"
        if self.status == "budget":
            if self.holds is None:
                at = f"no step decided (fails at {fails})" if self.fails else "no step decided"
            elif self.fails:
                at = f"holds at {holds}, fails at {fails}{within}"
            else:
                at = f"holds at {holds}, nothing failed yet: capacity >= {holds}"
            return (
                f"{at}: the budget ({plan.budget_s:g}s) ran out before the {plan.resolution:.0%} resolution"
            )
        run = self.saturated
        where = f"{fmt_rate(run.rate)} ({'; '.join(run.reasons)})" if run else "?"
        found = (
            f"holds at {holds}, fails at {fails}; "
            if self.fails
            else f"holds at {holds}; "
            if self.holds
            else ""
        )
        return (
            f"{found}the generator saturated at {where}: that run describes the load generator (or a "
            "machine too busy to run it on time), not the server's capacity -- split the load across "
            "processes with pytest-xdist (-n 2) or give the generator a core of its own"
        )

    def assert_found(self) -> None:
        """Fail the test when no rate held; every other outcome is an interval worth reporting."""
        if self.holds is None:
            raise CapacityNotFound(f"capacity {self.name}: {self.describe()}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "status": self.status,
            "text": self.describe(),
            "holds_per_s": self.holds,
            "fails_per_s": self.fails,
            "width": self.width,
            "converged": self.status == "bracketed",
            "spent_s": self.spent_s,
            "plan": self.plan.to_dict(),
            "saturated_at_per_s": self.saturated.rate if self.saturated else None,
            "curve": [r.to_dict() for r in self.runs],
            "fleet": self.fleet.to_dict(self.holds, self.fails) if self.fleet else None,
        }
