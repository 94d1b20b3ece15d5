"""The k6 threshold grammar: what parses to what, what is rejected and why, how verdicts come out."""

from __future__ import annotations

import pytest

from pytest_certload.stats import Recorder, tagset
from pytest_certload.thresholds import (
    GRAMMAR,
    MetricKey,
    ThresholdError,
    abort_check,
    breach_message,
    evaluate,
    parse_duration_s,
    parse_metric_key,
    parse_thresholds,
)

MS = 1_000_000  # ns


def one(metric: str, expr: object):
    (threshold,) = parse_thresholds({metric: [expr]})
    return threshold


# -- parsing: accepted ------------------------------------------------------------------------------

GOOD = [
    # metric, expression, aggregation, op, limit (ms for trends)
    ("http_req_duration", "p(95)<500", "p(95)", "<", 500.0),
    ("http_req_duration", "p(99)<1s", "p(99)", "<", 1000.0),
    ("http_req_duration", "avg<200ms", "avg", "<", 200.0),
    ("http_req_duration", "med<=3", "med", "<=", 3.0),
    ("http_req_duration", "min>0", "min", ">", 0.0),
    ("http_req_duration", "max < 2m", "max", "<", 120_000.0),
    ("http_req_duration", "p(99.9)<1h", "p(99.9)", "<", 3_600_000.0),
    ("http_req_duration", "p(0)>=0", "p(0)", ">=", 0.0),
    ("http_req_duration", "p(100)<=5", "p(100)", "<=", 5.0),
    ("http_req_duration", "avg<250us", "avg", "<", 0.25),
    ("http_req_duration", "avg<250µs", "avg", "<", 0.25),
    ("http_req_duration", "avg<1.5e3", "avg", "<", 1500.0),
    ("http_req_duration", "  p( 95 ) <  .5s ", "p(95)", "<", 500.0),
    ("http_req_failed", "rate<0.01", "rate", "<", 0.01),
    ("http_req_failed", "rate===0", "rate", "===", 0.0),
    ("http_req_failed", "rate!=1", "rate", "!=", 1.0),
    ("http_reqs", "count==0", "count", "==", 0.0),
    ("http_reqs", "rate>=10", "rate", ">=", 10.0),  # k6: per second on a counter
    ("dropped_iterations", "count<=5", "count", "<=", 5.0),
    ("my_custom_trend", "p(95)<20", "p(95)", "<", 20.0),  # unknown metric: type from the aggregation
]


@pytest.mark.parametrize(("metric", "expr", "agg", "op", "limit"), GOOD, ids=[g[1].strip() for g in GOOD])
def test_accepted_expressions(metric, expr, agg, op, limit):
    t = one(metric, expr)
    assert (t.aggregation, t.op) == (agg, op)
    assert t.limit == pytest.approx(limit)
    assert t.expression == expr.strip()


@pytest.mark.parametrize(
    ("text", "name", "tags"),
    [
        ("http_req_duration", "http_req_duration", ()),
        ("http_req_duration{scenario:agent_storm}", "http_req_duration", (("scenario", "agent_storm"),)),
        ("http_req_failed{status_class:5xx}", "http_req_failed", (("status_class", "5xx"),)),
        ("m{b:2, a:1}", "m", (("a", "1"), ("b", "2"))),  # sorted, spaces trimmed
        ('m{url:"https://x:1/p"}', "m", (("url", "https://x:1/p"),)),  # value may hold ':'; quotes dropped
    ],
)
def test_metric_keys(text, name, tags):
    key = parse_metric_key(text)
    assert (key.name, key.tags) == (name, tags)
    assert parse_metric_key(str(key)) == key


def test_object_form_camel_and_snake_case():
    ts = parse_thresholds(
        {
            "http_req_failed": [{"threshold": "rate<0.01", "abortOnFail": True, "delayAbortEval": "1m30s"}],
            "http_req_duration": [{"threshold": "p(95)<1s", "abort_on_fail": True, "delay_abort_eval": 2}],
        }
    )
    assert [(t.abort_on_fail, t.delay_abort_eval_s) for t in ts] == [(True, 90.0), (True, 2.0)]
    assert ts.has_abort


