"""Property-based tests (Hypothesis) of the ``certload`` marker's options: scenario_options.py,
engine/spec.py, engine/durations.py and capacity/plan.py.

Fast layer: random bad values for every option (random strings, numbers out of range, NaN/inf,
ints too large for a float, wrong types) must raise ScenarioOptionError naming the option and the
value -- never another exception, never accepted. Valid values must parse to what they say.
The slow end-to-end layer (a few representative bad markers through pytest itself) is
test_marker_collection_errors.py.
"""

from __future__ import annotations

import math
from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_certload.capacity.plan import OPTION_KEYS
from pytest_certload.engine.agent_timing import MAX_AGENTS
from pytest_certload.engine.schedule import arrival_offsets_ns
from pytest_certload.engine.spec import EXECUTORS, MAX_ITERATIONS, MAX_VUS
from pytest_certload.scenario_options import (
    EXECUTOR_KEYS,
    SCENARIO_KEYS,
    ScenarioOptionError,
    parse_scenario_options,
)

CAR = {"executor": "constant-arrival-rate", "rate": 5, "duration": "10s", "pre_allocated_vus": 2}
RAR = {
    "executor": "ramping-arrival-rate",
    "pre_allocated_vus": 2,
    "stages": [{"target": 5, "duration": "10s"}],
}
CVU = {"executor": "constant-vus", "vus": 2, "duration": "10s"}
OVERRIDE = st.sampled_from([None, 3.0])  # as written, and under --certload-duration=3s

# -- bad values, by kind ------------------------------------------------------------------------------

