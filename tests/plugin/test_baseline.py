"""Saved runs and the noise-aware regression gate: synthetic baselines first, then whole sessions.

A change counts as a regression only when it is over the rule's limit and significant on the raw
samples: a 2 % shift of noisy latencies passes ``p95:10%``, a 30 % shift fails it, and a large change
measured on a handful of requests is reported as noise.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import calibration  # tests/plugin/calibration.py
import numpy as np
import pytest

from pytest_certload.report import baseline as store
from pytest_certload.report.compare import (
    GRAMMAR,
    CompareRuleError,
    compare_phases,
    option_differences,
    parse_rules,
    setup_differences,
)
from pytest_certload.report.significance import proportion_change, rate_change
from pytest_certload.stats import PhaseSamples, tagset
from pytest_certload.stats.timeline import TIMELINE_KEY, Timeline
from pytest_certload.verdict import PhaseVerdict, ScenarioVerdict

pytest_plugins = ["pytester"]
NODE = "tests/test_api.py::test_list"


def phase(
    latencies_ms: np.ndarray,
    failures: int = 0,
    name: str = "list",
    seconds: float = 60.0,
    node: str = NODE,
    options: dict | None = None,
) -> PhaseVerdict:
    """A judged phase of one scenario with these latencies (ms), spread evenly over ``seconds``."""
    ok = tagset({"scenario": name, "status": "200", "status_class": "2xx"})
    bad = tagset({"scenario": name, "status": "500", "status_class": "5xx"})
    ns = (np.asarray(latencies_ms) * 1e6).astype(np.int64)
    n = ns.size
    trends = {("http_req_duration", ok): ns[failures:], ("http_req_service_time", ok): ns[failures:] // 2}
    rates = {("http_req_failed", ok): (0, n - failures)}
    counters = {("http_reqs", ok): float(n - failures), ("iterations", tagset({"scenario": name})): float(n)}
    if failures:
        trends[("http_req_duration", bad)] = ns[:failures]
        rates[("http_req_failed", bad)] = (failures, failures)
        counters[("http_reqs", bad)] = float(failures)
    marks = np.linspace(0, 1, int(seconds) + 1)[1:]
    timeline = {
        "version": 1,
        "at": [float(i + 1) for i in range(int(seconds))],
        "trends": [
            {"name": k[0], "tags": [list(t) for t in k[1]], "n": [round(m * v.size) for m in marks]}
            for k, v in trends.items()
        ],
        "counters": [
            {"name": "started_iterations", "tags": [["scenario", name]], "v": [round(m * n) for m in marks]}
        ],
        "rates": [],
        "generator": {"cpu_s": [0.1 * (i + 1) for i in range(int(seconds))]},
    }
    meta = {
        "wall_seconds": seconds,
        TIMELINE_KEY: timeline,
        "scenarios": {name: {"started_at": 0.0, "ended_at": seconds}},
    }
    samples = PhaseSamples(trends=trends, rates=rates, counters=counters, meta=meta)
    opts = options or {"executor": "constant-arrival-rate", "rate": n / seconds, "duration": f"{seconds:g}s"}
    info = ScenarioVerdict(name, opts, opts["executor"], n / seconds, None, scheduled_s=seconds)
    return PhaseVerdict(node, samples, seconds, [info])


def noisy(n: int, scale: float = 1.0, seed: int = 1) -> np.ndarray:
    """Log-normal latencies (median 20 ms, sigma 0.8: a long tail, as a loaded server's)."""
    return np.random.default_rng(seed).lognormal(np.log(20.0), 0.8, n) * scale


# --- the grammar ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "limit", "relative"),
    [
        ("p95:10%", "p95", 10.0, True),
        ("p99:+50ms", "p99", 50.0, False),
        ("p(99.9):+2s", "p99.9", 2000.0, False),
        ("med:+500us", "p50", 0.5, False),
        ("error_rate:+0.5pp", "error_rate", 0.005, False),
        ("error_rate:20%", "error_rate", 20.0, True),
        ("rate:-5%", "rate", 5.0, True),
        ("rate:-20/s", "rate", 20.0, False),
    ],
)
def test_rules_parse(text, metric, limit, relative):
    (rule,) = parse_rules([text])
    assert (rule.metric, rule.limit, rule.relative) == (metric, pytest.approx(limit), relative)


