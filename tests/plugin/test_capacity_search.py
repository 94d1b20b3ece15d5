"""The capacity search's logic with a fake step function: monotone, noisy, saturating, over budget.

No phase runs here: a step is a function of the rate (pytest_certload/capacity/search.py), so every
decision of the search can be checked exactly, and noise can be replayed from a seed.
"""

from __future__ import annotations

import math
import random

import pytest

from pytest_certload import capacity
from pytest_certload.capacity import CapacityPlan, StepRun, parse_plan, search
from pytest_certload.scenario_options import ScenarioOptionError, parse_scenario_options
from pytest_certload.thresholds import Verdict

C = 340.0  # the fake server's capacity


def plan(**options) -> CapacityPlan:
    """Runs of 10 s from 20/s; a budget that never binds unless a test gives one."""
    options.setdefault("budget", "1h")
    return parse_plan(options, start=20.0, step_s=10.0, graceful_stop_s=2.0, time_unit=1.0)


def monotone(capacity_per_s: float = C, seconds: float = 10.0):
    """Holds up to the capacity; p95 / limit grows with the rate (excess = rate / capacity)."""

    def step(rate: float, index: int) -> StepRun:
        return StepRun(
            rate=rate, passed=rate <= capacity_per_s, excess=rate / capacity_per_s, seconds=seconds
        )

    return step


def test_ramp_then_bisect_brackets_the_capacity_within_the_resolution():
    result = search(plan(max_rate=5000), monotone())
    assert result.status == "bracketed"
    assert result.holds <= C < result.fails
    assert result.width <= 0.05
    assert result.describe().startswith(f"holds at {capacity.fmt_rate(result.holds)}, fails at ")
    ramp = [r.rate for r in result.runs if r.stage == "ramp"]
    # x2 from the start; 320 came within the margin of the limit (0.94): run twice; 640 failed clearly
    assert ramp == [20, 40, 80, 160, 320, 320, 640]
    assert [r.rate for r in result.runs if r.stage == "ramp"].count(640) == 1  # no repeat: clear
    bisect = [r for r in result.runs if r.stage == "bisect"]
    assert bisect and all(r.counted in ("held", "failed") for r in bisect)
    # every bisection step is near the boundary: it counts only once two runs agree
    by_rate: dict[float, int] = {}
    for r in bisect:
        by_rate[r.rate] = by_rate.get(r.rate, 0) + 1
    assert set(by_rate.values()) == {2}
    assert [r.index for r in result.runs] == list(range(1, len(result.runs) + 1))


def test_a_failing_ramp_step_within_the_margin_is_confirmed_before_it_stops_the_ramp():
    result = search(plan(max_rate=5000), monotone(capacity_per_s=250))  # 320 / 250 = 1.28: near
    assert [r.rate for r in result.runs if r.stage == "ramp"] == [20, 40, 80, 160, 320, 320]
    assert result.holds <= 250 < result.fails


def test_confirm_one_never_repeats():
    result = search(plan(max_rate=5000, confirm=1), monotone())
    rates = [r.rate for r in result.runs]
    assert len(rates) == len(set(rates))
    assert result.holds <= C < result.fails and result.width <= 0.05


def test_held_at_the_maximum_and_failed_at_the_start():
    top = search(plan(max_rate=300), monotone())
    assert top.status == "holds_at_max" and top.holds == 300 and top.fails is None
    assert [r.rate for r in top.runs] == [20, 40, 80, 160, 300, 300]  # 300: near, confirmed
    assert "raise max_rate" in top.describe()
    low = search(plan(max_rate=5000), monotone(capacity_per_s=5))
    assert low.status == "fails_at_start" and low.holds is None and low.fails == 20
    with pytest.raises(capacity.CapacityNotFound, match="fails at the start rate 20/s"):
        low.assert_found()