HUGE_INT = st.integers(2**1030, 2**1100)  # too large for a float: OverflowError unless handled
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WRONG_TYPE = st.one_of(
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
NOT_A_DURATION_TEXT = st.text(alphabet="abcxyz!?,;-_ %", min_size=0, max_size=6)
BAD_NUMBER = st.one_of(NON_FINITE, HUGE_INT, WRONG_TYPE, st.text(max_size=5))
BAD_POSITIVE_NUMBER = st.one_of(BAD_NUMBER, st.floats(max_value=0.0), st.integers(max_value=0))
BAD_DURATION = st.one_of(
    NON_FINITE,
    HUGE_INT,
    WRONG_TYPE,
    NOT_A_DURATION_TEXT,
    st.floats(max_value=0.0),
    st.integers(-(10**6), 0),
    st.integers(1, 999).map(lambda n: f"-{n}s"),
)
BAD_OFFSET = st.one_of(
    NON_FINITE,
    HUGE_INT,
    WRONG_TYPE,
    NOT_A_DURATION_TEXT,
    st.floats(max_value=-1e-9),
    st.integers(max_value=-1),
)
BAD_COUNT = st.one_of(
    NON_FINITE,
    WRONG_TYPE,
    st.floats(0.1, 1e6).filter(lambda f: not f.is_integer()),
    st.text(max_size=4),
    st.integers(max_value=0),
)


def bad_vus(maximum: int):
    return st.one_of(BAD_COUNT, st.integers(maximum + 1, 10**30))


#: option -> (the base it belongs to, bad values for it)
BAD_BY_OPTION = {
    "rate": (CAR, BAD_POSITIVE_NUMBER),
    "duration": (CAR, BAD_DURATION),
    "time_unit": (CAR, BAD_DURATION),
    "pre_allocated_vus": (CAR, bad_vus(MAX_VUS)),
    "max_vus": (CAR, bad_vus(MAX_VUS)),
    "vus": (CVU, bad_vus(MAX_VUS)),
    "start_rate": (RAR, st.one_of(BAD_NUMBER, st.floats(max_value=-1e-9), st.integers(max_value=-1))),
    "graceful_stop": (CVU, BAD_OFFSET),
    "start_offset": (CAR, BAD_OFFSET),
    "start_time": (RAR, BAD_OFFSET),
    "max_iterations": (CVU, bad_vus(MAX_ITERATIONS)),
    "executor": (CAR, st.one_of(WRONG_TYPE, st.text(max_size=25))),
}


# options added by issues 13/18 (HTTP/2 and timeouts; the agent-fleet executor)
BAD_BY_OPTION["timeout"] = (CAR, BAD_DURATION)
BAD_BY_OPTION["http_version"] = (
    CAR,
    st.one_of(WRONG_TYPE, st.text(max_size=5), st.floats(), st.integers()).filter(
        lambda v: isinstance(v, bool) or str(v) not in ("1.1", "2", "2.0", "auto")
    ),
)
AGENT_FLEET = {"executor": "agent-fleet", "agents": 10, "duration": "10s"}
BAD_BY_OPTION |= {
    "agents": (AGENT_FLEET, bad_vus(MAX_AGENTS)),
    "heartbeat_interval": (AGENT_FLEET, BAD_DURATION),
    "poll_interval": (AGENT_FLEET, BAD_DURATION),
    "first_heartbeat_within": (AGENT_FLEET, BAD_OFFSET),
    "first_poll_within": (AGENT_FLEET, BAD_OFFSET),
    "jitter": (AGENT_FLEET, st.one_of(BAD_NUMBER, st.floats(max_value=-1e-9), st.floats(min_value=1.0))),
    "seed": (
        AGENT_FLEET,
        st.one_of(st.booleans(), st.floats(), st.text(max_size=3), st.lists(st.integers(), max_size=1)),
    ),
}


def assert_names(error: ScenarioOptionError, option: str, value: object) -> None:
    """The message names the option and shows the value as written (a string possibly trimmed)."""
    message = str(error)
    assert option in message, message
    shown = [repr(value)] + ([repr(value.strip())] if isinstance(value, str) else [])
    assert any(s in message for s in shown), message


def rejected(options: dict, override: float | None) -> ScenarioOptionError:
    with pytest.raises(ScenarioOptionError) as info:
        parse_scenario_options(options, override)
    return info.value


@given(
    st.sampled_from(sorted(BAD_BY_OPTION)).flatmap(lambda o: st.tuples(st.just(o), BAD_BY_OPTION[o][1])),
    OVERRIDE,
)
def test_bad_executor_option_is_an_error_naming_it(case, override):
    option, value = case
    base = BAD_BY_OPTION[option][0]
    if option == "executor" and value in EXECUTORS:
        return
    assert_names(rejected({**base, option: value}, override), option, value)


@given(st.integers(1, MAX_VUS - 1), st.data())
def test_max_vus_below_pre_allocated_is_an_error(low, data):
    high = data.draw(st.integers(low + 1, MAX_VUS))
    values = {"max_vus": low, "pre_allocated_vus": high}
    message = str(rejected({**CAR, **values}, None))
    assert str(low) in message and str(high) in message


BAD_STAGE = st.one_of(
    WRONG_TYPE.filter(lambda v: not isinstance(v, dict)),
    st.text(max_size=5),
    st.fixed_dictionaries(
        {"target": st.one_of(BAD_NUMBER, st.floats(max_value=-1e-9)), "duration": st.just("1s")}
    ),
    st.fixed_dictionaries({"target": st.just(5), "duration": BAD_DURATION}),
    st.fixed_dictionaries({"target": st.just(5)}),
    st.fixed_dictionaries({"duration": st.just("1s")}),
    st.fixed_dictionaries({"target": st.just(5), "duration": st.just("1s"), "extra": st.integers()}),
)


@given(st.integers(0, 2), BAD_STAGE, OVERRIDE)
def test_bad_stage_is_an_error_naming_it(at, stage, override):
    stages = [{"target": 1, "duration": "2s"}] * 2
    stages.insert(at, stage)
    message = str(rejected({**RAR, "stages": stages}, override))
    assert f"stages[{at}]" in message, message


@given(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.just([]), st.text(max_size=4), st.just({"target": 1})
    ),
    OVERRIDE,
)
def test_stages_not_a_list_of_stages(stages, override):
    assert "stages" in str(rejected({**RAR, "stages": stages}, override))


CAPACITY_NUMBERS = ["max_rate", "factor", "resolution", "margin", "max_lost", "keep_up"]