def test_rules_name_a_trend_and_combine():
    rules = parse_rules(["http_req_service_time.p99:20%,error_rate:+1pp", "rate:-5%"])
    assert [(r.trend, r.metric) for r in rules] == [
        ("http_req_service_time", "p99"),
        ("http_req_failed", "error_rate"),
        ("iterations", "rate"),
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("p95", "cannot read"),
        ("p95:-10%", "regresses upwards"),
        ("rate:+5%", "regresses downwards"),
        ("rate:-5ms", "regresses downwards"),
        ("error_rate:+5ms", "takes pp or %"),
        ("p95:5pp", "takes % or us/ms/s"),
        ("p100:5%", "between 0 and 100"),
        ("max:5%", "cannot read"),
    ],
)
def test_bad_rules_name_the_grammar(text, why):
    with pytest.raises(CompareRuleError) as caught:
        parse_rules([text])
    assert why in str(caught.value) and GRAMMAR in str(caught.value) and repr(text) in str(caught.value)


# --- the statistics ---------------------------------------------------------------------------------


def test_two_percent_on_noisy_data_does_not_fail_thirty_does():
    rules = parse_rules(["p95:10%"])
    base = phase(noisy(3000, seed=1))
    small = compare_phases([base], [phase(noisy(3000, 1.02, seed=2))], rules)
    large = compare_phases([base], [phase(noisy(3000, 1.30, seed=2))], rules)
    p95 = next(r for r in small if r.metric == "p95 http_req_duration")
    assert not p95.regression and not p95.exceeded
    slow = next(r for r in large if r.metric == "p95 http_req_duration")
    assert slow.regression and slow.relative == pytest.approx(0.3, abs=0.12)
    assert slow.interval.low > 0 and slow.rel_interval.low > 0.1
    assert slow.status == "REGRESSION (p95:10%)"
    text = slow.describe()
    assert "list p95 http_req_duration:" in text and "95 % CI" in text and "n 3000 vs 3000" in text


def test_a_large_change_on_few_samples_is_noise_not_a_regression():
    """Over the limit (+25 %) but measured on 40 requests a side: the interval straddles zero."""
    base = phase(noisy(40, seed=3), seconds=4)
    now = phase(noisy(40, 1.25, seed=3), seconds=4)
    (p95,) = [
        r for r in compare_phases([base], [now], parse_rules(["p95:10%"])) if r.metric.startswith("p95")
    ]
    assert p95.exceeded and not p95.significant and not p95.regression
    assert p95.status == "over the limit, not significant (noise)"


def test_the_same_run_compared_with_itself_has_no_change():
    base = phase(noisy(2000))
    rows = compare_phases(
        [base], [base], parse_rules(["p95:1%", "p99:+0.1ms", "error_rate:+0.01pp", "rate:-1%"])
    )
    assert rows and not any(r.regression or r.exceeded for r in rows)
    assert {r.status for r in rows} == {"no significant change"}


def test_error_rate_and_rate_rules():
    base = phase(noisy(5000), failures=10)  # 0.2 % errors
    worse = phase(noisy(5000, seed=5), failures=150)  # 3 %
    rows = compare_phases([base], [worse], parse_rules(["error_rate:+0.5pp"]))
    errors = next(r for r in rows if r.metric == "error_rate")
    assert errors.regression and errors.change == pytest.approx(0.028)
    slower = phase(noisy(4000, seed=6))  # 4000 instead of 5000 iterations in 60 s: -20 %
    rate = next(r for r in compare_phases([base], [slower], parse_rules(["rate:-5%"])) if r.metric == "rate")
    assert rate.regression and rate.relative == pytest.approx(-0.2, abs=0.01) and rate.worse_sign == -1


def test_newcombe_interval_and_rate_fallbacks():
    interval = proportion_change((0, 100), (0, 100))
    assert interval.low < 0 < interval.high  # no errors either side: no significant change
    assert proportion_change((0, 1000), (30, 1000)).low > 0
    assert proportion_change((1, 0), (1, 10)) is None
    poisson = rate_change(None, None, (1000, 10.0), (1000, 10.0))  # fewer than 5 seconds: totals
    assert poisson.low < 0 < poisson.high
    welch = rate_change(np.full(10, 100.0) + np.arange(10) % 2, np.full(10, 90.0), (0, 1), (0, 1))
    assert welch.high < 0