def test_single_string_is_one_expression_and_order_is_kept():
    ts = parse_thresholds({"http_req_duration": "p(95)<1", "http_req_failed": ["rate<0.1"]})
    assert [t.expression for t in ts] == ["p(95)<1", "rate<0.1"]
    assert ts.keys() == ["http_req_duration", "http_req_failed"]


def test_none_is_an_empty_set():
    assert not parse_thresholds(None)


def test_scoping_adds_the_scenario_tag_unless_present():
    ts = parse_thresholds({"http_req_duration": ["p(95)<1"], "http_reqs{scenario:other}": ["count>0"]})
    assert [str(t.key) for t in ts.scoped("mine")] == [
        "http_req_duration{scenario:mine}",
        "http_reqs{scenario:other}",
    ]


# -- parsing: rejected -------------------------------------------------------------------------------

BAD = [
    # spec, words the message must contain
    ({"http_req_duration": ["p95<500"]}, "p(95)"),
    ({"http_req_duration": ["p[95]<500"]}, "p(95)"),
    ({"http_req_duration": ["p(101)<500"]}, "between 0 and 100"),
    ({"http_req_duration": ["p(-1)<500"]}, "between 0 and 100"),
    ({"http_req_duration": ["p()<500"]}, "cannot parse"),
    ({"http_req_duration": ["avg=200"]}, "=="),
    ({"http_req_duration": ["avg=>200"]}, "cannot parse"),
    ({"http_req_duration": ["avg<>200"]}, "cannot parse"),
    ({"http_req_duration": ["avg<200 sec"]}, "units"),
    ({"http_req_duration": ["avg<200ns"]}, "units"),
    ({"http_req_duration": ["avg<"]}, "cannot parse"),
    ({"http_req_duration": ["<200"]}, "cannot parse"),
    ({"http_req_duration": ["mean<200"]}, "cannot parse"),
    ({"http_req_duration": ["avg<nan"]}, "cannot parse"),
    ({"http_req_duration": ["avg<1e999"]}, "finite"),
    ({"http_req_duration": ["avg<200", "avg<200"]}, "twice"),
    ({"http_req_duration": [""]}, "cannot parse"),
    ({"http_req_duration": [500]}, "string"),
    ({"http_req_duration": [None]}, "expression string"),
    ({"http_req_duration": []}, "non-empty list"),
    ({"http_req_duration": 5}, "non-empty list"),
    ({"http_req_duration": ["rate<0.01"]}, "trend metric"),
    ({"http_req_duration": ["count==0"]}, "trend metric"),
    ({"http_req_failed": ["p(95)<1"]}, "rate metric"),
    ({"http_req_failed": ["count==0"]}, "rate metric"),
    ({"http_req_failed": ["rate<1.5"]}, "fraction"),
    ({"http_req_failed": ["rate<1s"]}, "unit"),
    ({"http_reqs": ["avg<1"]}, "counter metric"),
    ({"http_reqs": ["count<5ms"]}, "unit"),
    ({"custom": ["p(95)<1", "count==0"]}, "mix"),
    ({"": ["avg<1"]}, "non-empty"),
    ({"http_req_duration{}": ["avg<1"]}, "empty tag filter"),
    ({"http_req_duration{scenario}": ["avg<1"]}, "tag:value"),
    ({"http_req_duration{:x}": ["avg<1"]}, "tag:value"),
    ({"http_req_duration{scenario:}": ["avg<1"]}, "tag:value"),
    ({"http_req_duration{a:1,a:2}": ["avg<1"]}, "twice"),
    ({"http_req_duration{a:1}{b:2}": ["avg<1"]}, "braces"),
    ({"http_req_duration{a:1": ["avg<1"]}, "braces"),
    ({"http req duration": ["avg<1"]}, "braces"),
    ({"9metric": ["avg<1"]}, "metric name"),
    ({"http_req_duration": [{"abortOnFail": True}]}, "needs a 'threshold'"),
    ({"http_req_duration": [{"threshold": "avg<1", "abortOnFail": "yes"}]}, "true or false"),
    ({"http_req_duration": [{"threshold": "avg<1", "abortonfail": True}]}, "unknown key"),
    (
        {"http_req_duration": [{"threshold": "avg<1", "abortOnFail": True, "delayAbortEval": "10x"}]},
        "duration",
    ),
    (
        {"http_req_duration": [{"threshold": "avg<1", "abortOnFail": True, "delayAbortEval": "-1s"}]},
        "duration",
    ),
    ({"http_req_duration": [{"threshold": "avg<1", "delayAbortEval": "10s"}]}, "without abortOnFail"),
    (
        {"http_req_duration": [{"threshold": "avg<1", "abortOnFail": True, "abort_on_fail": False}]},
        "given twice",
    ),
    ({"http_req_duration{scenario:a,}": ["avg<1"]}, "tag:value"),
    ({"  ": ["avg<1"]}, "non-empty"),
    ({5: ["avg<1"]}, "non-empty string"),
    ({"http_req_duration": ["p(95)<<500"]}, "cannot parse"),
    ({"http_req_duration": ["p(95)≤500"]}, "cannot parse"),
    ({"http_req_duration": ["p(95)<500ms extra"]}, "cannot parse"),
    ({"http_req_duration": ["p(95)<500", "P(99)<1"]}, "cannot parse"),
    ({"http_req_failed": ["rate<-0.1"]}, "fraction"),
    ({"http_req_failed": ["rate < 1%"]}, "write 1% as 0.01"),
    ({"http_req_failed": [{"threshold": 0.01}]}, "string"),
    ({"http_req_failed": [("rate<0.01",)]}, "expression string"),
    (["p(95)<500"], "must be a dict"),
    ("p(95)<500", "must be a dict"),
]