def test_the_budget_bounds_the_runs_and_the_time_and_the_interval_stays_true():
    p = plan(max_rate=5000, budget="75s", cooldown="1s")  # room for 6 runs of 10 s + 2 s stop
    result = search(p, monotone())
    assert result.status == "budget"
    assert result.spent_s + p.step_wall_s > p.budget_s  # stopped only when one more might not fit
    assert result.spent_s <= p.budget_s
    assert result.holds <= C and (result.fails is None or result.fails > C)
    assert "budget (75s) ran out" in result.describe()
    assert len(result.runs) <= p.max_runs


def test_cool_down_follows_every_failed_run_and_counts_against_the_budget():
    pauses: list[float] = []
    result = search(plan(max_rate=5000, cooldown="3s"), monotone(), pause=pauses.append)
    failed_before_another = sum(not r.passed for r in result.runs[:-1])
    assert pauses == [3.0] * failed_before_another
    assert result.spent_s == pytest.approx(sum(r.seconds for r in result.runs) + 3.0 * len(pauses))


def test_generator_saturation_stops_the_search_and_is_never_the_capacity():
    def step(rate: float, index: int) -> StepRun:
        if rate >= 160:
            return StepRun(
                rate=rate, passed=False, saturated=True, reasons=("generator CPU 97%",), seconds=10
            )
        return StepRun(rate=rate, passed=True, excess=0.1, seconds=10)

    result = search(plan(max_rate=5000), step)
    assert result.status == "generator_saturated"
    assert result.holds == 80 and result.fails is None  # no server verdict at 160
    assert [r.counted for r in result.runs[-2:]] == ["saturated", "saturated"]  # tried once more
    text = result.describe()
    assert "generator saturated at 160/s (generator CPU 97%)" in text and "-n 2" in text
    assert "not the server's capacity" in text
    result.assert_found()  # a lower bound was found; the runner raises GeneratorSaturated for it


def test_a_transient_saturation_is_retried_and_the_search_goes_on():
    seen: list[float] = []

    def step(rate: float, index: int) -> StepRun:
        seen.append(rate)
        if rate == 160 and seen.count(160) == 1:
            return StepRun(rate=rate, passed=False, saturated=True, reasons=("lag",), seconds=10)
        return monotone()(rate, index)

    result = search(plan(max_rate=5000), step)
    assert result.status == "bracketed" and result.holds <= C < result.fails


def test_saturation_while_bisecting_keeps_the_servers_bracket():
    def step(rate: float, index: int) -> StepRun:
        if 400 < rate < 640:
            return StepRun(rate=rate, passed=False, saturated=True, reasons=("lag",), seconds=10)
        return monotone(capacity_per_s=500)(rate, index)

    result = search(plan(max_rate=5000), step)
    assert result.status == "generator_saturated"
    assert (result.holds, result.fails) == (320, 640)


def noisy(seed: int, flip: float, band: float = 0.15):
    """A run's outcome flips with probability ``flip`` at the capacity, less with distance, none
    beyond ``band`` (a server near its limit, on a shared machine)."""
    rng = random.Random(seed)

    def step(rate: float, index: int) -> StepRun:
        truth = rate <= C
        chance = flip * max(0.0, 1.0 - abs(rate / C - 1.0) / band)
        passed = (not truth) if rng.random() < chance else truth
        return StepRun(rate=rate, passed=passed, excess=rate / C, seconds=10)

    return step


def test_noise_repeats_make_a_wrong_interval_rarer_than_single_runs():
    """The same seeded noise, with and without confirmation: best of 3 misses C half as often."""
    seeds = range(400)
    single = [search(plan(max_rate=5000, confirm=1), noisy(s, 0.2)) for s in seeds]
    confirmed = [search(plan(max_rate=5000, confirm=2), noisy(s, 0.2)) for s in seeds]

    def misses(results) -> int:
        return sum(not (r.holds <= C < r.fails) for r in results)

    def mean_error(results) -> float:  # how far outside the interval C lies, relative
        return sum(max(r.holds / C - 1, 1 - r.fails / C, 0) for r in results) / len(results)

    assert misses(confirmed) < 0.6 * misses(single)
    assert mean_error(confirmed) < 0.5 * mean_error(single)
    assert all(r.status == "bracketed" for r in confirmed)
    outvoted = sum(r.counted == "outvoted" for res in confirmed for r in res.runs)
    assert outvoted > 0  # the repeats did overrule single noisy runs


