"""Property-based tests (Hypothesis) of the k6 threshold grammar: thresholds.py.

Valid input is generated from its parts (aggregation, operator, number, unit, tag filter,
abortOnFail form) and must parse to exactly those parts. Invalid input (random text, mutations of
valid text, numbers out of range, non-finite values, wrong types, unknown keys) must raise
ThresholdError naming the offending value: never another exception (a traceback at collection),
never silently accepted. Evaluation on random samples: test_properties_threshold_evaluation.py.
Example counts and seeds: the profiles in tests/plugin/conftest.py.
"""

from __future__ import annotations

import math
import operator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pytest_certload.thresholds import (
    MetricKey,
    ThresholdError,
    parse_duration_s,
    parse_metric_key,
    parse_thresholds,
)

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
OPS |= {"==": operator.eq, "===": operator.eq, "!=": operator.ne}
UNIT_MS = {"us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
TREND_METRICS = ["http_req_duration", "http_req_waiting", "iteration_duration"]
SPACE = st.sampled_from(["", "", " ", "  ", "\t"])

# -- strategies for valid input -----------------------------------------------------------------------


@st.composite
def number_text(draw, low: float = 0.0, high: float = 1e6) -> tuple[str, float]:
    """A number as k6 users write it (``5``, ``0.25``, ``.5``, ``5.``, ``2.5e3``) and its value."""
    value = draw(st.floats(low, high, allow_nan=False, allow_infinity=False))
    style = draw(st.sampled_from(["repr", "int", "fixed", "exp", "lead-dot", "trail-dot"]))
    if style == "int" or (style in ("lead-dot", "trail-dot") and value >= 1):
        text = str(int(value))
    elif style == "fixed":
        text = f"{value:.3f}"
    elif style == "exp":
        text = f"{value:.4e}"
    elif style == "lead-dot":
        text = f"{value:.4f}"[1:] if value < 1 else str(int(value))
    elif style == "trail-dot":
        text = f"{int(value)}."
    else:
        text = repr(value)
    return text, float(text)


TAG_KEY = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True)
TAG_VALUE = st.from_regex(r"[A-Za-z0-9_./\-]{1,10}", fullmatch=True)


@st.composite
def metric_key_text(draw, name: str) -> tuple[str, MetricKey]:
    """``name`` or ``name{k:v, ...}`` with random spacing and quoting, and the key it means."""
    tags = draw(st.dictionaries(TAG_KEY, TAG_VALUE, max_size=3))
    if not tags:
        return name, MetricKey(name)
    quote = draw(st.sampled_from(["", "", '"', "'"]))
    pairs = [f"{draw(SPACE)}{k}{draw(SPACE)}:{draw(SPACE)}{quote}{v}{quote}" for k, v in tags.items()]
    return name + "{" + ",".join(pairs) + "}", MetricKey(name, tuple(sorted(tags.items())))


@st.composite
def trend_expression(draw) -> tuple[str, dict]:
    """A trend expression and what it must parse to (limit in ms)."""
    pct = None
    agg = draw(st.sampled_from(["avg", "min", "med", "max", "p"]))
    if agg == "p":
        pct_text, pct = draw(number_text(0.0, 100.0))
        agg = f"p({pct_text})"
        written_agg = f"p({draw(SPACE)}{pct_text}{draw(SPACE)})"
    else:
        written_agg = agg
    op = draw(st.sampled_from(sorted(OPS)))
    num, value = draw(number_text())
    unit = draw(st.sampled_from([None, *UNIT_MS]))
    limit = value * (UNIT_MS[unit] if unit else 1.0)
    text = f"{draw(SPACE)}{written_agg}{draw(SPACE)}{op}{draw(SPACE)}{num}{draw(SPACE)}{unit or ''}"
    return text + draw(SPACE), {"aggregation": agg, "percentile": pct, "op": op, "limit": limit}


@st.composite
def rate_or_count_expression(draw) -> tuple[str, str, dict]:
    """(metric, expression, meaning) on the rate metric http_req_failed or the counter http_reqs."""
    op = draw(st.sampled_from(sorted(OPS)))
    metric, agg = draw(
        st.sampled_from([("http_req_failed", "rate"), ("http_reqs", "count"), ("http_reqs", "rate")])
    )
    num, value = draw(number_text(0.0, 1.0 if metric == "http_req_failed" else 1e6))
    text = f"{agg}{draw(SPACE)}{op}{draw(SPACE)}{num}"
    return metric, text, {"aggregation": agg, "percentile": None, "op": op, "limit": value}


