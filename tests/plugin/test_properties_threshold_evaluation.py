"""Property-based tests (Hypothesis) of threshold evaluation (thresholds.evaluate): on random
samples recorded through the engine's Recorder, every verdict -- observed value, sample count,
pass/fail -- agrees with a plain-Python reference computed from the same raw values, including
the documented empty-selection rules (a trend or rate with nothing selected fails; a counter is
exactly 0; a rate filtered to zero requests of a scenario that did send requests is 0.0).
Example counts and seeds: the profiles in tests/plugin/conftest.py.
"""

from __future__ import annotations

import math
import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_certload.stats import Recorder, tagset
from pytest_certload.thresholds import evaluate, parse_thresholds

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
OPS |= {"==": operator.eq, "===": operator.eq, "!=": operator.ne}

TAGS = st.fixed_dictionaries(
    {"scenario": st.sampled_from(["a", "b"]), "status": st.sampled_from(["200", "500"])}
)
FILTER = st.dictionaries(st.sampled_from(["scenario", "status"]), st.sampled_from(["a", "b", "200", "500"]))


def key_text(name: str, wanted: dict[str, str]) -> str:
    return name + ("{" + ",".join(f"{k}:{v}" for k, v in wanted.items()) + "}" if wanted else "")


def selected(series: list[tuple[dict, object]], wanted: dict[str, str]) -> list:
    return [data for tags, data in series if all(tags.get(k) == v for k, v in wanted.items())]


def reference_percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method), written out."""
    ordered = sorted(values)
    rank = pct / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def reference_trend(agg: str, values_ms: list[float]) -> float:
    if agg == "avg":
        return math.fsum(values_ms) / len(values_ms)
    if agg in ("min", "max"):
        return min(values_ms) if agg == "min" else max(values_ms)
    return reference_percentile(values_ms, 50.0 if agg == "med" else float(agg[2:-1]))


def agrees(verdict, reference: float, op: str, limit: float, exact: bool = False) -> None:
    """Same observed value; same verdict (exact values always, computed ones off the boundary)."""
    assert verdict.observed == pytest.approx(reference, rel=1e-9, abs=1e-12)
    if exact or abs(reference - limit) > 1e-9 * max(1.0, abs(limit)):
        assert verdict.ok == OPS[op](reference, limit)


@given(
    st.lists(st.tuples(TAGS, st.lists(st.integers(0, 10**10), max_size=30)), max_size=4),
    FILTER,
    st.sampled_from(["avg", "min", "med", "max", "p(0)", "p(50)", "p(90)", "p(99.9)", "p(100)"]),
    st.sampled_from(sorted(OPS)),
    st.integers(0, 10**10),
)
def test_trend_verdict_matches_reference(series, wanted, agg, op, limit_ns):
    recorder = Recorder()
    for tags, values in series:
        for value in values:
            recorder.add_trend("http_req_duration", tagset(tags), value)
    limit = limit_ns / 1e6
    (verdict,) = evaluate(
        parse_thresholds({key_text("http_req_duration", wanted): f"{agg}{op}{limit!r}"}), recorder.samples()
    )
    values_ms = [v / 1e6 for values in selected(series, wanted) for v in values]
    assert verdict.count == len(values_ms)
    if not values_ms:  # an empty selection never passes
        assert (verdict.ok, verdict.observed) == (False, None)
        assert "no samples" in verdict.reason
        return
    agrees(verdict, reference_trend(agg, values_ms), op, limit, exact=agg in ("min", "max", "p(0)", "p(100)"))


RATE_TAGS = st.fixed_dictionaries(
    {"scenario": st.sampled_from(["a", "b"]), "status_class": st.sampled_from(["2xx", "5xx"])}
)


@given(
    st.lists(st.tuples(RATE_TAGS, st.lists(st.booleans(), max_size=20)), max_size=4),
    st.dictionaries(st.sampled_from(["scenario", "status_class"]), st.sampled_from(["a", "b", "2xx", "5xx"])),
    st.sampled_from(sorted(OPS)),
    st.fractions(0, 1, max_denominator=40),
)
def test_rate_verdict_matches_reference(series, wanted, op, limit):
    recorder = Recorder()
    for tags, hits in series:
        for hit in hits:
            recorder.add_rate("http_req_failed", tagset(tags), hit)
    limit_f = float(limit)
    (verdict,) = evaluate(
        parse_thresholds({key_text("http_req_failed", wanted): f"rate{op}{limit_f!r}"}), recorder.samples()
    )
    hits = [h for hs in selected(series, wanted) for h in hs]
    scope = {k: v for k, v in wanted.items() if k == "scenario"}
    assert verdict.count == len(hits)
    if hits:
        agrees(verdict, sum(hits) / len(hits), op, limit_f)
    elif scope != wanted and any(selected(series, scope)):  # requests sent, none of this kind: 0.0
        agrees(verdict, 0.0, op, limit_f)
    else:
        assert (verdict.ok, verdict.observed) == (False, None)


@given(
    st.lists(st.tuples(TAGS, st.integers(1, 1000)), max_size=4),
    FILTER,
    st.sampled_from(["count", "rate"]),
    st.sampled_from(sorted(OPS)),
    st.integers(0, 3000),
    st.floats(0.5, 100.0),
)
def test_counter_verdict_matches_reference(series, wanted, agg, op, limit, duration_s):
    recorder = Recorder()
    for tags, n in series:
        recorder.add_counter("http_reqs", tagset(tags), n)
    (verdict,) = evaluate(
        parse_thresholds({key_text("http_reqs", wanted): f"{agg}{op}{limit}"}), recorder.samples(), duration_s
    )
    total = sum(selected(series, wanted))
    assert verdict.count == total
    agrees(verdict, total if agg == "count" else total / duration_s, op, float(limit), exact=agg == "count")
