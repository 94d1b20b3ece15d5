"""Marker options -> ScenarioOptions: k6 names (snake_case and camelCase), overrides, and bad values."""

from __future__ import annotations

import pytest

from pytest_certload.plugin import ScenarioOptionError, parse_scenario_options

CAR = {"executor": "constant-arrival-rate", "rate": 50, "duration": "5m", "pre_allocated_vus": 50}


def test_k6_scenario_block_ports_with_camel_case():
    options = parse_scenario_options(
        {
            "executor": "constant-arrival-rate",
            "rate": 100,
            "timeUnit": "1m",
            "duration": "5m",
            "preAllocatedVUs": 10,
            "maxVUs": 50,
            "startTime": "10s",
            "tags": {"target_type": "nginx"},
            "thresholds": {"http_req_duration{target_type:nginx}": ["p(95)<1000"]},
        }
    )
    spec = options.spec
    assert (spec.rate, spec.time_unit, spec.duration, spec.max_vus, spec.start_offset) == (
        100,
        60,
        300,
        50,
        10,
    )
    assert options.target_rate_per_s == pytest.approx(100 / 60)
    assert options.describe_rate() == "100 / 1m"
    assert options.tags == {"target_type": "nginx"}
    assert [t.expression for t in options.thresholds] == ["p(95)<1000"]


def test_start_time_snake_case_and_fleets():
    options = parse_scenario_options({**CAR, "start_time": "5s", "fleets": ["agent_fleet"]})
    assert options.spec.start_offset == 5.0
    assert options.fleets == ("agent_fleet",)
    assert options.raw["start_time"] == "5s"  # shown as written


@pytest.mark.parametrize(
    ("options", "seconds"),
    [
        (CAR, 2.0),
        ({"executor": "constant-vus", "vus": 3, "duration": "1h"}, 2.0),
    ],
)
def test_duration_override(options, seconds):
    parsed = parse_scenario_options(options, duration_override_s=seconds)
    assert parsed.spec.total_duration == seconds
    assert parsed.raw["duration"] == "2s"


def test_duration_override_scales_ramping_stages():
    stages = [{"target": 10, "duration": "1m"}, {"target": 50, "duration": "3m"}]
    parsed = parse_scenario_options(
        {"executor": "ramping-arrival-rate", "stages": stages, "pre_allocated_vus": 5}, duration_override_s=8
    )
    assert [s.duration for s in parsed.spec.stages] == [2.0, 6.0]
    assert [s.target for s in parsed.spec.stages] == [10, 50]
    assert parsed.target_rate_per_s == 50
    assert parsed.describe_rate() == "10 -> 50 / 1s"


def test_marker_without_executor_is_defaults_only():
    parsed = parse_scenario_options({"duration": "1s", "thresholds": {"http_req_failed": ["rate<0.01"]}})
    assert parsed.spec is None and len(parsed.thresholds) == 1
    with pytest.raises(ScenarioOptionError, match="no executor"):
        parse_scenario_options({"duration": "1s"}, require_executor=True)


BAD = [
    ({**CAR, "ratee": 5}, "unknown certload option(s) ratee"),
    ({**CAR, "executor": "per-vu-iterations"}, "not supported"),
    ({**CAR, "rate": "fast"}, "not a number"),
    ({**CAR, "rate": 0}, "must be > 0"),
    ({**CAR, "duration": "10x"}, "not a duration"),
    ({**CAR, "pre_allocated_vus": 0}, "must be >= 1"),
    ({**CAR, "max_vus": 10}, "below pre_allocated_vus"),
    ({**CAR, "vus": 5}, "unknown option(s) vus"),
    ({k: v for k, v in CAR.items() if k != "duration"}, "missing required option(s) duration"),
    ({"executor": "ramping-arrival-rate", "pre_allocated_vus": 1, "stages": []}, "stages"),
    ({**CAR, "thresholds": {"http_req_duration": ["p95<1"]}}, "accepted grammar"),
    ({**CAR, "thresholds": ["p(95)<1"]}, "must be a dict"),
    ({**CAR, "fleets": "agent_fleet"}, "list of fleet names"),
    ({**CAR, "fleets": [1]}, "list of fleet names"),
    ({**CAR, "tags": ["nginx"]}, "dict of tag name"),
    ({**CAR, "tags": {"scenario": "x"}}, "may not set 'scenario'"),
    ({**CAR, "start_time": "1s", "startTime": "2s"}, "start_time once"),
    ({**CAR, "split": "no"}, "split must be True"),
]


def test_split_defaults_to_true_and_false_is_kept():
    assert parse_scenario_options(CAR).split is True
    assert parse_scenario_options({**CAR, "split": False}).split is False


@pytest.mark.parametrize(("options", "words"), BAD, ids=[b[1] for b in BAD])
def test_bad_options(options, words):
    with pytest.raises(ScenarioOptionError) as excinfo:
        parse_scenario_options(options)
    assert words in str(excinfo.value)


# -- regressions found by the property tests (test_properties_marker_options.py) --------------------

RAMPING = {"executor": "ramping-arrival-rate", "pre_allocated_vus": 2}


@pytest.mark.parametrize(
    ("options", "words"),
    [
        # under --certload-duration a malformed stage was a TypeError/KeyError text ("string indices
        # must be integers", "'duration'") naming neither the option nor the value
        ({**RAMPING, "stages": ["5s"]}, "stages[0]: '5s' must be a mapping"),
        ({**RAMPING, "stages": [{"target": 5}]}, "stages[0]: {'target': 5} must be a mapping"),
        ({**RAMPING, "stages": [None]}, "stages[0]: None"),
        ({**RAMPING, "stages": "5s"}, "stages: must be a non-empty list"),
        # ... and no stages at all said "unknown option(s) duration"
        (RAMPING, "missing required option(s) stages"),
    ],
)
def test_malformed_stages_under_the_duration_override(options, words):
    with pytest.raises(ScenarioOptionError) as excinfo:
        parse_scenario_options(options, duration_override_s=3.0)
    assert words in str(excinfo.value)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({**CAR, "tags": {"a": None}}, "got {'a': None}"),  # was the tag value "None"
        ({**CAR, "tags": {"a": ["x"]}}, "got {'a': ['x']}"),
        ({**CAR, "tags": ["nginx"]}, "got ['nginx']"),  # the message did not show the value
        ({**CAR, "start_time": -1}, "start_time: -1"),  # was named start_offset
        ({**CAR, "startTime": "soon"}, "startTime: 'soon'"),
        ({**CAR, "capacity": {1: 2, "x": 3}}, "unknown capacity option(s) 'x', 1"),  # was a TypeError
        ({**CAR, "capacity": {"factor": 10**400}}, "capacity factor"),  # was an OverflowError
        ({**CAR, "capacity": {"margin": float("nan")}}, "capacity margin: nan is not a finite number"),
    ],
)
def test_bad_values_are_named_as_written(options, words):
    with pytest.raises(ScenarioOptionError) as excinfo:
        parse_scenario_options(options)
    assert words in str(excinfo.value)


def test_numeric_tag_values_are_kept_as_text():
    assert parse_scenario_options({**CAR, "tags": {"shard": 3, "ratio": 0.5}}).tags == {
        "shard": "3",
        "ratio": "0.5",
    }