def test_scenarios_are_matched_by_test_phase_and_name():
    base = [phase(noisy(500), name="a"), phase(noisy(500), name="a", node="t.py::other")]
    now = [
        phase(noisy(500), name="a"),
        phase(noisy(500), name="new"),
        phase(noisy(500), name="a", node="t.py::x"),
    ]
    rows = compare_phases(base, now)
    by = {(r.test, r.scenario): r.status for r in rows if r.metric == "p95 http_req_duration"}
    assert by[(NODE, "a")] == "no significant change"
    assert by[(NODE, "new")] == "new (no baseline)"  # the test's second phase had no namesake
    assert by[("t.py::x", "a")] == "new (no baseline)"


def test_different_setups_are_named():
    stand_in = {"target": "certctl stand-in", "provider": "native", "postgres_profile": "fast"}
    certctl = {"target": "certctl 2.1.7", "provider": "docker", "postgres_profile": "durable"}
    machine = {"cpu_model": "A", "cpu_count_usable": 2, "memory_bytes": 8 << 30, "python": "3.11.7"}
    other = {**machine, "cpu_model": "B", "cpu_count_usable": 8, "memory_bytes": 32 << 30}
    found = setup_differences({"stack": stand_in, "machine": machine}, {"stack": certctl, "machine": other})
    text = "\n".join(found)
    for words in (
        "target: baseline 'certctl stand-in', now 'certctl 2.1.7'",
        "PostgreSQL profile: baseline 'fast'",
        "CPU: baseline 'A'",
        "usable CPUs",
        "memory: baseline 8.0 GiB, now 32.0 GiB",
    ):
        assert words in text
    assert (
        setup_differences({"stack": stand_in, "machine": machine}, {"stack": stand_in, "machine": machine})
        == []
    )
    a = phase(noisy(100), options={"executor": "constant-arrival-rate", "rate": 50, "duration": "60s"})
    b = phase(noisy(100), options={"executor": "constant-arrival-rate", "rate": 80, "duration": "60s"})
    assert "list: options differ" in option_differences([a], [b])[0]


# --- storage ----------------------------------------------------------------------------------------


def test_a_saved_run_reads_back_exactly(tmp_path: Path):
    original = phase(noisy(1000), failures=7)
    info = {"created": "2026-05-16T12:00:00", "commit": {"short": "abc12345", "dirty": True}}
    path = store.save_run(
        store.SavedRun("x", info, {"metrics": {}}, [original]), store.run_path(tmp_path, "x")
    )
    loaded = store.load_run(path)
    assert (
        loaded.name == "x" and loaded.info == info and loaded.label.startswith("'x' (saved 2026-05-16 12:00")
    )
    (again,) = loaded.phases
    assert again.samples.trends.keys() == original.samples.trends.keys()
    for key, values in original.samples.trends.items():
        assert np.array_equal(again.samples.trends[key], values)
    assert (
        again.samples.rates == original.samples.rates and again.samples.counters == original.samples.counters
    )
    assert Timeline.of(again.samples) is not None
    assert path.stat().st_size < 0.6 * sum(v.nbytes for v in original.samples.trends.values())  # compressed


def test_runs_resolve_by_newest_name_prefix_and_path(tmp_path: Path):
    with pytest.raises(store.RunNotFound, match="save one first"):
        store.resolve_run(None, tmp_path)
    run = store.SavedRun("a", {}, {}, [phase(noisy(10))])
    first = store.save_run(run, store.run_path(tmp_path, "0001_abc_20260101T000000"))
    second = store.save_run(run, store.run_path(tmp_path, "release-1.2"))
    assert store.resolve_run(None, tmp_path) == second
    assert store.resolve_run("0001", tmp_path) == first
    assert store.resolve_run("release-1.2", tmp_path) == second
    assert store.resolve_run(str(first), tmp_path) == first
    with pytest.raises(store.RunNotFound, match=r"release-1\.2"):
        store.resolve_run("nope", tmp_path)
    assert store.autosave_name(tmp_path, {"short": "deadbeef", "dirty": False}).startswith("0002_deadbeef_")
    with pytest.raises(ValueError, match="run name"):
        store.check_name("../escape")


# --- whole sessions ---------------------------------------------------------------------------------