@pytest.mark.parametrize(("spec", "words"), BAD, ids=[repr(b[0])[:60] for b in BAD])
def test_rejected_specs_name_problem_and_grammar(spec, words):
    with pytest.raises(ThresholdError) as excinfo:
        parse_thresholds(spec)
    message = str(excinfo.value)
    assert words in message
    assert GRAMMAR in message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), (3, 3.0), ("2", 2.0), ("1h", 3600.0)],
)
def test_durations(value, seconds):
    assert parse_duration_s(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "s", "1x", "1s2", "10 s", True, None, [], -1, float("inf")])
def test_bad_durations(value):
    with pytest.raises(ThresholdError):
        parse_duration_s(value)


# -- evaluation --------------------------------------------------------------------------------------


def phase(durations_ms: dict[tuple, list[float]], failed: dict[tuple, tuple[int, int]] | None = None):
    """A PhaseSamples with http_req_duration samples (ms), http_reqs and http_req_failed per tag set."""
    rec = Recorder()
    for tags, values in durations_ms.items():
        for v in values:
            rec.add_trend("http_req_duration", tagset(dict(tags)), int(v * MS))
            rec.add_counter("http_reqs", tagset(dict(tags)))
    for tags, (trues, total) in (failed or {}).items():
        for i in range(total):
            rec.add_rate("http_req_failed", tagset(dict(tags)), i < trues)
    return rec.samples({"duration_s": 2.0})


A = (("scenario", "a"), ("status_class", "2xx"))
B = (("scenario", "b"), ("status_class", "5xx"))


def test_every_threshold_is_evaluated_with_observed_limit_and_count():
    result = phase({A: [float(i) for i in range(1, 101)], B: [500.0] * 10}, {A: (0, 100), B: (10, 10)})
    ts = parse_thresholds(
        {
            "http_req_duration{scenario:a}": ["p(95)<50", "max<=100", "avg<60"],
            "http_req_duration": ["p(99)<1s"],
            "http_req_failed": ["rate<0.01"],
            "http_reqs": ["count==110", "rate>50"],
        }
    )
    verdicts = evaluate(ts, result)
    by_expr = {(v.metric_key, v.expression): v for v in verdicts}
    p95 = by_expr[("http_req_duration{scenario:a}", "p(95)<50")]
    assert (p95.ok, p95.count, p95.limit) == (False, 100, 50.0)
    assert p95.observed == pytest.approx(95.05)  # linear interpolation, as numpy and k6
    assert by_expr[("http_req_duration{scenario:a}", "max<=100")].ok
    assert by_expr[("http_req_duration{scenario:a}", "avg<60")].observed == pytest.approx(50.5)
    assert by_expr[("http_req_duration", "p(99)<1s")].ok
    failed = by_expr[("http_req_failed", "rate<0.01")]
    assert (failed.ok, failed.count) == (False, 110)
    assert failed.observed == pytest.approx(10 / 110)
    assert by_expr[("http_reqs", "count==110")].ok
    assert by_expr[("http_reqs", "rate>50")].observed == pytest.approx(55.0)  # 110 over 2 s
    message = breach_message(verdicts)
    assert message.startswith("2 thresholds breached")
    assert "p(95)<50 -> observed 95.05ms, limit 50ms, count 100" in message
    assert "rate<0.01 -> observed 0.09091, limit 0.01, count 110" in message


