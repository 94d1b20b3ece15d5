"""Executor options and schedules: k6 spellings, clear errors, evenly spaced arrivals, xdist shares."""

from __future__ import annotations

from itertools import pairwise

import pytest

from pytest_certload.engine import ExecutorOptionError, ExecutorSpec, parse_duration
from pytest_certload.engine.executors.constant_vus import ConstantVusExecutor
from pytest_certload.engine.schedule import NS, arrival_offsets_ns, target_arrivals


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("2", 2.0),
        (2, 2.0),
        (0.25, 0.25),
        ("1.5s", 1.5),
    ],
)
def test_durations_accept_k6_strings_and_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10x", "", "s30", "30 s", "-5s", -1, 0, True, None, [1], "1m30"])
def test_bad_durations_raise_a_clear_value_error(bad):
    with pytest.raises(ExecutorOptionError) as info:
        parse_duration(bad, "duration")
    assert isinstance(info.value, ValueError)
    assert "duration" in str(info.value)
    assert "30s" in str(info.value)  # the message shows what a good value looks like


def test_constant_arrival_rate_options_in_snake_and_camel_case():
    a = ExecutorSpec.from_options(
        {
            "executor": "constant-arrival-rate",
            "rate": 600,
            "time_unit": "1m",
            "duration": "1m30s",
            "pre_allocated_vus": 5,
            "max_vus": 50,
        }
    )
    b = ExecutorSpec.from_options(
        {
            "executor": "constant-arrival-rate",
            "rate": 600,
            "timeUnit": "1m",
            "duration": "1m30s",
            "preAllocatedVUs": 5,
            "maxVUs": 50,
            "gracefulStop": "10s",
        }
    )
    assert (a.rate, a.time_unit, a.duration, a.pre_allocated_vus, a.max_vus) == (600, 60, 90, 5, 50)
    assert a.graceful_stop == 30.0  # k6's default
    assert b.graceful_stop == 10.0
    assert (
        a.open_model
        and not ExecutorSpec.from_options({"executor": "constant-vus", "vus": 3, "duration": "1s"}).open_model
    )


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"executor": "per-vu-iterations", "vus": 1}, "not supported"),
        (
            {"executor": "constant-arrival-rate", "duration": "1s", "pre_allocated_vus": 1},
            "missing required option(s) rate",
        ),
        (
            {"executor": "constant-arrival-rate", "rate": 0, "duration": "1s", "pre_allocated_vus": 1},
            "rate: 0 must be > 0",
        ),
        (
            {"executor": "constant-arrival-rate", "rate": "10", "duration": "1s", "pre_allocated_vus": 1},
            "not a number",
        ),
        (
            {
                "executor": "constant-arrival-rate",
                "rate": 10,
                "duration": "1s",
                "pre_allocated_vus": 5,
                "max_vus": 2,
            },
            "max_vus (2) is below pre_allocated_vus (5)",
        ),
        (
            {"executor": "constant-arrival-rate", "rate": 10, "duration": "ten", "pre_allocated_vus": 1},
            "duration: 'ten'",
        ),
        (
            {
                "executor": "constant-arrival-rate",
                "rate": 10,
                "duration": "1s",
                "pre_allocated_vus": 1,
                "vus": 3,
            },
            "unknown option(s) vus",
        ),
        ({"executor": "ramping-arrival-rate", "stages": [], "pre_allocated_vus": 1}, "stages"),
        (
            {"executor": "ramping-arrival-rate", "stages": [{"target": 5}], "pre_allocated_vus": 1},
            "stages[0]",
        ),
        (
            {
                "executor": "ramping-arrival-rate",
                "stages": [{"target": -1, "duration": "1s"}],
                "pre_allocated_vus": 1,
            },
            "stages[0].target",
        ),
        ({"executor": "constant-vus", "vus": 0, "duration": "1s"}, "vus: 0 must be >= 1"),
        ({"executor": "constant-vus", "vus": 2.5, "duration": "1s"}, "not a whole number"),
        (
            {"executor": "constant-vus", "vus": 2, "duration": "1s", "share_index": 2, "share_count": 2},
            "share_index",
        ),
        ("constant-vus", "must be a mapping"),
    ],
)
def test_bad_executor_options_name_the_problem(options, fragment):
    with pytest.raises(ExecutorOptionError) as info:
        ExecutorSpec.from_options(options)
    assert fragment in str(info.value)


