"""The pytest glue end to end: each test runs a small pytest session in a subprocess (pytester).

The sessions start the calibration server (tests/plugin/calibration.py) on 127.0.0.1 in its own
process (``/fast`` -> 200, ``/status/500``) and run phases of at most ~1 s, so the whole module
stays within CI's budget on 2 cores.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import calibration  # tests/plugin/calibration.py
import pytest

pytest_plugins = ["pytester"]

CALIBRATION_DIR = Path(__file__).resolve().parent  # calibration.py: an HTTP(S) server in its own process

# The server runs in a subprocess: in-process, its threads would take the GIL from the generator's
# event loop and trip the saturation check.
SERVER_CONFTEST = calibration.SERVER_CONFTEST

# 10 iterations/s for 1 s: ~10 requests per phase.
CAR = 'executor="constant-arrival-rate", rate=10, time_unit="1s", duration="1s", pre_allocated_vus=2'


# These tests exercise the glue, not the saturation check (tested on its own below): on a CI machine
# busy with other jobs, a 1 s phase may see a few late timer ticks, so the bounds are relaxed here.
RELAXED_HEALTH = calibration.RELAXED_HEALTH_INI


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(SERVER_CONFTEST)
    pytester.makeini(RELAXED_HEALTH)
    return pytester


def summary(pytester: pytest.Pytester, name: str = "summary.json") -> dict:
    return json.loads((pytester.path / name).read_text())


def test_failing_threshold_fails_with_observed_values_and_summary_is_written(project):
    project.makepyfile(
        test_load=f"""
        import pytest

        @pytest.mark.certload({CAR}, thresholds={{
            "http_req_failed": ["rate<0.01"],
            "http_req_duration": ["p(95)<10s", "max<0.001ms"],
        }})
        def test_errors(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/status/500")
            certload.run(iteration).assert_thresholds()
        """
    )
    result = project.runpytest_subprocess("--certload-summary=summary.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*2 thresholds breached in scenario test_errors:*",
            "*http_req_failed{scenario:test_errors}: rate<0.01 -> observed 1, limit 0.01, count *",
            "*http_req_duration{scenario:test_errors}: max<0.001ms -> observed *ms, limit 0.001ms, count *",
        ]
    )
    assert "p(95)<10s" not in result.stdout.str().split("breached")[1].split("\n\n")[0]
    doc = summary(project)
    assert {"root_group", "options", "state", "metrics", "connector_tier", "machine", "stack"} <= set(doc)
    failed = doc["metrics"]["http_req_failed{scenario:test_errors}"]
    assert failed["type"] == "rate"
    assert failed["values"]["rate"] == 1.0
    assert failed["thresholds"]["rate<0.01"]["ok"] is False
    assert failed["thresholds"]["rate<0.01"]["count"] == failed["values"]["passes"] >= 5
    assert doc["metrics"]["http_req_duration{scenario:test_errors}"]["thresholds"]["p(95)<10s"]["ok"] is True
    assert doc["state"]["exitStatus"] == 1
    # the terminal table carries the verdicts too
    result.stdout.fnmatch_lines(["*target: no certload_stack*", "*test_errors*FAIL 2/3*"])


def test_passing_scenario_and_table(project):
    project.makepyfile(
        test_load=f"""
        import pytest

        @pytest.mark.api
        @pytest.mark.certload({CAR}, thresholds={{"http_req_failed": ["rate==0"], "http_reqs": ["count>=5"]}})
        def test_ok(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/fast")
            result = certload.run(iteration)
            assert result.ok, result.breach_message()
            assert result.samples.select_counter("http_reqs", {{"scenario": "test_ok"}}) >= 5
        """
    )
    result = project.runpytest_subprocess("--certload-summary=out/s.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*certload*", "*test_ok*/10*ok 2/2*", "summary written to out/s.json"])
    doc = summary(project, "out/s.json")
    entry = doc["scenarios"]["test_ok"]
    assert entry["ok"] is True and entry["target_rate_per_s"] == 10.0
    assert 5 <= entry["iterations"] <= 11
    assert doc["metrics"]["http_reqs"]["values"]["count"] == entry["requests"]


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ('thresholds={"http_req_duration": ["p95<500"]}', ["p(95)", "accepted grammar", "AGG"]),
        ('thresholds={"http_req_failed": ["p(95)<500"]}', ["does not apply to http_req_failed"]),
        ('rate="fast"', ["rate", "not a number"]),
        ('duration="10x"', ["duration", "'10x' is not a duration"]),
        ("ratee=5", ["unknown certload option(s) ratee"]),
        ('tags={"scenario": "x"}', ["may not set 'scenario'"]),
    ],
)
def test_invalid_marker_is_a_collection_error_naming_the_test(project, marker, words):
    base = CAR if "rate=" not in marker and "duration=" not in marker else ""
    if not base:
        base = 'executor="constant-arrival-rate", time_unit="1s", pre_allocated_vus=2'
        base += ", rate=1" if "rate=" not in marker else ', duration="1s"'
    project.makepyfile(
        test_bad=f"""
        import pytest

        @pytest.mark.certload({base}, {marker})
        def test_broken(certload):
            open("ran.txt", "w").write("it ran")
        """
    )
    result = project.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str()
    assert "ERROR collecting" in output
    assert "test_bad.py::test_broken: invalid @pytest.mark.certload" in output
    for word in words:
        assert word in output
    assert "Traceback" not in output
    assert not (project.path / "ran.txt").exists()


def test_duration_override_applies_to_every_phase(project):
    project.makepyfile(
        test_load="""
        import pytest, time

        @pytest.mark.certload(executor="constant-arrival-rate", rate=10, time_unit="1s", duration="5m",
                              pre_allocated_vus=2)
        def test_long(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/fast")
            started = time.monotonic()
            certload.run(iteration)
            assert time.monotonic() - started < 30
        """
    )
    result = project.runpytest_subprocess("--certload-duration=1s", "--certload-summary=s.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["target: * (every phase's duration set to 1s)"])
    doc = summary(project, "s.json")
    assert doc["options"]["durationOverrideSeconds"] == 1.0
    entry = doc["scenarios"]["test_long"]
    assert entry["options"]["duration"] == "1s"
    assert 5 <= entry["iterations"] <= 11
    bad = project.runpytest_subprocess("--certload-duration=soon")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--certload-duration*'soon' is not a duration*"])


def test_list_prints_scenarios_without_running(project):
    project.makepyfile(
        test_load=f"""
        import pytest

        @pytest.mark.connector
        @pytest.mark.certload({CAR}, thresholds={{"http_req_duration": ["p(95)<1s"]}}, fleets=["agents_5k"])
        def test_listed(certload):
            open("ran.txt", "w").write("it ran")

        @pytest.mark.parametrize("target", [
            pytest.param("nginx", marks=pytest.mark.certload(executor="constant-vus", vus=3, duration="2s")),
            pytest.param("f5", marks=pytest.mark.certload(
                executor="ramping-arrival-rate", pre_allocated_vus=1,
                stages=[{{"target": 5, "duration": "1s"}}, {{"target": 20, "duration": "1s"}}])),
        ])
        def test_param(certload, target):
            open("ran.txt", "w").write("it ran")

        def test_plain():
            open("ran.txt", "w").write("it ran")
        """
    )
    result = project.runpytest_subprocess("--certload-list", "--certload-duration=4s")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "certload scenarios: 3",
            "test*markers*executor*rate*duration*thresholds*fleets",
            "*test_load.py::test_listed*certload,connector*constant-arrival-rate*10 / 1s*4s*"
            "http_req_duration: p(95)<1s*agents_5k",
            "*test_param?nginx?*constant-vus*3 vus*4s*",
            "*test_param?f5?*ramping-arrival-rate*5 -> 20 / 1s*4s*",
        ]
    )
    assert "test_plain" not in result.stdout.str()
    assert not (project.path / "ran.txt").exists()


def test_param_ids_name_scenarios(project):
    project.makepyfile(
        test_load="""
        import pytest

        MARK = pytest.mark.certload(executor="constant-vus", vus=1, duration="0.5s",
                                    thresholds={"http_req_failed": ["rate==0"]})

        @pytest.mark.parametrize("path", [
            pytest.param("/fast", id="healthy", marks=MARK),
            pytest.param("/status/500", id="broken", marks=MARK),
        ])
        def test_p(certload, server, path):
            async def iteration(ctx):
                await ctx.request("GET", server + path)
                await ctx.sleep(0.05)
            certload.run(iteration).assert_thresholds()
        """
    )
    result = project.runpytest_subprocess("--certload-summary=s.json")
    result.assert_outcomes(passed=1, failed=1)
    doc = summary(project, "s.json")
    assert set(doc["scenarios"]) == {"healthy", "broken"}
    assert doc["scenarios"]["healthy"]["ok"] and not doc["scenarios"]["broken"]["ok"]
    result.stdout.fnmatch_lines(["*http_req_failed{scenario:broken}: rate==0 -> observed 1*"])


def test_summary_written_when_interrupted(project):
    project.makepyfile(
        test_load=f"""
        import pytest

        @pytest.mark.certload({CAR})
        def test_first(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/fast")
            certload.run(iteration)
            raise KeyboardInterrupt

        def test_never():
            open("ran.txt", "w").write("it ran")
        """
    )
    result = project.runpytest_subprocess("--certload-summary=s.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc = summary(project, "s.json")
    assert doc["state"]["interrupted"] is True
    assert doc["scenarios"]["test_first"]["requests"] >= 5
    assert not (project.path / "ran.txt").exists()


def test_generator_saturation_is_an_error_not_a_failure(project):
    project.makepyfile(
        test_load="""
        import time
        import pytest

        @pytest.mark.certload(executor="constant-arrival-rate", rate=20, time_unit="1s", duration="1s",
                              pre_allocated_vus=2)
        def test_saturated(certload, server):
            async def iteration(ctx):
                time.sleep(0.03)  # blocks the event loop: the generator is the bottleneck
                await ctx.request("GET", server + "/fast")
            certload.run(iteration)
        """
    )
    result = project.runpytest_subprocess(
        "--certload-summary=s.json",
        "--junitxml=junit.xml",
        "-o",
        "certload_max_lag_p99_ms=10",
        "-o",
        "certload_max_cpu_fraction=0.85",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at call of test_saturated*",
            "GeneratorSaturated: the load generator, not the server, was the bottleneck (event-loop lag*",
        ]
    )
    doc = summary(project, "s.json")
    assert doc["scenarios"]["test_saturated"]["saturated"] is True
    assert doc["generator_health"][0]["saturated"] is True
    assert "lag" in doc["generator_health"][0]["reason"]
    # JUnit XML agrees with the terminal: an error (with the reason), not a failure
    suite = ElementTree.parse(project.path / "junit.xml").getroot().find("testsuite")
    assert (suite.get("errors"), suite.get("failures")) == ("1", "0")
    (error,) = suite.iter("error")
    assert error.get("message", "").startswith("GeneratorSaturated: the load generator")


def test_run_many_per_scenario_and_phase_thresholds_and_connector_tier(project):
    project.makepyfile(
        test_tier="""
        import pytest

        CONNECTOR = dict(executor="constant-arrival-rate", rate=10, time_unit="1s", pre_allocated_vus=2)

        @pytest.mark.certload(duration="1s", thresholds={"http_req_failed": ["rate<0.01"]})
        def test_tier(certload, server):
            def path(p):
                async def iteration(ctx):
                    await ctx.request("GET", server + p)
                return iteration
            results = certload.run_many({
                "nginx_handshake": (path("/fast"), {**CONNECTOR, "tags": {"target_type": "nginx"},
                                    "thresholds": {"http_req_duration": ["p(95)<1s"]}}),
                "f5_handshake": (path("/status/500"), {**CONNECTOR, "tags": {"target_type": "f5"},
                                 "thresholds": {"http_req_failed": ["rate<0.5"]}}),
            })
            assert results["nginx_handshake"].ok
            assert not results["f5_handshake"].ok
            results.assert_thresholds()
        """
    )
    result = project.runpytest_subprocess("--certload-summary=s.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*2 thresholds breached in this phase:*",
            "*http_req_failed{scenario:f5_handshake}: rate<0.5 -> observed 1*",
            "*http_req_failed: rate<0.01 -> observed 0.5*",
        ]
    )
    doc = summary(project, "s.json")
    tier = doc["connector_tier"]
    assert tier["apache"] is None and tier["haproxy"] is None
    assert tier["nginx"]["error_rate"] == 0.0 and tier["f5"]["error_rate"] == 1.0
    assert tier["nginx"]["p95"] > 0 and tier["nginx"]["iterations"] >= 5
    assert doc["metrics"]["http_req_failed"]["thresholds"]["rate<0.01"]["ok"] is False


def test_xdist_workers_send_results_to_the_controller(project):
    project.makepyfile(
        test_load=f"""
        import pytest

        MARK = pytest.mark.certload({CAR}, thresholds={{"http_reqs": ["count>0"]}})

        @pytest.mark.parametrize("n", [pytest.param(i, id=f"s{{i}}", marks=MARK) for i in range(2)])
        def test_split(certload, server, n):
            async def iteration(ctx):
                await ctx.request("GET", server + "/fast")
            certload.run(iteration).assert_thresholds()
        """
    )
    result = project.runpytest_subprocess("-n", "2", "--certload-summary=s.json")
    result.assert_outcomes(passed=2)
    doc = summary(project, "s.json")
    assert set(doc["scenarios"]) == {"s0", "s1"}
    total = sum(doc["scenarios"][s]["requests"] for s in ("s0", "s1"))
    assert doc["metrics"]["http_reqs"]["values"]["count"] == total
    merged = doc["metrics"]["http_req_duration"]["count"]
    assert merged == sum(doc["metrics"][f"http_req_duration{{scenario:{s}}}"]["count"] for s in ("s0", "s1"))
    for scenario in ("s0", "s1"):  # in the order the workers finished
        result.stdout.fnmatch_lines([f"{scenario} *ok 1/1*"])


@pytest.mark.parametrize("value", ["fast", "-1", "0"])
def test_bad_saturation_bound_is_a_usage_error(project, value):
    project.makepyfile(test_x="def test_x():\n    pass\n")
    result = project.runpytest_subprocess("-o", f"certload_max_lag_p99_ms={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*certload_max_lag_p99_ms*give a positive number*"])


def test_run_without_marker_is_a_clear_failure(project):
    project.makepyfile(
        test_load="""
        def test_nomarker(certload):
            certload.run(None)
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*certload.run needs @pytest.mark.certload(executor=..., ...)*"])


TLS_CONFTEST = textwrap.dedent(
    f"""
    import sys

    import pytest

    from pytest_certload.stack.model import Secret, Stack
    from pytest_certload.stack.tls import make_tls_material

    sys.path.insert(0, {str(CALIBRATION_DIR)!r})
    from calibration import start_server


    @pytest.fixture(scope="session")
    def tls_server(tmp_path_factory):
        tls = make_tls_material(tmp_path_factory.mktemp("tls"))
        proc, url = start_server(tmp_path_factory.mktemp("calibration"), tls=tls)
        try:
            yield url, tls.ca_cert
        finally:
            proc.stop()


    @pytest.fixture(scope="session")
    def certload_stack(tls_server):
        url, bundle = tls_server
        return Stack(kind="native", certctl_url=url, token=Secret("do-not-print-me"), ca_bundle=bundle,
                     server="stand-in", owned=True)
    """
)


def test_tls_context_from_stack_or_insecure_and_target_label(pytester: pytest.Pytester):
    pytester.makeconftest(TLS_CONFTEST)
    pytester.makeini(RELAXED_HEALTH)
    pytester.makepyfile(
        test_tls=f"""
        import pytest

        @pytest.mark.certload({CAR}, thresholds={{"http_req_failed": ["rate==0"]}})
        def test_with_stack(certload, certload_stack):
            async def iteration(ctx):
                await ctx.request("GET", certload_stack.certctl_url + "/fast")
            certload.run(iteration).assert_thresholds()

        @pytest.mark.certload({CAR}, thresholds={{"http_req_failed": ["rate==0"]}})
        def test_without_stack(certload, tls_server):
            async def iteration(ctx):
                await ctx.request("GET", tls_server[0] + "/fast")
            certload.run(iteration).assert_thresholds()
        """
    )
    verified = pytester.runpytest_subprocess("--certload-summary=s.json")
    verified.assert_outcomes(passed=1, failed=1)  # the system store does not know the test CA
    verified.stdout.fnmatch_lines(
        ["*certload*", "target: certctl stand-in", "*test_without_stack*observed 1*"]
    )
    doc = summary(pytester, "s.json")
    assert doc["stack"]["target"] == "certctl stand-in" and doc["stack"]["provider"] == "native"
    assert "do-not-print-me" not in (pytester.path / "s.json").read_text()
    insecure = pytester.runpytest_subprocess("--certload-insecure")
    insecure.assert_outcomes(passed=2)


def test_module_and_class_markers_merge_closest_wins(project):
    project.makepyfile(
        test_merge="""
        import pytest

        pytestmark = [pytest.mark.scale, pytest.mark.certload(duration="3s", rate=1,
                                                             thresholds={"http_req_failed": ["rate<0.1"]})]

        class TestGroup:
            @pytest.mark.certload(executor="constant-arrival-rate", rate=5, pre_allocated_vus=1)
            def test_a(self, certload):
                pass
        """
    )
    result = project.runpytest_subprocess("--certload-list", "-n", "2")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*test_merge.py::TestGroup::test_a*certload,scale*constant-arrival-rate*5 / 1s*3s*"
            "http_req_failed: rate<0.1*"
        ]
    )
    assert "workers" not in result.stdout.str()  # listing starts no xdist workers ("created: 2/2 workers")


def _engine_has_abort_hook() -> bool:
    import inspect

    from pytest_certload.engine import run_phase

    return bool({"abort_check", "should_abort", "abort"} & set(inspect.signature(run_phase).parameters))


@pytest.mark.skipif(not _engine_has_abort_hook(), reason="engine.run_phase has no abort_check hook yet")
def test_abort_on_fail_stops_the_phase_early(project):
    project.makepyfile(
        test_abort="""
        import time
        import pytest

        @pytest.mark.certload(executor="constant-arrival-rate", rate=20, time_unit="1s", duration="20s",
                              pre_allocated_vus=2, graceful_stop="1s", thresholds={"http_req_failed": [
                                  {"threshold": "rate<0.5", "abortOnFail": True, "delayAbortEval": "0.5s"}]})
        def test_aborted(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/status/500")
            started = time.monotonic()
            result = certload.run(iteration)
            assert time.monotonic() - started < 10
            result.assert_thresholds()
        """
    )
    result = project.runpytest_subprocess("--certload-summary=s.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*http_req_failed{scenario:test_aborted}: rate<0.5 -> observed 1*"])
    entry = summary(project, "s.json")["scenarios"]["test_aborted"]
    assert "abortOnFail threshold crossed" in entry["aborted"]


def test_breach_that_the_test_never_checks_is_warned_about(project):
    project.makepyfile(
        test_load=f"""
        import pytest

        @pytest.mark.certload({CAR}, thresholds={{"http_req_failed": ["rate==0"]}})
        def test_forgot(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/status/500")
            certload.run(iteration)

        @pytest.mark.certload({CAR}, thresholds={{"http_req_failed": ["rate==0"]}})
        def test_looked(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/status/500")
            assert not certload.run(iteration).ok
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*UnassertedThresholds: test_load.py::test_forgot: thresholds breached but never checked*"]
    )
    assert "test_looked: thresholds breached" not in result.stdout.str()


def test_load_against_an_external_stack_needs_explicit_permission(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(calibration.EXTERNAL_STACK_CONFTEST)
    pytester.makeini(RELAXED_HEALTH)
    pytester.makepyfile(
        test_ext=f"""
        import pytest

        @pytest.mark.certload({CAR})
        def test_load(certload, certload_stack):
            async def iteration(ctx):
                ctx.counter("ran")  # sends nothing: this test is about the refusal
            result = certload.run(iteration)
            assert result.samples.select_counter("ran") > 0
        """
    )
    refused = pytester.runpytest_subprocess()
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(
        ["*refusing to seed or load an external stack*--certload-allow-external-load*"]
    )
    allowed = pytester.runpytest_subprocess("--certload-allow-external-load")
    allowed.assert_outcomes(passed=1)
