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