def test_the_search_is_deterministic_for_the_same_outcomes():
    """Under pytest-xdist every worker sees the same merged phases: same runs, same decisions."""
    a = search(plan(max_rate=5000), noisy(7, 0.3))
    b = search(plan(max_rate=5000), noisy(7, 0.3))
    assert [(r.rate, r.passed, r.counted) for r in a.runs] == [(r.rate, r.passed, r.counted) for r in b.runs]


# -- the plan ---------------------------------------------------------------------------------------


def test_plan_defaults_and_bounds():
    p = parse_plan(True, start=20.0, step_s=10.0, graceful_stop_s=2.0)
    assert (p.factor, p.resolution, p.confirm, p.max_rate, p.budget_s) == (2.0, 0.05, 2, 64 * 20, 150.0)
    assert p.ramp_steps == 7  # 20 .. 1280
    assert p.bisect_steps == 4  # factor 2 -> 5 %: 2 -> 1.41 -> 1.19 -> 1.09 -> 1.04
    assert p.max_runs == min((7 + 4) * 3, 15)
    assert p.step_wall_s == 12.0


def test_plan_in_the_markers_unit_and_scaled_with_certload_duration():
    p = parse_plan({"max_rate": 600, "budget": "10m"}, start=1.0, step_s=3.0, graceful_stop_s=3.0,
                   time_unit=60.0, scale=0.3)  # fmt: skip
    assert p.max_rate == 10.0  # 600 per minute
    assert p.budget_s == pytest.approx(180.0)  # 10 min x (3 s / 10 s)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bogus": 1}, "unknown capacity option"),
        ({"factor": 1}, "factor: 1 must be > 1"),
        ({"resolution": 1.5}, "resolution"),
        ({"resolution": 0}, "resolution"),
        ({"confirm": 0}, "confirm"),
        ({"max_rate": 10}, "max_rate: 10 must be >= 20"),
        ({"budget": "5s"}, "shorter than one step"),
        ({"budget": "soon"}, "capacity budget"),
        ({"max_lost": 1}, "max_lost"),
        ("yes", "capacity must be True or a dict"),
    ],
)
def test_plan_errors_name_the_option(options, message):
    with pytest.raises(capacity.CapacityOptionError, match=message):
        parse_plan(options, start=20.0, step_s=10.0, graceful_stop_s=2.0)


MARKER = {"executor": "constant-arrival-rate", "rate": 50, "duration": "10s", "pre_allocated_vus": 10}


def test_marker_option_is_parsed_at_collection():
    options = parse_scenario_options({**MARKER, "capacity": {"max_rate": 800, "budget": "2m"}}, 3.0)
    p = options.capacity
    assert (p.start, p.max_rate, p.step_s, p.budget_s) == (50.0, 800.0, 3.0, pytest.approx(36.0))
    assert p.graceful_stop_s == 3.0  # never longer than a step
    assert options.describe_rate() == "50 -> 800 / 1s (capacity)"
    with pytest.raises(ScenarioOptionError, match="constant-arrival-rate"):
        parse_scenario_options({"executor": "constant-vus", "vus": 2, "duration": "1s", "capacity": True})
    with pytest.raises(ScenarioOptionError, match="capacity needs executor"):
        parse_scenario_options({"capacity": True})
    with pytest.raises(ScenarioOptionError, match="unknown capacity option"):
        parse_scenario_options({**MARKER, "capacity": {"maxrate": 1}})