@given(
    st.one_of(
        st.tuples(st.sampled_from(CAPACITY_NUMBERS), st.one_of(BAD_NUMBER, st.floats(max_value=-1e-9))),
        st.tuples(st.just("confirm"), bad_vus(10**6).filter(lambda v: not isinstance(v, int) or v < 1)),
        st.tuples(st.sampled_from(["budget", "cooldown"]), BAD_OFFSET),
    ),
    OVERRIDE,
)
def test_bad_capacity_option_is_an_error_naming_it(case, override):
    key, value = case
    error = rejected({**CAR, "capacity": {key: value}}, override)
    assert_names(error, key, value)


@given(st.one_of(st.text(max_size=8), st.integers()).filter(lambda k: k not in OPTION_KEYS), st.integers())
def test_unknown_capacity_key_is_an_error_naming_it(key, value):
    assert repr(key) in str(rejected({**CAR, "capacity": {key: value, "x": 1}}, None))


SMALL = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=4))
NOT_SCALAR = st.one_of(
    st.none(),
    st.lists(st.integers(), max_size=1),
    st.dictionaries(st.text(max_size=1), st.integers(), max_size=1),
)
#: the marker's scenario keys -> bad values for each
BAD_SCENARIO_VALUE = {
    "capacity": st.one_of(SMALL, st.lists(st.integers(), max_size=2)).filter(lambda v: v is not True),
    "split": st.one_of(SMALL, st.lists(st.booleans(), max_size=2)),
    "fleets": st.one_of(
        st.text(max_size=4),
        st.integers(),
        st.lists(st.one_of(st.integers(), st.none()), min_size=1, max_size=2),
        st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1),
    ),
    "tags": st.one_of(
        st.text(max_size=4),
        st.lists(st.text(max_size=2), max_size=2),
        st.dictionaries(st.integers(), st.text(max_size=2), min_size=1, max_size=1),
        st.dictionaries(st.text(max_size=3), NOT_SCALAR, min_size=1, max_size=1),
    ),
}


@given(
    st.sampled_from(sorted(BAD_SCENARIO_VALUE)).flatmap(
        lambda k: st.tuples(st.just(k), BAD_SCENARIO_VALUE[k])
    )
)
def test_bad_scenario_value_is_an_error_naming_it(case):
    key, value = case
    assert_names(rejected({**CAR, key: value}, None), key, value)


KNOWN = EXECUTOR_KEYS | SCENARIO_KEYS | {"fleets", "tags"}


@given(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(lambda k: k not in KNOWN),
    st.integers(),
)
def test_unknown_option_is_an_error_naming_it(name, value):
    message = str(rejected({**CAR, name: value}, None))
    assert f"unknown certload option(s) {name}" in message


SPELLINGS = [
    ("timeUnit", "time_unit", "1s"),
    ("preAllocatedVUs", "pre_allocated_vus", 2),
    ("maxVUs", "max_vus", 3),
    ("gracefulStop", "graceful_stop", "1s"),
    ("startTime", "start_offset", "1s"),
]


@given(st.sampled_from(SPELLINGS), st.sampled_from(["", "2"]))
def test_one_option_in_two_spellings_is_an_error(spelling, suffix):
    camel, snake, value = spelling
    other = f"{value}{suffix}" if isinstance(value, str) and suffix else value
    message = str(rejected({**CAR, camel: value, snake: other}, None))
    assert camel in message and snake in message


@given(
    st.one_of(st.text(max_size=20), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)),
    st.sampled_from(["p(95)<500", None]),
)
def test_bad_thresholds_are_an_error_naming_the_text(expression, good):
    spec = {"http_req_duration": [expression] if good is None else [good, expression]}
    try:
        options = parse_scenario_options({**CAR, "thresholds": spec})
    except ScenarioOptionError as exc:
        shown = [repr(expression)] + ([repr(expression.strip())] if isinstance(expression, str) else [])
        assert any(s in str(exc) for s in shown), str(exc)
        return
    assert isinstance(expression, str) and any(t.expression == expression.strip() for t in options.thresholds)


# -- valid values parse to what they say --------------------------------------------------------------