LOAD = textwrap.dedent(
    """
    import pytest

    @pytest.mark.certload(executor="constant-arrival-rate", rate=200, duration="2s", pre_allocated_vus=20)
    def test_list(certload, server):
        async def iteration(ctx):
            await ctx.request("GET", server + "/latency")
        certload.run(iteration, name="list")
    """
)


SERVER_CONFTEST = calibration.SERVER_CONFTEST


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(SERVER_CONFTEST)
    pytester.makeini(calibration.RELAXED_HEALTH_INI)
    pytester.makepyfile(test_load=LOAD)
    return pytester


def _scaled_copy(path: Path, factor: float, name: str) -> Path:
    """The saved run with every latency multiplied by ``factor`` (a synthetic faster/slower release)."""
    run = store.load_run(path)
    for p in run.phases:
        p.samples.trends = {k: (v * factor).astype(np.int64) for k, v in p.samples.trends.items()}
    return store.save_run(
        store.SavedRun(name, run.info, run.summary, run.phases), path.with_name(f"{name}{store.SUFFIX}")
    )


def test_saved_run_passes_against_itself_and_fails_against_a_faster_baseline(project: pytest.Pytester):
    saved = project.runpytest_subprocess("--certload-save=base")
    saved.assert_outcomes(passed=1)
    path = project.path / ".certload" / f"base{store.SUFFIX}"
    assert path.exists()
    saved.stdout.fnmatch_lines([f"certload: run saved to {path}"])

    # the same samples as baseline: re-judge the saved run's phases against themselves via the CLI
    from pytest_certload.cli import main

    assert (
        main(["--storage", str(project.path / ".certload"), "compare", "base", "base", "--fail", "p95:10%"])
        == 0
    )
    _scaled_copy(path, 1.5, "slower")
    assert (
        main(["--storage", str(project.path / ".certload"), "compare", "base", "slower", "--fail", "p95:10%"])
        == 1
    )

    # a live run gated against a baseline 40 % faster than this server: the test fails, with numbers
    _scaled_copy(path, 0.6, "faster")
    gated = project.runpytest_subprocess("--certload-compare=faster", "--certload-compare-fail=p95:10%")
    gated.assert_outcomes(failed=1)
    gated.stdout.fnmatch_lines(
        [
            "*certload regression against 'faster' (saved *",
            "*list p95 http_req_duration: * ms -> * ms, +* ms (+*%) "
            "(95 % CI +* ms .. +* ms = +* .. +* %, n * vs *): over p95:10% and significant",
            "*certload compare: now vs 'faster'*",
            "*1 regression(s) against p95:10%*",
        ]
    )
    # and live against the run it saved itself, with a gate wider than this machine's noise, it passes
    again = project.runpytest_subprocess("--certload-compare=base", "--certload-compare-fail=p95:200%")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*no regression against p95:200%*"])


def test_a_bad_rule_is_a_usage_error_naming_the_grammar(project: pytest.Pytester):
    result = project.runpytest_subprocess("--certload-compare-fail=p95:fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--certload-compare-fail: cannot read 'p95:fast'*", "*RULE   = ?TREND.?STAT:CHANGE*"]
    )


def test_a_named_baseline_that_is_not_saved_is_a_usage_error(project: pytest.Pytester):
    result = project.runpytest_subprocess("--certload-compare=v1.2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--certload-compare: 'v1.2': no such file or saved run*"])


def test_comparing_with_nothing_saved_warns_and_runs(project: pytest.Pytester):
    result = project.runpytest_subprocess("--certload-compare", "--certload-autosave")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*certload: nothing to compare with: no saved run in*", "*run saved to *0001_*"]
    )


def test_a_baseline_from_another_stack_warns_loudly(project: pytest.Pytester):
    project.runpytest_subprocess("--certload-save=base").assert_outcomes(passed=1)
    path = project.path / ".certload" / f"base{store.SUFFIX}"
    run = store.load_run(path)
    run.info["stack"] = {"target": "certctl 2.1.7", "postgres_profile": "durable"}
    run.info["machine"] = {**run.info["machine"], "cpu_model": "another CPU"}
    store.save_run(run, path)
    result = project.runpytest_subprocess("--certload-compare=base")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*!!! DIFFERENT SETUPS: these numbers may not be comparable !!!*",
            "*target: baseline 'certctl 2.1.7', now none*",
            "*PostgreSQL profile: baseline 'durable', now none*",
            "*CPU: baseline 'another CPU'*",
        ]
    )
