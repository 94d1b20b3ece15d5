"""The k6-shaped summary, its atomic writer, the terminal table, and the xdist serialisation path."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from pytest_certload.report.machine import describe_machine
from pytest_certload.report.summary import build_summary, connector_tier
from pytest_certload.report.table import render_table, summary_lines
from pytest_certload.report.writer import write_json_atomic
from pytest_certload.results import RunManyResult, ScenarioResult
from pytest_certload.stats import PhaseSamples, Recorder, tagset
from pytest_certload.thresholds import evaluate, parse_thresholds
from pytest_certload.verdict import PhaseVerdict, ScenarioVerdict

MS = 1_000_000


def make_record(
    scenario: str,
    durations_ms: list[float],
    failures: int = 0,
    tags: dict | None = None,
    thresholds: dict | None = None,
    duration_s: float = 2.0,
) -> PhaseVerdict:
    rec = Recorder()
    base = {"scenario": scenario, **(tags or {})}
    for i, value in enumerate(durations_ms):
        status = "500" if i < failures else "200"
        request_tags = tagset({**base, "status": status, "status_class": status[0] + "xx"})
        rec.add_trend("http_req_duration", request_tags, int(value * MS))
        rec.add_rate("http_req_failed", request_tags, i < failures)
        rec.add_counter("http_reqs", request_tags)
    rec.add_counter("iterations", tagset(base), len(durations_ms))
    result = rec.samples({"wall_seconds": duration_s})
    verdicts = evaluate(parse_thresholds(thresholds or {}).scoped(scenario), result, duration_s)
    info = ScenarioVerdict(
        scenario, {"executor": "constant-arrival-rate", "rate": 5}, "constant-arrival-rate", 5.0, None
    )
    info.verdicts = verdicts
    return PhaseVerdict(
        nodeid=f"tests/test_x.py::test_{scenario}",
        samples=result,
        duration_s=duration_s,
        scenarios=[info],
        health={"lag_p99_ms": 1.0, "cpu_fraction": 0.1, "saturated": False, "reason": ""},
    )


def summary_of(*records: PhaseVerdict, stack: dict | None = None) -> dict:
    return build_summary(list(records), run_duration_s=3.5, machine={"cpu_count": 2}, stack=stack)


def test_k6_shape_metrics_and_thresholds():
    a = make_record(
        "list", [float(v) for v in range(1, 11)], failures=1, thresholds={"http_req_duration": ["p(95)<5"]}
    )
    b = make_record("nginx", [2.0] * 4, tags={"target_type": "nginx"})
    doc = summary_of(a, b)
    assert list(doc)[:4] == ["root_group", "options", "state", "metrics"]
    assert doc["root_group"] == {
        "name": "",
        "path": "",
        "id": "d41d8cd98f00b204e9800998ecf8427e",
        "groups": [],
        "checks": [],
    }
    assert doc["state"]["testRunDurationMs"] == 3500.0
    duration = doc["metrics"]["http_req_duration"]
    assert (duration["type"], duration["contains"]) == ("trend", "time")
    assert list(duration["values"]) == ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "p(99.9)"]
    pooled = np.array([*range(1, 11), 2, 2, 2, 2], dtype=float)
    assert duration["values"]["p(95)"] == pytest.approx(np.percentile(pooled, 95))
    assert duration["values"]["max"] == 10.0
    failed = doc["metrics"]["http_req_failed"]
    assert failed["type"] == "rate"
    assert failed["values"] == {"rate": pytest.approx(1 / 14), "passes": 1, "fails": 13}
    reqs = doc["metrics"]["http_reqs"]
    assert reqs["values"]["count"] == 14
    assert reqs["values"]["rate"] == pytest.approx(14 / 4.0)  # two 2 s phases
    sub = doc["metrics"]["http_req_duration{scenario:list}"]
    assert sub["values"]["p(95)"] == pytest.approx(np.percentile(np.arange(1, 11), 95))
    verdict = sub["thresholds"]["p(95)<5"]
    assert verdict == {
        "ok": False,
        "observed": pytest.approx(9.55),
        "limit": 5.0,
        "count": 10,
        "scenario": "list",
        "test": "tests/test_x.py::test_list",
    }
    assert doc["metrics"]["http_reqs{scenario:nginx}"]["values"]["count"] == 4
    assert doc["metrics"]["http_req_duration{target_type:nginx}"]["values"]["med"] == 2.0
    assert doc["options"]["thresholds"] == {"http_req_duration{scenario:list}": ["p(95)<5"]}
    json.dumps(doc, allow_nan=False)  # JSON-safe as built


def test_thresholded_key_without_samples_is_still_listed():
    record = make_record("a", [1.0], thresholds={"http_req_duration{step:never}": ["p(95)<1"]})
    doc = summary_of(record)
    entry = doc["metrics"]["http_req_duration{scenario:a,step:never}"]
    assert entry["values"]["p(95)"] is None and entry["count"] == 0
    assert entry["thresholds"]["p(95)<1"]["ok"] is False
    assert "never recorded" in entry["thresholds"]["p(95)<1"]["reason"]


def test_connector_tier_numbers_and_nulls():
    doc = summary_of(
        make_record("nginx_handshake", [1.0, 2.0, 3.0, 4.0], failures=1, tags={"target_type": "nginx"}),
        make_record("list", [50.0]),
    )
    tier = doc["connector_tier"]
    assert set(tier) == {"nginx", "apache", "haproxy", "f5"}
    assert tier["apache"] is None and tier["haproxy"] is None and tier["f5"] is None
    nginx = tier["nginx"]
    assert nginx["p50"] == 2.5 and nginx["max"] == 4.0 and nginx["avg"] == 2.5
    assert nginx["p95"] == pytest.approx(np.percentile([1, 2, 3, 4], 95))
    assert nginx["error_rate"] == 0.25 and nginx["iterations"] == 4 and nginx["requests"] == 4
    assert connector_tier(PhaseSamples()) == dict.fromkeys(("nginx", "apache", "haproxy", "f5"))


def test_scenarios_section_and_name_clash():
    first = make_record("dup", [1.0, 2.0], thresholds={"http_req_failed": ["rate==0"]})
    second = make_record("dup", [3.0], failures=1, thresholds={"http_req_failed": ["rate==0"]})
    second.nodeid = "tests/test_y.py::test_dup"
    doc = summary_of(first, second)
    assert set(doc["scenarios"]) == {"dup", "dup (tests/test_y.py::test_dup)"}
    entry = doc["scenarios"]["dup"]
    assert entry["requests"] == 2 and entry["iterations"] == 2
    assert entry["achieved_rate_per_s"] == pytest.approx(1.0) and entry["target_rate_per_s"] == 5.0
    assert entry["http_req_duration"]["med"] == 1.5 and entry["error_rate"] == 0.0 and entry["ok"]
    # the same threshold in two tests: the failing verdict is the one the summary keeps
    clash = doc["metrics"]["http_req_failed{scenario:dup}"]["thresholds"]["rate==0"]
    assert clash["ok"] is False and clash["test"] == "tests/test_y.py::test_dup"


def test_stack_description_and_header():
    stack = {"provider": "native", "target": "certctl stand-in", "server": "stand-in"}
    doc = summary_of(make_record("a", [1.0]), stack=stack)
    assert doc["stack"]["target"] == "certctl stand-in"
    assert "target: certctl stand-in" in doc["stack"]["description"]
    lines = summary_lines(doc)
    assert lines[0] == "target: certctl stand-in"
    assert summary_of(make_record("a", [1.0]))["stack"]["target"] is None


def test_table_lists_scenarios_and_breaches():
    doc = summary_of(
        make_record("good", [1.0, 2.0], thresholds={"http_req_duration": ["p(95)<1s"]}),
        make_record("bad", [100.0], thresholds={"http_req_duration": ["p(95)<10", "max<1s"]}),
    )
    text = "\n".join(summary_lines(doc))
    assert "scenario" in text and "p95 ms" in text and "iter/s (target)" in text
    good = next(line for line in text.splitlines() if line.startswith("good"))
    assert "ok 1/1" in good and "1.0/5" in good
    bad = next(line for line in text.splitlines() if line.startswith("bad "))
    assert "FAIL 1/2" in bad and "100.0" in bad
    assert "bad: http_req_duration{scenario:bad}: p(95)<10 -> observed 100ms, limit 10ms, count 1" in text
    assert "max<1s ->" not in text


def test_render_table_aligns_columns():
    lines = render_table(["a", "bb"], [["x", "1"], ["yyy", "22"]])
    assert lines == ["a    bb", "---  --", "x     1", "yyy  22"]


def test_record_survives_json_round_trip_like_xdist_does():
    record = make_record("a", [1.0, 2.0, 3.0], failures=1, thresholds={"http_req_failed": ["rate<0.5"]})
    record.stack = {"target": "certctl stand-in"}
    back = PhaseVerdict.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back.id == record.id and back.nodeid == record.nodeid and back.stack == record.stack
    assert back.scenarios[0].verdicts == record.scenarios[0].verdicts
    assert summary_of(back)["metrics"] == summary_of(record)["metrics"]
    assert back.samples.select_rate("http_req_failed") == (1, 3)


def test_scenario_result_and_phase_results():
    record = make_record("a", [1.0, 50.0], thresholds={"http_req_duration": ["max<10", "min<10"]})
    result = ScenarioResult(record, "a")
    assert not result.ok
    with pytest.raises(AssertionError) as excinfo:
        result.assert_thresholds()
    assert "1 thresholds breached in scenario a" in str(excinfo.value)
    assert "max<10 -> observed 50ms, limit 10ms, count 2" in str(excinfo.value)
    phase = RunManyResult(record)
    assert list(phase) == ["a"] and phase["a"].verdicts == result.verdicts and not phase.ok
    ok = make_record("b", [1.0], thresholds={"http_req_duration": ["max<10"]})
    ScenarioResult(ok, "b").assert_thresholds()


def test_atomic_write(tmp_path):
    target = tmp_path / "deep" / "summary.json"
    write_json_atomic(target, {"a": 1, "nan": float("nan"), "nested": [float("inf")]})
    assert json.loads(target.read_text()) == {"a": 1, "nan": None, "nested": [None]}
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]  # no temporary file left


def test_machine_description_is_hostname_free():
    machine = describe_machine()
    assert machine["cpu_count"] >= 1 and machine["memory_bytes"] > 0
    assert socket.gethostname() not in json.dumps(machine)


def test_connector_tier_iterations_when_target_type_is_a_request_tag():
    rec = Recorder()
    for scenario, target, n in (("nginx_handshake", "nginx", 3), ("f5_handshake", "f5", 2)):
        tags = tagset({"scenario": scenario, "target_type": target, "status": "200", "status_class": "2xx"})
        for _ in range(n):
            rec.add_trend("http_req_duration", tags, 5 * MS)
            rec.add_rate("http_req_failed", tags, False)
            rec.add_counter("http_reqs", tags)
        rec.add_counter("iterations", tagset({"scenario": scenario}), n)  # no target_type on iterations
    tier = connector_tier(rec.samples())
    assert (tier["nginx"]["iterations"], tier["f5"]["iterations"]) == (3, 2)
    assert tier["apache"] is None


def test_achieved_rate_uses_at_least_the_schedule():
    record = make_record("short", [1.0] * 5, duration_s=2.4)  # last arrival at 2.4 s of a 3 s schedule
    record.scenarios[0].scheduled_s = 3.0
    entry = summary_of(record)["scenarios"]["short"]
    assert entry["achieved_rate_per_s"] == pytest.approx(5 / 3.0)