def test_empty_trend_sub_metric_fails_with_no_samples():
    result = phase({A: [1.0, 2.0]})
    (verdict,) = evaluate(parse_thresholds({"http_req_duration{scenario:zzz}": ["p(95)<500"]}), result)
    assert not verdict.ok
    assert verdict.observed is None
    assert verdict.count == 0
    assert "no samples" in verdict.reason


def test_filter_on_a_tag_nothing_records_fails_for_every_type():
    """The original harness's defect: http_req_failed{server_error:true} is never populated."""
    result = phase({A: [1.0]}, {A: (0, 1)})
    ts = parse_thresholds(
        {
            "http_req_failed{server_error:true}": ["rate<0.001"],
            "http_reqs{server_error:true}": ["count==0"],
            "http_req_duration{server_error:true}": ["p(95)<1"],
        }
    )
    verdicts = evaluate(ts, result)
    assert [v.ok for v in verdicts] == [False, False, False]
    assert all("server_error is never recorded" in v.reason for v in verdicts)


def test_rate_over_zero_matching_requests_is_zero_when_the_tag_is_recorded():
    result = phase({A: [1.0]}, {A: (0, 5)})
    verdicts = evaluate(
        parse_thresholds({"http_req_failed{status_class:5xx}": ["rate<0.01", "rate>0.5"]}), result
    )
    assert [(v.ok, v.observed, v.count) for v in verdicts] == [(True, 0.0, 0), (False, 0.0, 0)]


def test_rate_of_a_scenario_that_sent_nothing_fails():
    result = phase({A: [1.0]}, {A: (0, 5)})
    ts = parse_thresholds(
        {"http_req_failed": ["rate<0.01"], "http_req_failed{status_class:5xx}": ["rate<0.01"]}
    )
    verdicts = evaluate(ts.scoped("b"), result)  # scenario b recorded nothing
    assert [v.ok for v in verdicts] == [False, False]
    assert all(v.reason == "no samples" for v in verdicts)
    assert [v.ok for v in evaluate(ts.scoped("a"), result)] == [True, True]


def test_rate_and_counter_without_any_samples():
    result = phase({})
    verdicts = evaluate(
        parse_thresholds({"http_req_failed": ["rate<0.01"], "dropped_iterations": ["count==0"]}), result
    )
    assert [v.ok for v in verdicts] == [False, True]
    assert "no samples" in verdicts[0].reason


def test_unknown_metric_and_type_mismatch_at_evaluation():
    result = phase({A: [1.0]})
    verdicts = evaluate(
        parse_thresholds({"never_recorded": ["p(95)<1"], "typo_counter": ["count==0"]}), result
    )
    assert [v.ok for v in verdicts] == [False, False]  # an unknown name may be a typo: never vacuous
    assert all("never recorded" in v.reason for v in verdicts)
    rec = Recorder()
    rec.add_rate("custom", (), True)
    (mismatch,) = evaluate(parse_thresholds({"custom": ["p(95)<1"]}), rec.samples())
    assert not mismatch.ok and "rate metric" in mismatch.reason


def test_all_operators():
    result = phase({A: [10.0]})
    cases = {"avg<10": False, "avg<=10": True, "avg>10": False, "avg>=10": True, "avg==10": True}
    cases |= {"avg===10": True, "avg!=10": False}
    verdicts = evaluate(parse_thresholds({"http_req_duration": list(cases)}), result)
    assert {v.expression: v.ok for v in verdicts} == cases