def _times(spec: ExecutorSpec) -> list[int]:
    return [t for _, t in arrival_offsets_ns(spec)]


def test_constant_rate_schedule_is_evenly_spaced():
    spec = ExecutorSpec.from_options(
        {"executor": "constant-arrival-rate", "rate": 200, "duration": "10s", "pre_allocated_vus": 1}
    )
    times = _times(spec)
    assert len(times) == 2000
    gaps = {b - a for a, b in pairwise(times)}
    assert gaps <= {5_000_000, 4_999_999, 5_000_001}  # no bunching: every gap is 5 ms (+-1 ns rounding)
    per_minute = ExecutorSpec.from_options(
        {
            "executor": "constant-arrival-rate",
            "rate": 600,
            "time_unit": "1m",
            "duration": "3s",
            "pre_allocated_vus": 1,
        }
    )
    assert len(_times(per_minute)) == 30  # 600 per minute = 10/s


def test_ramping_schedule_follows_the_linear_rate():
    spec = ExecutorSpec.from_options(
        {
            "executor": "ramping-arrival-rate",
            "start_rate": 0,
            "pre_allocated_vus": 1,
            "stages": [
                {"target": 100, "duration": "10s"},
                {"target": 100, "duration": "5s"},
                {"target": 0, "duration": "5s"},
            ],
        }
    )
    times = _times(spec)
    # area under the rate: 0->100 over 10 s = 500, flat 100 for 5 s = 500, 100->0 over 5 s = 250
    assert len(times) == target_arrivals(spec) == 1250
    first_stage = [t for t in times if t < 10 * NS]
    assert len(first_stage) == 500
    # N(t) = 5 t^2 on the ramp: the k-th arrival is due at sqrt(k / 5) seconds
    for k in (1, 20, 125, 499):
        assert times[k] == pytest.approx(((k / 5) ** 0.5) * NS, rel=1e-6)
    gaps = [b - a for a, b in pairwise(first_stage)]
    assert all(g2 <= g1 for g1, g2 in pairwise(gaps))  # the rate only rises on the ramp
    flat = [t for t in times if 10 * NS <= t < 15 * NS]
    assert len(flat) == 500
    assert max(b - a for a, b in pairwise(flat)) == pytest.approx(10_000_000, abs=2)


def test_shares_interleave_into_exactly_the_single_process_schedule():
    base = {"executor": "constant-arrival-rate", "rate": 90, "duration": "2s", "pre_allocated_vus": 1}
    whole = list(arrival_offsets_ns(ExecutorSpec.from_options(base)))
    shares = [list(arrival_offsets_ns(ExecutorSpec.from_options(base).with_share(i, 3))) for i in range(3)]
    assert sorted(a for share in shares for a in share) == whole
    for i, share in enumerate(shares):
        assert [k for k, _ in share] == list(range(i, 180, 3))  # worker i takes every 3rd arrival
        assert share[0][1] == whole[i][1]  # offset accordingly: its first arrival is global arrival i
    spec = ExecutorSpec.from_options({**base, "share_index": 1, "share_count": 3, "start_offset": "2s"})
    assert spec.rate_share == pytest.approx(1 / 3)
    assert next(iter(arrival_offsets_ns(spec))) == (1, whole[1][1] + 2 * NS)


def test_constant_vus_shares_split_the_vus():
    spec = ExecutorSpec.from_options({"executor": "constant-vus", "vus": 5, "duration": "1s"})

    class _Runtime:
        def __init__(self, s):
            self.spec = s

    counts = [ConstantVusExecutor(_Runtime(spec.with_share(i, 3))).vus for i in range(3)]
    assert counts == [2, 2, 1]


# -- regressions found by the property tests (test_properties_marker_options.py) --------------------

CAR_OPTIONS = {"executor": "constant-arrival-rate", "rate": 5, "duration": "10s", "pre_allocated_vus": 2}
RAMP_OPTIONS = {"executor": "ramping-arrival-rate", "pre_allocated_vus": 2}


@pytest.mark.parametrize("bad", [10**400, "1_0", "١٠", "inf", "nan", "infinity"])
def test_durations_float_would_take_are_not_durations(bad):
    """10**400 was an OverflowError; '1_0' (Python's digit separator) and '١٠' were 10 s."""
    with pytest.raises(ExecutorOptionError) as info:
        parse_duration(bad, "duration")
    assert str(info.value).startswith("duration: ")