def test_a_max_rate_that_would_scale_vus_past_the_engines_limit_fails_at_collection():
    from pytest_certload.engine.spec import MAX_VUS

    marker = {**MARKER, "max_vus": 1000}  # 1000 VUs at 50/s: 100,000 (MAX_VUS) at 5,000/s
    assert parse_scenario_options({**marker, "capacity": {"max_rate": 5000}}).capacity.max_rate == 5000
    with pytest.raises(
        ScenarioOptionError, match=r"max_rate 5001 would scale max_vus 1000 to 100020 .*<= 5000"
    ):
        parse_scenario_options({**marker, "capacity": {"max_rate": 5001}})
    options = parse_scenario_options({**marker, "capacity": True})
    plan = options.capacity.updated({"max_rate": 10_000})  # certload.capacity(max_rate=...) at run time
    with pytest.raises(capacity.CapacityOptionError, match=str(MAX_VUS)):
        capacity.check_vu_headroom(plan, options.spec.max_vus)


def test_step_options_scale_vus_and_rename_the_scenario():
    options = parse_scenario_options(
        {**MARKER, "max_vus": 40, "thresholds": {"http_req_duration{scenario:hb}": ["p(95)<500"],
                                                 "http_req_failed": ["rate<0.01"]}, "capacity": True}
    )  # fmt: skip
    name, step = capacity.step_options(options, options.capacity, "hb", 200.0, 3)
    assert name == "hb.step03"
    assert (step.spec.rate, step.spec.pre_allocated_vus, step.spec.max_vus) == (200.0, 40, 160)
    assert step.spec.duration == 10.0 and step.raw["rate"] == 200.0 and step.raw["max_vus"] == 160
    keys = {str(t.key) for t in step.thresholds}
    assert keys == {"http_req_duration{scenario:hb.step03}", "http_req_failed"}  # the other is scoped later


@pytest.mark.parametrize(
    ("expression", "observed", "limit", "ok", "excess"),
    [
        ("p(95)<500", 250.0, 500.0, True, 0.5),
        ("p(95)<500", 750.0, 500.0, False, 1.5),
        ("rate<0.01", 0.0, 0.01, True, 0.0),
        ("rate>0.99", 0.9, 0.99, False, 1.1),
        ("count==0", 3.0, 0.0, False, math.inf),
        ("count==0", 0.0, 0.0, True, 0.0),
    ],
)
def test_verdict_excess(expression, observed, limit, ok, excess):
    metric = "http_reqs" if expression.startswith("count") else "http_req_duration"
    metric = "http_req_failed" if expression.startswith("rate") else metric
    verdict = Verdict(metric, expression, ok, observed, limit, 100)
    assert capacity.verdict_excess(verdict) == pytest.approx(excess)


# -- fleet terms ------------------------------------------------------------------------------------


def test_fleet_terms_at_the_real_agents_intervals():
    heartbeats = capacity.agent_heartbeats()
    assert heartbeats.size(340) == pytest.approx(20_400)
    entry = heartbeats.to_dict(340, 360)
    assert entry["text"].startswith("holds 20,400 agents, fails at 21,600")
    assert capacity.agent_polls().size(340) == pytest.approx(10_200)
    # N agents -> N/60 heartbeats/s + N/30 polls/s: 1,000 agents make 50 requests/s
    assert capacity.agent_traffic().size(50) == pytest.approx(1_000)
    assert heartbeats.to_dict(340, None)["text"].startswith("at least 20,400 agents")


def test_issuance_in_certificates_per_day_and_fleet_size():
    fleet = capacity.certificate_renewals(lifetime_days=47, renewal_window_days=30)
    entry = fleet.to_dict(12.0, 13.0)
    assert entry["per_day"] == pytest.approx(12 * 86_400)
    assert entry["holds"] == pytest.approx(12 * 17 * 86_400)  # one issuance per certificate per 17 days
    assert entry["text"].startswith("1.04 million certificates/day; holds 17.6 million certificates")
    with pytest.raises(ValueError, match="shorter than the lifetime"):
        capacity.certificate_renewals(47, 47)


def test_result_to_dict_is_json_safe():
    import json

    result = search(plan(max_rate=5000), monotone(), name="hb", fleet=capacity.agent_heartbeats())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["status"] == "bracketed" and data["fleet"]["holds"] == pytest.approx(result.holds * 60)
    assert len(data["curve"]) == len(result.runs) and data["curve"][0]["stage"] == "ramp"