def test_verdict_round_trips():
    (verdict,) = evaluate(parse_thresholds({"http_req_duration": ["p(95)<1"]}), phase({A: [3.0]}))
    assert type(verdict).from_dict(verdict.to_dict()) == verdict


def test_abort_check_waits_for_delay_and_ignores_missing_samples():
    ts = parse_thresholds(
        {
            "http_req_failed": [{"threshold": "rate<0.1", "abortOnFail": True, "delayAbortEval": "1s"}],
            "http_req_duration{scenario:zzz}": [{"threshold": "p(95)<1", "abortOnFail": True}],
            "http_req_duration": ["p(95)<0.001"],  # breached but not abortOnFail
        }
    )
    check = abort_check(ts)
    bad = phase({A: [5.0]}, {A: (5, 10)})
    assert check(bad, 0.5) is None  # before delayAbortEval
    reason = check(bad, 1.5)
    assert reason is not None and "http_req_failed: rate<0.1 -> observed 0.5" in reason
    assert "zzz" not in reason and "0.001" not in reason
    assert check(phase({A: [5.0]}, {A: (0, 10)}), 5.0) is None
    assert abort_check(parse_thresholds({"http_req_duration": ["p(95)<1"]})) is None


def test_metric_key_str():
    assert str(MetricKey("m", (("a", "1"), ("b", "2")))) == "m{a:1,b:2}"


# -- regressions found by the property tests (test_properties_thresholds.py) ------------------------


@pytest.mark.parametrize("expr", ["avg<1e306h", "p(95)<1.7e308s", "max<1e307m"])
def test_limit_that_overflows_with_its_unit_is_rejected(expr):
    """Was accepted with limit inf: the finiteness check ran before the unit was applied."""
    with pytest.raises(ThresholdError, match="finite") as excinfo:
        parse_thresholds({"http_req_duration": [expr]})
    assert repr(expr) in str(excinfo.value)


@pytest.mark.parametrize(
    "spec",
    [
        {None: ["avg<1"]},
        {"http_req_duration": [None]},
        {"http_req_duration": None},
        {"http_req_duration": [{"threshold": "avg<1", "abortOnFail": True, "delayAbortEval": None}]},
    ],
)
def test_none_is_named_as_the_offending_value(spec):
    """The message said only "invalid threshold:" for a None, without naming it."""
    with pytest.raises(ThresholdError) as excinfo:
        parse_thresholds(spec)
    assert str(excinfo.value).startswith("invalid threshold in None: ")


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_delay_too_large_for_a_float_is_a_threshold_error(value):
    """Was an OverflowError (a traceback at collection) from float(10**400)."""
    with pytest.raises(ThresholdError, match="finite"):
        parse_duration_s(value)


@pytest.mark.parametrize("text", ["1m-30s", "1m+30s", "1s-1s"])
def test_duration_signs_only_in_front(text):
    """'1m-30s' was 30 s (each part signed); Go's grammar has one sign, in front."""
    with pytest.raises(ThresholdError, match="duration like"):
        parse_duration_s(text)
    assert parse_duration_s("+1m30s") == 90.0


@pytest.mark.parametrize("expr", ["p(٩٥)<5", "avg<٥", "avg<５"])
def test_non_ascii_digits_are_not_numbers(expr):
    """Unicode digits (Arabic-Indic, full width) matched \\d and float() took them."""
    with pytest.raises(ThresholdError, match="cannot parse"):
        parse_thresholds({"http_req_duration": [expr]})


@pytest.mark.parametrize(
    ("text", "value"),
    [("m{a:' x '}", "x"), ("m{1:' 1}", "1"), ("m{1:' '1}", "1"), ('m{ "a" :"b" }', "b")],
)
def test_quoted_tag_values_read_back_from_the_key_text(text, value):
    """' x ' kept its spaces, so str(key) ('m{a: x }') read back as another key; and m{a:" "} gave
    'm{a: }', which does not parse (the capacity search parses verdict keys again)."""
    key = parse_metric_key(text)
    assert key.tags[0][1] == value
    assert parse_metric_key(str(key)) == key
    with pytest.raises(ThresholdError, match="tag:value"):
        parse_metric_key('m{a:" "}')
