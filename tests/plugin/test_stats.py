"""Merging and selection in the stats module: merged percentiles equal pooled-sample percentiles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_certload.stats import PhaseSamples, Recorder, tagset


def _random_result(rng: np.random.Generator, n: int, scenario: str) -> tuple[PhaseSamples, np.ndarray]:
    rec = Recorder()
    values = rng.lognormal(mean=15, sigma=1.2, size=n).astype(np.int64)
    for i, v in enumerate(values):
        status = "200" if i % 7 else "503"
        tags = tagset({"scenario": scenario, "status": status, "status_class": status[0] + "xx"})
        rec.add_trend("http_req_duration", tags, int(v))
        rec.add_rate("http_req_failed", tags, status != "200")
        rec.add_counter("http_reqs", tags)
    return rec.samples({"worker": scenario}), values


@pytest.mark.parametrize("seed", range(5))
def test_merged_percentiles_equal_pooled_samples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = [_random_result(rng, int(rng.integers(1, 3000)), f"w{i}") for i in range(int(rng.integers(2, 6)))]
    merged = PhaseSamples.merge(r for r, _ in parts)
    pooled = np.concatenate([v for _, v in parts]).astype(np.float64) / 1e6
    stats = merged.trend_stats("http_req_duration")
    for name, q in (("med", 50), ("p(95)", 95), ("p(99)", 99), ("p(99.9)", 99.9)):
        assert stats[name] == pytest.approx(float(np.percentile(pooled, q)), rel=0, abs=1e-9)
    assert stats["count"] == pooled.size
    assert stats["max"] == pytest.approx(pooled.max())
    # and never the average of the parts' percentiles (which differs on these skewed inputs)
    avg_of_p99 = np.mean([r.trend_stats("http_req_duration")["p(99)"] for r, _ in parts])
    assert stats["p(99)"] != pytest.approx(avg_of_p99, rel=1e-6)


def test_tag_filter_selects_union_of_series() -> None:
    rng = np.random.default_rng(7)
    (a, _), (b, _) = _random_result(rng, 700, "a"), _random_result(rng, 300, "b")
    merged = PhaseSamples.merge([a, b])
    assert merged.select_trend("http_req_duration", {"scenario": "a"}).size == 700
    assert merged.select_trend("http_req_duration").size == 1000
    failed, total = merged.select_rate("http_req_failed", {"status_class": "5xx"})
    assert (
        failed == total == sum(1 for i in range(700) if i % 7 == 0) + sum(1 for i in range(300) if i % 7 == 0)
    )
    assert merged.select_counter("http_reqs", {"scenario": "b"}) == 300
    assert merged.select_trend("http_req_duration", {"scenario": "nope"}).size == 0
    assert merged.trend_stats("http_req_duration", {"scenario": "nope"}) == {"count": 0}
    assert merged.tag_values("scenario") == {"a", "b"}


def test_round_trip_through_json_is_lossless() -> None:
    rng = np.random.default_rng(3)
    r, _ = _random_result(rng, 500, "x")
    back = PhaseSamples.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.rates == r.rates and back.counters == r.counters and back.meta == r.meta
    assert set(back.trends) == set(r.trends)
    for k, v in r.trends.items():
        assert np.array_equal(back.trends[k], v)
