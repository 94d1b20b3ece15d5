"""Server-side figures end to end (pytester): thresholds on them pass and fail tests, the summary has
the block, the terminal table the "server" column and the bottleneck line, an external stack says n/a."""

from __future__ import annotations

import json
import textwrap

import calibration  # tests/plugin/calibration.py
import pytest

from pytest_certload.thresholds import ThresholdError, parse_thresholds

pytest_plugins = ["pytester"]

RELAXED_HEALTH = calibration.RELAXED_HEALTH_INI
CAR = 'executor="constant-arrival-rate", rate=20, time_unit="1s", duration="2s", pre_allocated_vus=4'
STACK_ARGS = ("--certctl=standin", "--certload-stack=native", "--certload-pg-profile=fast")

# these tests are about the server-side block, not the generator's health: on the shared machine a
# busy neighbour can make a phase "saturated"; its figures are still judged and checked
RUN = """
from pytest_certload.results import ScenarioResult
from pytest_certload.runner import GeneratorSaturated

def run(certload, iteration):
    try:
        return certload.run(iteration)
    except GeneratorSaturated:
        return ScenarioResult(certload.results[-1], "test_list")
"""


def list_test(thresholds: str, checks: str) -> str:
    """An inner test file: ``test_list`` GETs the certificate list under ``thresholds``, then runs
    ``checks`` (statements on ``result``, one a line)."""
    head = f"""
import pytest
from pytest_certload.scenarios.common import auth_headers

@pytest.mark.certload({CAR}, thresholds={thresholds})
def test_list(certload, certload_stack):
    headers = auth_headers(certload_stack)
    url = certload_stack.certctl_url + "/api/v1/certificates?per_page=5"
    async def iteration(ctx):
        await ctx.request("GET", url, headers=headers)
    result = run(certload, iteration)
"""
    return RUN + head + textwrap.indent(textwrap.dedent(checks).strip() + "\n", "    ")


LIST_TEST = list_test(
    '{"db_queries_per_request": ["avg<{limit}"], "server_cpu_per_request": ["avg<1s"]}',
    """
    assert result.samples.select_counter("http_reqs") > 0
    assert result.server["derived"]["requests"] == result.samples.select_counter("http_reqs")
    result.assert_thresholds()
    """,
)


def test_server_metric_names_parse_at_collection_as_trends():
    parsed = parse_thresholds(
        {"db_queries_per_request": ["avg<12", "p(95)<20"], "server_rss_growth": "max<64"}
    )
    assert [t.metric_type for t in parsed] == ["trend"] * 3
    with pytest.raises(ThresholdError, match="rate does not apply to db_queries_per_request"):
        parse_thresholds({"db_queries_per_request": ["rate<1"]})


@pytest.mark.parametrize(("limit", "outcome"), [(1, "failed"), (1000, "passed")])
def test_db_queries_per_request_threshold_decides_the_test(
    pytester: pytest.Pytester, limit: int, outcome: str
):
    pytester.makeini(RELAXED_HEALTH)
    pytester.makepyfile(test_list=LIST_TEST.replace("{limit}", str(limit)))
    result = pytester.runpytest_subprocess(
        *STACK_ARGS, "--certload-summary=s.json", "--certload-html=r.html", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(**{outcome: 1})
    page = (pytester.path / "r.html").read_text()
    assert "<h3>Server side</h3>" in page and "bottleneck (measured CPU)" in page
    assert "certctl per second: resident memory and connections" in page
    if outcome == "failed":
        result.stdout.fnmatch_lines(
            ["*db_queries_per_request{scenario:test_list}: avg<1 -> observed *, limit 1, count *"]
        )
    result.stdout.fnmatch_lines(
        ["*server cpu/q/tx per req*", "*test_list*ms *q *tx*", "test_list: bottleneck (measured CPU): *"]
    )
    doc = json.loads((pytester.path / "s.json").read_text())
    entry = doc["scenarios"]["test_list"]["server"]
    (phase,) = doc["server_side"]
    assert phase["scope"] == entry["scope"] == "scenario test_list"
    derived = entry["derived"]
    assert derived["requests"] == entry["derived"]["requests"] > 0
    assert derived["db_queries_per_request"] >= 1  # the stand-in queries PostgreSQL for every list
    assert derived["server_cpu_per_request"] > 0
    assert phase["raw"]["database"]["statements"]["top"]
    assert phase["raw"]["certctl"]["source"].startswith("pid ")
    verdict = doc["metrics"]["db_queries_per_request{scenario:test_list}"]["thresholds"][f"avg<{limit}"]
    assert verdict["ok"] is (outcome == "passed")
    assert verdict["observed"] == pytest.approx(derived["db_queries_per_request"])


def test_external_stack_without_dsn_is_na_never_guessed(pytester: pytest.Pytester):
    pytester.makeconftest(calibration.EXTERNAL_STACK_CONFTEST)
    pytester.makeini(RELAXED_HEALTH)
    pytester.makepyfile(
        test_ext=f"""
        import pytest

        @pytest.mark.certload({CAR}, thresholds={{"server_cpu_per_request": ["avg<100"],
                                                  "db_queries_per_request": ["avg<100"]}})
        def test_load(certload, certload_stack):
            async def iteration(ctx):
                ctx.counter("ran")
            result = certload.run(iteration)
            assert not result.ok
            reasons = {{v.metric_key.split("{{")[0]: v.reason for v in result.verdicts}}
            assert reasons["server_cpu_per_request"].startswith("n/a: external stack"), reasons
            assert reasons["db_queries_per_request"].startswith("n/a: no database DSN"), reasons
        """
    )
    result = pytester.runpytest_subprocess("--certload-allow-external-load", "--certload-summary=s.json")
    result.assert_outcomes(passed=1)
    (phase,) = json.loads((pytester.path / "s.json").read_text())["server_side"]
    assert phase["derived"]["server_cpu_per_request"] is None
    assert phase["raw"]["metrics"]["na"].startswith("n/a")
    assert "n/a" in phase["bottleneck"]


SPLIT_TEST = list_test(
    '{"db_queries_per_request": ["avg<1000"]}',
    """
    result.assert_thresholds()
    parts = result.samples.meta["parts"]
    assert len(parts) == 2, parts  # merged over both workers
    assert [bool(p.get("serverside")) for p in parts] == [True, False]  # share 0 sampled, once
    """,
)


def test_xdist_split_samples_the_server_once_and_divides_by_the_merged_count(pytester: pytest.Pytester):
    pytest.importorskip("xdist")
    pytester.makeini(RELAXED_HEALTH)
    pytester.makepyfile(test_split=SPLIT_TEST)
    result = pytester.runpytest_subprocess(
        "-n", "2", *STACK_ARGS, "--certload-summary=s.json", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "s.json").read_text())
    (phase,) = doc["server_side"]
    requests = doc["scenarios"]["test_list"]["requests"]
    assert phase["derived"]["requests"] == requests == 40  # both shares' requests: 20/s for 2 s
    statements = phase["raw"]["database"]["statements"]["calls"]
    assert phase["derived"]["db_queries_per_request"] == pytest.approx(statements / requests)
    verdict = doc["metrics"]["db_queries_per_request{scenario:test_list}"]["thresholds"]["avg<1000"]
    assert verdict["observed"] == pytest.approx(statements / requests) and verdict["count"] == requests