@given(
    st.floats(0.01, 1e4),
    st.integers(1, 600),  # at most 12M arrivals: below MAX_ITERATIONS
    st.sampled_from([("1s", 1.0), ("1m", 60.0), ("500ms", 0.5), (2, 2.0)]),
    st.integers(1, MAX_VUS),
    st.data(),
    st.booleans(),
)
def test_valid_arrival_rate_options_parse_to_their_values(rate, seconds, unit, pre, data, camel):
    max_vus = data.draw(st.integers(pre, MAX_VUS))
    names = (
        ("timeUnit", "preAllocatedVUs", "maxVUs") if camel else ("time_unit", "pre_allocated_vus", "max_vus")
    )
    options = {
        "executor": "constant-arrival-rate",
        "rate": rate,
        "duration": f"{seconds}s",
        names[0]: unit[0],
        names[1]: pre,
        names[2]: max_vus,
    }
    spec = parse_scenario_options(options).spec
    assert (spec.rate, spec.duration, spec.time_unit, spec.pre_allocated_vus, spec.max_vus) == (
        rate,
        seconds,
        unit[1],
        pre,
        max_vus,
    )


@given(
    st.lists(st.tuples(st.floats(0, 1e4), st.integers(1, 600)), min_size=1, max_size=5), st.floats(1.0, 60.0)
)
def test_stages_scale_to_the_override_and_keep_their_targets(stages, override):
    raw = [{"target": target, "duration": f"{seconds}s"} for target, seconds in stages]
    spec = parse_scenario_options({**RAR, "stages": raw}, override).spec
    assert [s.target for s in spec.stages] == [t for t, _ in stages]
    assert spec.total_duration == pytest.approx(override, rel=1e-6)


# -- accepted means runnable: no overflow waiting in the schedule --------------------------------------

BROAD = st.one_of(st.floats(1e-300, 1e300), st.integers(1, 10**30))


@given(
    BROAD,
    st.one_of(BROAD, st.sampled_from(["1s", "1m", "1h"])),
    st.one_of(BROAD, st.just("10s")),
    st.booleans(),
)
def test_an_accepted_arrival_schedule_can_start(rate, time_unit, duration, ramping):
    """Whatever is accepted at collection must not fail when the phase starts (e.g. an overflow)."""
    if ramping:
        options = {**RAR, "time_unit": time_unit, "stages": [{"target": rate, "duration": duration}]}
    else:
        options = {**CAR, "rate": rate, "time_unit": time_unit, "duration": duration}
    try:
        parsed = parse_scenario_options(options)
    except ScenarioOptionError as exc:
        assert str(exc)
        return
    assert math.isfinite(parsed.target_rate_per_s)
    arrivals = list(islice(arrival_offsets_ns(parsed.spec), 3))
    assert all(isinstance(t, int) for _, t in arrivals)


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100),
    HUGE_INT,
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["1s", "10s", "1m", "0s", "-1s", "1.5", "2", "auto", "1.1", *EXECUTORS]),
    st.lists(
        st.one_of(
            st.integers(0, 5), st.fixed_dictionaries({"target": st.integers(0, 9), "duration": st.just("1s")})
        ),
        max_size=2,
    ),
    st.dictionaries(
        st.sampled_from(["target", "duration", "factor", "x", "http_req_duration"]),
        st.one_of(st.integers(0, 5), st.text(max_size=3)),
        max_size=2,
    ),
)


@given(
    st.sampled_from([CAR, RAR, CVU, {}]),
    st.dictionaries(st.sampled_from(sorted(KNOWN)), ANY_VALUE, max_size=4),
    OVERRIDE,
)
def test_any_marker_is_options_or_a_scenario_option_error(base, changes, override):
    """Whatever the marker holds: parsed, or ScenarioOptionError -- never another exception, which
    pytest would show as a traceback at collection."""
    try:
        parsed = parse_scenario_options({**base, **changes}, override)
    except ScenarioOptionError as exc:
        assert str(exc)
        return
    if parsed.spec is not None and parsed.spec.open_model:
        assert math.isfinite(parsed.target_rate_per_s)
        assert all(isinstance(t, int) for _, t in islice(arrival_offsets_ns(parsed.spec), 3))
