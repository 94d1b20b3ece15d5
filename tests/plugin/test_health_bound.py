"""The generator-lag bound scales with the phase's tightest latency threshold (plugin.lag_bound_for)."""

from __future__ import annotations

import pytest

from pytest_certload.runner import lag_bound_for
from pytest_certload.thresholds import parse_thresholds


@pytest.mark.parametrize(
    ("spec", "expected_ms"),
    [
        ({"acme_new_nonce_duration": ["p(95)<300"], "acme_directory_duration": ["p(95)<500"]}, 30.0),
        ({"http_req_duration": ["p(95)<500", "p(99)<1s"]}, 50.0),
        ({"http_req_duration": ["p(99)<5"]}, 10.0),  # never under the engine's floor
        ({"http_req_duration": ["p(95)>100"]}, None),  # a lower bound says nothing about lag
        ({"http_req_failed": ["rate<0.01"]}, None),  # no latency threshold: engine default
        ({}, None),
    ],
)
def test_lag_bound_is_a_tenth_of_the_tightest_latency_limit(spec, expected_ms) -> None:
    bounds = lag_bound_for(parse_thresholds(spec), {})
    assert bounds.get("max_lag_p99_ms") == expected_ms


def test_an_explicit_ini_bound_wins() -> None:
    bounds = lag_bound_for(parse_thresholds({"http_req_duration": ["p(95)<500"]}), {"max_lag_p99_ms": 7.0})
    assert bounds["max_lag_p99_ms"] == 7.0


@pytest.mark.parametrize(
    ("spec", "given", "expected_ms"),
    [
        ({"http_req_duration": ["p(95)<500"]}, {}, 50.0),  # follows the scaled lag bound
        ({"http_req_duration": ["p(99)<5"]}, {}, 20.0),  # never under the engine's 20 ms floor
        ({"http_req_duration": ["p(95)<500"]}, {"max_lag_p99_ms": 1000.0}, 1000.0),  # a relaxed ini lag
        ({"http_req_duration": ["p(95)<500"]}, {"max_queue_p99_ms": 3.0}, 3.0),  # its own ini bound wins
        ({}, {}, None),  # no latency threshold, no ini: the engine's default
    ],
)
def test_queue_bound_follows_the_lag_bound(spec, given, expected_ms) -> None:
    bounds = lag_bound_for(parse_thresholds(spec), given)
    assert bounds.get("max_queue_p99_ms") == expected_ms