@st.composite
def duration_text(draw) -> tuple[str, float]:
    """A k6/Go duration string (``1m30s``, ``500ms``, ``2h``) and its seconds."""
    units = draw(st.lists(st.sampled_from(["h", "m", "s", "ms", "us"]), min_size=1, max_size=3, unique=True))
    amounts = [draw(st.integers(0, 999)) for _ in units]
    seconds = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    return "".join(f"{n}{u}" for n, u in zip(amounts, units, strict=True)), sum(
        n * seconds[u] for n, u in zip(amounts, units, strict=True)
    )


def assert_meaning(threshold, meaning: dict) -> None:
    assert threshold.aggregation == meaning["aggregation"]
    assert threshold.op == meaning["op"]
    assert threshold.percentile == meaning["percentile"]
    assert threshold.limit == pytest.approx(meaning["limit"], rel=1e-12, abs=1e-300)


def rejected(spec: object, offending: object) -> ThresholdError:
    """parse_thresholds(spec) must raise ThresholdError whose message shows ``offending``."""
    with pytest.raises(ThresholdError) as info:
        parse_thresholds(spec)
    assert repr(offending) in str(info.value), str(info.value)
    return info.value


# -- valid input: parse -> the same meaning ------------------------------------------------------------


@given(st.sampled_from([*TREND_METRICS, "my_trend"]).flatmap(metric_key_text), trend_expression())
def test_trend_expression_parses_to_its_parts(key, expression):
    (key_text, key_meant), (text, meaning) = key, expression
    (threshold,) = parse_thresholds({key_text: [text]})
    assert threshold.key == key_meant
    assert threshold.expression == text.strip()
    assert_meaning(threshold, meaning)
    (again,) = parse_thresholds({str(threshold.key): threshold.expression})  # what the summary shows
    assert again == threshold


@given(rate_or_count_expression())
def test_rate_and_count_expressions_parse_to_their_parts(case):
    metric, text, meaning = case
    (threshold,) = parse_thresholds({metric: [text]})
    assert_meaning(threshold, meaning)
    assert threshold.metric_type == ("rate" if metric == "http_req_failed" else "counter")


@given(st.sampled_from(TREND_METRICS).flatmap(metric_key_text))
def test_metric_key_round_trips(key):
    text, meant = key
    assert parse_metric_key(text) == meant
    assert parse_metric_key(str(meant)) == meant


@given(st.text(alphabet="ab:, '\"{}_.-1", max_size=12))
def test_an_accepted_metric_key_reads_back_from_its_text(tags):
    """str(key) is what summaries, verdicts and the capacity search (verdict_excess) parse again."""
    try:
        key = parse_metric_key("http_req_duration{" + tags + "}")
    except ThresholdError:
        return
    assert parse_metric_key(str(key)) == key


@given(
    trend_expression(),
    st.booleans(),
    duration_text(),
    st.sampled_from([("abortOnFail", "delayAbortEval"), ("abort_on_fail", "delay_abort_eval")]),
)
def test_object_form_keeps_abort_and_delay(expression, abort, delay, names):
    (text, meaning), (delay_text, delay_s) = expression, delay
    entry = {"threshold": text, names[0]: abort}
    if abort:
        entry[names[1]] = delay_text
    (threshold,) = parse_thresholds({"http_req_duration": [entry]})
    assert_meaning(threshold, meaning)
    assert threshold.abort_on_fail is abort
    assert threshold.delay_abort_eval_s == pytest.approx(delay_s if abort else 0.0)


@given(duration_text(), st.sampled_from(["", " "]))
def test_durations_parse_to_their_seconds(duration, pad):
    text, seconds = duration
    assert parse_duration_s(pad + text + pad) == pytest.approx(seconds)


# -- invalid input: ThresholdError naming the text, never another exception ---------------------------


def parses_or_names_text(spec: dict, text: str) -> None:
    """Either accepted (and then stable under re-parsing) or a ThresholdError that shows ``text``."""
    try:
        parsed = parse_thresholds(spec)
    except ThresholdError as exc:
        assert repr(text) in str(exc) or text in str(exc), str(exc)
        return
    for t in parsed:
        assert parse_thresholds({str(t.key): [t.expression]}).thresholds[0].limit == t.limit


@given(st.text(max_size=30))
def test_random_text_as_expression(text):
    parses_or_names_text({"http_req_duration": [text]}, text)