def test_empty_duration_shows_the_value():
    with pytest.raises(ExecutorOptionError, match=r"duration: '' is an empty duration"):
        parse_duration("  ")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({**CAR_OPTIONS, "rate": float("nan")}, "rate: nan is not a finite number"),  # nan <= 0 is False
        ({**CAR_OPTIONS, "rate": float("inf")}, "rate: inf is not a finite number"),
        ({**CAR_OPTIONS, "rate": 10**400}, "is not a finite number"),  # was OverflowError
        (
            {**RAMP_OPTIONS, "start_rate": float("nan"), "stages": [{"target": 1, "duration": "1s"}]},
            "start_rate: nan",
        ),
        ({**RAMP_OPTIONS, "stages": [{"target": float("inf"), "duration": "1s"}]}, "stages[0].target: inf"),
        ({**RAMP_OPTIONS, "stages": [{"target": 10**400, "duration": "1s"}]}, "stages[0].target"),
        ({**CAR_OPTIONS, "max_iterations": 10**12}, "max_iterations: 1000000000000 must be <= 50_000_000"),
        ({**CAR_OPTIONS, "pre_allocated_vus": 10**12}, "pre_allocated_vus: 1000000000000 must be <= 100_000"),
        ({**CAR_OPTIONS, "max_vus": 100_001}, "max_vus: 100001 must be <= 100_000"),
        ({"executor": "constant-vus", "vus": 10**9, "duration": "1s"}, "vus: 1000000000 must be <= 100_000"),
        (
            {**CAR_OPTIONS, "timeUnit": "1s", "time_unit": "1m"},
            "timeUnit='1s' and time_unit='1m' are one option",
        ),
        ({**CAR_OPTIONS, "maxVUs": 3, "max_vus": 3}, "maxVUs=3 and max_vus=3"),
        ({**CAR_OPTIONS, "startTime": "1s", "start_offset": "2s"}, "startTime='1s' and start_offset='2s'"),
    ],
)
def test_out_of_range_and_doubled_options_are_errors(options, fragment):
    """Each was accepted (NaN/inf rates and targets, VUs and max_iterations without a ceiling, one
    option in both spellings silently taking one value) or an OverflowError."""
    with pytest.raises(ExecutorOptionError) as info:
        ExecutorSpec.from_options(options)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        # accepted, then OverflowError / NaN in engine/schedule.py when the phase started
        ({**CAR_OPTIONS, "rate": 1e300, "duration": "1e9"}, "above one per nanosecond"),
        ({**CAR_OPTIONS, "rate": 2, "time_unit": 1e-300}, "shorter than 1ns"),
        ({**RAMP_OPTIONS, "stages": [{"target": 1e300, "duration": "1s"}]}, "1e+300 per time_unit 1s"),
        ({**RAMP_OPTIONS, "stages": [{"target": 1, "duration": 1e-254}]}, "stages[0].duration"),
        # accepted, then silently cut at MAX_ITERATIONS (the first 50 s of a 100 s phase ran)
        ({**CAR_OPTIONS, "rate": 1_000_000, "duration": "100s"}, "above the engine's ceiling of 50_000_000"),
        ({**RAMP_OPTIONS, "stages": [{"target": 2_000_000, "duration": "1m"}]}, "6e+07 iterations"),
    ],
)
def test_a_schedule_that_cannot_run_as_written_is_an_error(options, fragment):
    with pytest.raises(ExecutorOptionError) as info:
        ExecutorSpec.from_options(options)
    assert fragment in str(info.value)


def test_a_schedule_cut_on_purpose_is_kept():
    spec = ExecutorSpec.from_options(
        {**CAR_OPTIONS, "rate": 1_000_000, "duration": "100s", "max_iterations": 1000}
    )
    assert len(list(arrival_offsets_ns(spec))) == 1000


@pytest.mark.parametrize(
    ("bad", "words"),
    [(1e-10, "shorter than 1ns"), ("0.5ns", "shorter than 1ns"), (1e-254, "shorter"), (3.6e299, "longer")],
)
def test_durations_outside_the_engines_clock_are_errors(bad, words):
    """A stage of 1e-254 s was accepted and its ramp's arithmetic overflowed to NaN when the phase
    started; a duration of 3.6e299 s put the second arrival at infinity (OverflowError)."""
    with pytest.raises(ExecutorOptionError, match=words):
        parse_duration(bad)
    assert parse_duration("1ns") == pytest.approx(1e-9)
    assert parse_duration("2562047h") == 2562047 * 3600.0  # 292 years: still int64 nanoseconds