@given(st.text(max_size=30))
def test_random_text_as_metric_key(text):
    parses_or_names_text({text: ["count>=0"]}, text)


@given(trend_expression(), st.data())
def test_mutated_expression(expression, data):
    text = expression[0]
    at = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.text(alphabet="p()<>=!.,eE+-0123456789usmhµ% {}:x\n", min_size=1, max_size=3))
    how = data.draw(st.sampled_from(["insert", "replace", "delete"]))
    mutated = {
        "insert": text[:at] + junk + text[at:],
        "replace": text[:at] + junk + text[at + len(junk) :],
        "delete": text[:at] + text[at + len(junk) :],
    }[how]
    parses_or_names_text({"http_req_duration": [mutated]}, mutated)


@given(
    st.one_of(st.floats(100.0, 1e300, exclude_min=True), st.floats(-1e300, 0.0, exclude_max=True)),
    st.sampled_from(["<", ">="]),
)
def test_percentile_out_of_range_is_rejected(pct, op):
    assume(pct != 0)  # -0.0 is p(0)
    text = f"p({pct!r}){op}5"
    rejected({"http_req_duration": [text]}, text)


@given(
    st.sampled_from(["avg", "p(95)", "max"]),
    st.sampled_from(["1e309", "1e400", "9" * 400, "1e306h", "1.7e308s", "1e307m"]),
)
def test_non_finite_limit_is_rejected(agg, number):
    text = f"{agg}<{number}"
    assert "finite" in rejected({"http_req_duration": [text]}, text).problem


@given(st.one_of(st.floats(1.0, 1e300, exclude_min=True), st.floats(-1e300, 0.0, exclude_max=True)))
def test_rate_fraction_out_of_range_is_rejected(limit):
    text = f"rate<{limit!r}"
    assume(limit != 0.0)
    rejected({"http_req_failed": [text]}, text)


WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(max_size=5),
    st.lists(st.integers(), min_size=1, max_size=2).map(tuple),
    st.sets(st.integers(), max_size=2),
)


HASHABLE = st.one_of(st.none(), st.integers(), st.floats(), st.tuples(st.text(max_size=3)))
#: where a value of the wrong type goes -> (the spec holding it, wrong values for that place)
WRONG_PLACES = {
    "expression": (lambda v: {"http_req_duration": [v]}, WRONG_TYPES),
    "metric key": (lambda v: {v: ["p(95)<1"]}, HASHABLE),
    "entry list": (
        lambda v: {"http_req_duration": v},
        st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.just([]), st.just({})),
    ),
    "abortOnFail": (
        lambda v: {"http_req_duration": [{"threshold": "p(95)<1", "abortOnFail": v}]},
        st.one_of(HASHABLE, st.text(max_size=5)),
    ),
    "whole spec": (lambda v: v, st.one_of(WRONG_TYPES, st.text(max_size=10)).filter(lambda v: v is not None)),
}


@given(st.sampled_from(sorted(WRONG_PLACES)).flatmap(lambda p: st.tuples(st.just(p), WRONG_PLACES[p][1])))
def test_wrong_type_is_rejected_by_name(case):
    place, value = case
    rejected(WRONG_PLACES[place][0](value), value)


OBJECT_KEYS = {"threshold", "abortOnFail", "abort_on_fail", "delayAbortEval", "delay_abort_eval"}


@given(
    st.one_of(st.text(max_size=12), st.integers(), st.none()).filter(lambda k: k not in OBJECT_KEYS),
    st.integers(),
)
def test_unknown_key_in_threshold_object(key, value):
    rejected({"http_req_duration": [{"threshold": "p(95)<1", key: value}]}, key)


@given(
    st.one_of(
        st.floats(max_value=-1e-9),
        st.just(math.nan),
        st.just(math.inf),
        st.integers(max_value=-1),
        st.integers(2**1100, 2**1200),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=1),
        duration_text().map(lambda d: "-" + d[0]).filter(lambda t: any(c in "123456789" for c in t)),
        st.text(alphabet="abcxyz!?:, ", max_size=6),
    )
)
def test_bad_delay_abort_eval_is_rejected(delay):
    rejected(
        {"http_req_duration": [{"threshold": "p(95)<1", "abortOnFail": True, "delayAbortEval": delay}]}, delay
    )


@given(st.text(max_size=12))
def test_random_duration_text(text):
    try:
        seconds = parse_duration_s(text)
    except ThresholdError as exc:
        assert repr(text) in str(exc)
        return
    assert math.isfinite(seconds) and seconds >= 0
