"""Fidelity to the original k6 harness where it was right (issue 12): no stack needed.

- ``--certload-duration`` scales k6's ``startTime`` with the duration (the stagger survives);
- ``ctx.check`` records k6's ``checks`` rate, thresholdable per check name;
- every scenario records the original's checks under the original's names;
- the seed knobs (K6_AGENT_RATE, K6_VUS, ...) read as options or as the original's variables;
- the fleets that make results independent of test order are ordered as the scenarios assume;
- with certctl's source at hand (``CERTLOAD_CERTCTL_SOURCE``, or the parent of
  ``CERTLOAD_CERTCTL_MIGRATIONS``), the scenarios' options, check names, metric names and knob
  variables are compared with the k6 scripts themselves.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_certload import seed_knobs
from pytest_certload.engine import ExecutorSpec, ScenarioRun, run_phase
from pytest_certload.scenario_options import parse_scenario_options
from pytest_certload.scenarios import acme, api, connector, scale
from pytest_certload.seeding.fleet import load_fleet
from pytest_certload.stack.secret import Secret
from pytest_certload.thresholds import evaluate, parse_thresholds

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 5, 1, tzinfo=UTC)

# -- --certload-duration scales startTime ------------------------------------------------------------

CAR = {"executor": "constant-arrival-rate", "rate": 50, "duration": "5m", "pre_allocated_vus": 5}


@pytest.mark.parametrize(
    ("start", "override", "scaled", "offset"),
    [
        ({"start_time": "5s"}, 3.0, {"start_time": "0.05s"}, 0.05),
        ({"startTime": "10s"}, 3.0, {"startTime": "0.1s"}, 0.1),
        ({"start_offset": "30s"}, 60.0, {"start_offset": "6s"}, 6.0),
        ({"start_time": "5s"}, 600.0, {"start_time": "10s"}, 10.0),  # a longer run stretches it
        ({"start_time": "0s"}, 3.0, {"start_time": "0s"}, 0.0),
    ],
)
def test_duration_override_scales_start_time_by_the_same_factor(start, override, scaled, offset) -> None:
    options = parse_scenario_options({**CAR, **start}, override)
    assert options.raw == {**CAR, "duration": f"{override:g}s", **scaled}
    assert options.spec.start_offset == pytest.approx(offset)
    assert options.spec.duration == override


def test_ramping_stages_scale_start_time_by_their_total() -> None:
    stages = [{"target": 10, "duration": "1m"}, {"target": 20, "duration": "3m"}]
    options = parse_scenario_options(
        {"executor": "ramping-arrival-rate", "stages": stages, "pre_allocated_vus": 2, "start_time": "40s"},
        2.0,
    )
    assert [s["duration"] for s in options.raw["stages"]] == ["0.5s", "1.5s"]
    assert options.spec.start_offset == pytest.approx(40 * 2 / 240)


def test_without_override_start_time_is_as_written() -> None:
    options = parse_scenario_options({**CAR, "start_time": "10s"})
    assert options.raw["start_time"] == "10s" and options.spec.start_offset == 10.0


def test_tiny_factors_stay_valid_k6_durations() -> None:
    """No '1e-05s': the scaled text must parse as a k6 duration again."""
    options = parse_scenario_options({**CAR, "duration": "5h", "start_time": "1s"}, 0.05)
    assert "e" not in options.raw["start_time"]
    assert options.spec.start_offset == pytest.approx(0.05 / 18000, rel=1e-3)


def test_k6_js_stagger_overlaps_in_a_short_run() -> None:
    """make loadtest: list at +5 s and handshakes at +10 s start while issuance (0 s) still runs."""
    loadtest = _load_module(ROOT / "tests" / "api" / "test_loadtest.py")
    for seconds in (3.0, 60.0, 300.0):
        specs = {
            name: parse_scenario_options({k: v for k, v in opts.items() if k != "thresholds"}, seconds).spec
            for name, opts in loadtest.K6_JS.items()
        }
        issuance_end = specs["issuance_acceptance"].start_offset + specs["issuance_acceptance"].duration
        assert all(s.start_offset < issuance_end for s in specs.values())
        assert specs["list_certificates"].start_offset == pytest.approx(5 * seconds / 300)
        assert specs["nginx_handshake"].start_offset == pytest.approx(10 * seconds / 300)


# -- ctx.check: k6's checks rate ---------------------------------------------------------------------


def test_check_records_k6s_checks_rate_with_the_check_tag() -> None:
    async def iteration(ctx):
        assert ctx.check("status is 201", ctx.iteration % 4 != 0) is (ctx.iteration % 4 != 0)
        ctx.check("body is json", True)

    spec = ExecutorSpec.from_options(
        {"executor": "constant-arrival-rate", "rate": 200, "duration": "0.2s", "pre_allocated_vus": 2,
         "max_iterations": 40, "graceful_stop": "1s"}
    )  # fmt: skip
    samples = run_phase([ScenarioRun("creator", spec, iteration, {"target_type": "x"})]).samples
    total = samples.select_rate("checks")[1]
    assert total == 2 * samples.select_counter("iterations") > 0
    trues, n = samples.select_rate("checks", {"check": "status is 201", "scenario": "creator"})
    assert n == total // 2 and trues == n - len([i for i in range(n) if i % 4 == 0])
    assert samples.select_rate("checks", {"check": "body is json", "target_type": "x"}) == (n, n)
    verdicts = evaluate(
        parse_thresholds(
            {
                "checks": ["rate>0.99"],
                "checks{check:status is 201}": ["rate>0.7"],
                "checks{check:body is json}": ["rate==1"],
            }
        ),
        samples,
    )
    assert [v.ok for v in verdicts] == [False, True, True]
    assert verdicts[0].observed == pytest.approx((total - n + trues) / total)


def test_checks_is_a_known_rate_metric() -> None:
    with pytest.raises(ValueError, match="checks"):
        parse_thresholds({"checks": ["p(95)<200"]})


# -- every scenario records the original's checks under the original's names -------------------------

#: the check names of certctl's k6 scripts (deploy/test/loadtest/)
SEED_CHECKS = {
    "k6.js": {"create status 201", "list status 200", "nginx 2xx", "apache 2xx", "haproxy 2xx", "f5 2xx"},
    "k6/bulk_renewal.js": {"bulk-renew 2xx"},
    "k6/agent_storm.js": {"heartbeat 2xx"},
    "k6/acme_burst.js": {
        "directory 200",
        "new-nonce 200",
        "replay-nonce header present",
        "renewal-info 4xx for synthetic cert-id",
    },
    "k6/acme_flow.js": {
        "directory 200",
        "new-nonce 200 + Replay-Nonce",
        "renewal-info 4xx for synthetic cert-id",
    },
}


class FakeResponse:
    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.duration_ns = 1_000_000


class FakeContext:
    """An IterationContext stand-in: canned answers by path, every metric call written down."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.checks: list[tuple[str, bool]] = []
        self.trends: list[str] = []
        self.counters: list[tuple[str, float, dict]] = []
        self.urls: list[str] = []
        self.iteration = 0

    async def request(self, method, url, **_):
        self.urls.append(url)
        return self.answer(method, url)

    def check(self, name, ok):
        self.checks.append((name, bool(ok)))
        return bool(ok)

    def trend(self, name, value_ns, tags=None):
        self.trends.append(name)

    def counter(self, name, n=1, tags=None):
        self.counters.append((name, n, tags or {}))

    async def sleep(self, seconds):
        pass


STACK = SimpleNamespace(
    certctl_url="https://certctl.test:8443",
    token=Secret("token"),
    targets={t: SimpleNamespace(url=f"https://{t}.test", health_path="/") for t in ("nginx", "f5")},
)
DIRECTORY = (
    b'{"newNonce":"https://certctl.test:8443/acme/profile/prof-test/new-nonce",'
    b'"renewalInfo":"https://certctl.test:8443/acme/profile/prof-test/renewal-info"}'
)


def healthy(method: str, url: str) -> FakeResponse:
    if url.endswith("/directory"):
        return FakeResponse(200, DIRECTORY)
    if "new-nonce" in url:
        return FakeResponse(200, headers={"replay-nonce": "abc"})
    if "renewal-info" in url:
        return FakeResponse(404)
    if url.endswith("/bulk-renew"):
        return FakeResponse(
            200, b'{"total_matched":2,"total_enqueued":1,"total_skipped":1,"total_failed":0,'
            b'"enqueued_jobs":[{"certificate_id":"cert-loadtest-bulk-00001","job_id":"job-1"}]}'
        )  # fmt: skip
    if method == "POST" and url.endswith("/certificates"):
        return FakeResponse(201)
    if "/certificates?" in url:
        return FakeResponse(
            200, b'{"data":[{"id":"cert-loadtest-list-00001"}],"total":1,"page":1,"per_page":50}'
        )
    return FakeResponse(200)


def run_iteration(builder, answer=healthy) -> FakeContext:
    ctx = FakeContext(answer)
    asyncio.run(builder(ctx))
    return ctx


@pytest.mark.parametrize(
    ("script", "builders"),
    [
        ("k6.js", [api.issuance_acceptance(STACK), api.list_certificates(STACK),
                   *(connector.handshake(STACK, t) for t in ("nginx", "f5"))]),
        ("k6/bulk_renewal.js", [scale.bulk_renewal(STACK)]),
        ("k6/agent_storm.js", [scale.agent_storm(STACK, ["ag-loadtest-00001"])]),
        ("k6/acme_burst.js", [acme.acme_burst(STACK)]),
        ("k6/acme_flow.js", [acme.acme_flow(STACK)]),
    ],
)  # fmt: skip
def test_scenarios_record_the_originals_checks(script, builders) -> None:
    names: set[str] = set()
    for builder in builders:
        ctx = run_iteration(builder)
        assert ctx.checks and all(ok for _, ok in ctx.checks), ctx.checks
        names |= {name for name, _ in ctx.checks}
    expected = SEED_CHECKS[script]
    if script == "k6.js":  # two of the four handshakes were built
        expected = expected - {"apache 2xx", "haproxy 2xx"}
    assert names == expected


def test_failed_checks_are_recorded_false() -> None:
    ctx = run_iteration(api.issuance_acceptance(STACK), lambda m, u: FakeResponse(500))
    assert ctx.checks == [("create status 201", False)]
    ctx = run_iteration(acme.acme_burst(STACK), lambda m, u: FakeResponse(429, headers={"retry-after": "1"}))
    assert ctx.checks == [("directory 200", False)]  # acme_burst.js checks, then backs off on 429


def test_acme_scripts_keep_their_own_metric_names() -> None:
    assert run_iteration(acme.acme_burst(STACK)).trends == [
        "acme_directory_duration", "acme_new_nonce_duration", "acme_renewal_info_duration"
    ]  # fmt: skip
    assert run_iteration(acme.acme_flow(STACK)).trends == [
        "directory_duration", "new_nonce_duration", "renewal_info_duration"
    ]  # fmt: skip
    assert acme.FLOW_SCENARIO == "acme_directory_and_nonce"


def test_acme_flow_asks_renewal_info_after_a_limited_nonce_and_burst_does_not() -> None:
    def nonce_limited(method, url):
        return FakeResponse(429, headers={"retry-after": "1"}) if "new-nonce" in url else healthy(method, url)

    assert any("renewal-info" in u for u in run_iteration(acme.acme_flow(STACK), nonce_limited).urls)
    assert not any("renewal-info" in u for u in run_iteration(acme.acme_burst(STACK), nonce_limited).urls)


def test_acme_directory_elsewhere_gets_no_admin_key() -> None:
    seen: list[dict] = []

    class Recording(FakeContext):
        async def request(self, method, url, headers=None, **_):
            seen.append(headers or {})
            return FakeResponse(503)

    asyncio.run(acme.acme_flow(STACK, "https://acme.elsewhere.test/directory")(Recording(healthy)))
    asyncio.run(
        acme.acme_flow(STACK, "https://certctl.test:8443/acme/profile/other/directory")(Recording(healthy))
    )
    assert "Authorization" not in seen[0] and seen[1]["Authorization"] == "Bearer token"


def test_bulk_renewal_counts_per_call_and_renewals_outside_the_fleet() -> None:
    def foreign(method, url):
        return FakeResponse(
            200, b'{"total_matched":2,"total_enqueued":2,"total_skipped":0,"total_failed":0,"enqueued_jobs":'
            b'[{"certificate_id":"cert-loadtest-bulk-00001"},{"certificate_id":"mc-api-prod"}]}'
        )  # fmt: skip

    counters = run_iteration(scale.bulk_renewal(STACK), foreign).counters
    assert ("bulk_renew_calls", 1, {"matched": "2", "enqueued": "2"}) in counters
    assert ("bulk_renew_foreign", 1, {}) in counters
    assert scale.describe_bulk_calls({(50, 50): 12, (50, 0): 3}) == (
        "15 calls: 12 x matched 50 / enqueued 50, 3 x matched 50 / enqueued 0"
    )


def test_list_page_signature() -> None:
    doc = {"data": [{"id": "cert-loadtest-list-00001"}, {"id": "mc-api-prod"}], "total": 7}
    assert api.page_signature(doc) == ("7 rows: cert-loadtest-list-00001 .. mc-api-prod (2 listed)", 1)
    assert api.page_signature({"error": "x"}) == ("not a list page", 0)
    ids = [f"cert-loadtest-list-{i:05d}" for i in range(1, 1001)]
    assert (
        api.fleet_page(ids) == "1000 rows: cert-loadtest-list-00001 .. cert-loadtest-list-00050 (50 listed)"
    )


# -- fleets ordered as the scenarios assume ------------------------------------------------------------


def rows(name: str) -> list[dict]:
    fleet = load_fleet(name)
    return [dict(zip(fleet.column_names, r, strict=True)) for r in fleet.rows(NOW)]


def test_list_fleet_is_apart_and_oldest_first() -> None:
    fleet = load_fleet(api.LIST_FLEET)
    listed = rows(api.LIST_FLEET)
    assert fleet.id_prefix == api.LIST_ID_PREFIX and len(listed) == fleet.count == 1000
    assert {r["environment"] for r in listed} == {api.LIST_ENVIRONMENT}
    # certctl lists oldest first: ids 1..50 are the first page, and strictly so (no ties)
    created = [r["created_at"] for r in listed]
    assert created == sorted(created) and len(set(created)) == len(created) and created[-1] < NOW
    # outside certctl's 31-day renewal scan, so the server leaves them alone
    assert min(r["expires_at"] for r in listed) >= NOW + timedelta(days=60)
    for other in ("bulk_renewal",):
        assert api.LIST_ENVIRONMENT not in {r["environment"] for r in rows(other)}


def test_bulk_fleet_is_older_than_anything_a_test_creates() -> None:
    """certctl's criteria walk takes the 50 oldest matches: the fleet must come first, in id order."""
    bulk = rows("bulk_renewal")
    created = [r["created_at"] for r in bulk]
    assert created == sorted(created) and len(set(created)) == len(created)
    assert created[-1] < min(r["created_at"] for r in rows(api.LIST_FLEET))
    assert created[-1] < NOW - timedelta(days=300)
    assert {(r["team_id"], r["issuer_id"]) for r in bulk} == {("t-platform", "iss-local")}  # the criteria


# -- seed knobs ------------------------------------------------------------------------------------------

SEED_KNOB_VARIABLES = {
    "agent_fleet": ("K6_AGENT_FLEET", "5000"),
    "agent_rate": ("K6_AGENT_RATE", "167"),
    "acme_burst_vus": ("K6_ACME_VUS", "200"),
    "acme_burst_duration": ("K6_ACME_DURATION", "5m"),
    "acme_flow_vus": ("K6_VUS", "100"),
    "acme_flow_duration": ("K6_DURATION", "5m"),
    "acme_directory": ("CERTCTL_ACME_DIRECTORY", "<certctl>/acme/profile/prof-test/directory"),
}


def test_every_knob_of_the_original_has_an_option() -> None:
    assert {n: (k.env, k.seed_default) for n, k in seed_knobs.KNOBS.items()} == SEED_KNOB_VARIABLES
    assert seed_knobs.KNOBS["agent_rate"].option == "--certload-agent-rate"


class FakeConfig:
    def __init__(self, **options) -> None:
        self.options = options

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def test_option_wins_then_the_originals_variable_then_nothing(monkeypatch) -> None:
    for knob in seed_knobs.KNOBS.values():
        monkeypatch.delenv(knob.env, raising=False)
    assert seed_knobs.knob_value(FakeConfig(), "agent_rate") is None
    monkeypatch.setenv("K6_AGENT_RATE", "250")
    assert seed_knobs.knob_value(FakeConfig(), "agent_rate") == 250
    assert seed_knobs.knob_value(FakeConfig(certload_agent_rate="300"), "agent_rate") == 300
    monkeypatch.setenv("K6_DURATION", "1m30s")
    assert seed_knobs.knob_value(FakeConfig(), "acme_flow_duration") == "1m30s"
    monkeypatch.setenv("K6_VUS", "")  # empty is unset, as k6's `__ENV.K6_VUS || '100'`
    assert seed_knobs.knob_value(FakeConfig(), "acme_flow_vus") is None
    assert seed_knobs.executor_overrides(FakeConfig(), {"rate": "agent_rate", "vus": "acme_flow_vus"}) == {
        "rate": 250
    }


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("agent_fleet", "0", "whole number >= 1"),
        ("acme_flow_vus", "ten", "whole number >= 1"),
        ("agent_rate", "-5", "number > 0"),
        ("acme_burst_duration", "5 minutes", "k6 duration"),
        ("acme_directory", "certctl:8443/acme", "http"),
    ],
)
def test_bad_knob_values_are_usage_errors_naming_the_variable(monkeypatch, name, text, message) -> None:
    env = seed_knobs.KNOBS[name].env
    monkeypatch.setenv(env, text)
    with pytest.raises(pytest.UsageError, match=f"{env}=.*{message}"):
        seed_knobs.knob_value(FakeConfig(), name)


KNOB_SUITE = """
import pytest

@pytest.mark.certload_knobs(rate="agent_rate", duration="acme_flow_duration")
@pytest.mark.certload(executor="constant-arrival-rate", rate=167, duration="5m", pre_allocated_vus=5,
                      fleets=["agent_fleet"], thresholds={"http_req_failed": ["rate<0.01"]})
def test_storm(request):
    marker = request.node.get_closest_marker("certload")
    print("KNOBBED", marker.kwargs["rate"], marker.kwargs["fleets"], marker.kwargs["duration"])
"""
KNOB_CONFTEST = """
from pytest_certload import seed_knobs

def pytest_addoption(parser):
    seed_knobs.add_knob_options(parser)

def pytest_configure(config):
    config.addinivalue_line("markers", seed_knobs.KNOBS_MARKER_HELP)

def pytest_collection_modifyitems(config, items):
    seed_knobs.apply_executor_knobs(config, items)
"""


@pytest.fixture
def knob_suite(pytester: pytest.Pytester, monkeypatch) -> pytest.Pytester:
    for knob in seed_knobs.KNOBS.values():
        monkeypatch.delenv(knob.env, raising=False)
    pytester.makeconftest(KNOB_CONFTEST)
    pytester.makepyfile(test_knobs=KNOB_SUITE)
    return pytester


def test_executor_knobs_reach_the_marker_the_list_and_the_fixtures(knob_suite, monkeypatch) -> None:
    plain = knob_suite.runpytest_subprocess("--certload-list")
    assert "167 / 1s" in plain.stdout.str() and "300s" in plain.stdout.str()
    monkeypatch.setenv("K6_AGENT_RATE", "250")
    by_env = knob_suite.runpytest_subprocess("--certload-list")
    assert "250 / 1s" in by_env.stdout.str()
    by_option = knob_suite.runpytest_subprocess("--certload-list", "--certload-agent-rate=300")
    assert "300 / 1s" in by_option.stdout.str()
    ran = knob_suite.runpytest_subprocess(
        "-s", "--certload-agent-rate=300", "--certload-acme-flow-duration=2m"
    )
    ran.assert_outcomes(passed=1)
    assert "KNOBBED 300 ['agent_fleet'] 2m" in ran.stdout.str()  # fleets kept for certload_fleets


def test_certload_duration_still_wins_over_a_duration_knob(knob_suite) -> None:
    result = knob_suite.runpytest_subprocess(
        "--certload-list", "--certload-acme-flow-duration=2m", "--certload-duration=3s"
    )
    assert re.search(r"\b3s\b", result.stdout.str()) and "120s" not in result.stdout.str()


def test_a_bad_knob_is_a_usage_error(knob_suite) -> None:
    result = knob_suite.runpytest_subprocess("--certload-list", "--certload-agent-rate=fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--certload-agent-rate='fast': expected a number > 0" in result.stderr.str()


# -- against certctl's own k6 scripts, when its source is at hand ---------------------------------------


def certctl_loadtest_dir() -> Path | None:
    source = os.environ.get("CERTLOAD_CERTCTL_SOURCE")
    if not source and os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS"):
        source = str(Path(os.environ["CERTLOAD_CERTCTL_MIGRATIONS"]).parent)
    folder = Path(source) / "deploy" / "test" / "loadtest" if source else None
    return folder if folder is not None and (folder / "k6.js").is_file() else None


@pytest.fixture(scope="module")
def seed_dir() -> Path:
    folder = certctl_loadtest_dir()
    if folder is None:
        pytest.skip("certctl's source is not at hand: set CERTLOAD_CERTCTL_SOURCE (or ..._MIGRATIONS)")
    return folder


def _load_module(path: Path):
    """A test module of this suite, imported for its option tables (its conftest's marks may be
    unregistered when tests/plugin runs alone)."""
    spec = importlib.util.spec_from_file_location(f"seed_fidelity_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        spec.loader.exec_module(module)
    return module


def _block(text: str, opener: str) -> str:
    """The text between the brace after ``opener`` (``key:`` or ``key: {``) and its closing brace."""
    start = re.search(re.escape(opener.rstrip("{ ")) + r"\s*\{", text).end() - 1
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1 : i]
    raise ValueError(opener)


def _js_value(raw: str, script: str) -> tuple[object, str | None]:
    """A k6 option's value (a literal, a const, or ``parseInt(__ENV.X || 'd')`` / ``__ENV.X || 'd'``)
    and the environment variable that overrides it, if any."""
    raw = raw.strip().rstrip(",")
    if re.fullmatch(r"[A-Z_]+", raw):
        raw = re.search(rf"const {raw}\s*=\s*(.+?);", script).group(1)
    env = re.search(r"__ENV\.(\w+)\s*\|\|\s*['\"]([^'\"]*)['\"]", raw)
    if env:
        text = env.group(2)
        return (int(text) if raw.startswith("parseInt") else text), env.group(1)
    if raw.startswith(("'", '"')):
        return raw[1:-1], None
    return int(raw), None


def seed_scenarios(script: str) -> dict[str, dict[str, tuple[object, str | None]]]:
    scenarios = _block(script, "scenarios:")
    out = {}
    for match in re.finditer(r"(\w+):\s*\{", scenarios):
        if match.start() and scenarios[: match.start()].count("{") != scenarios[: match.start()].count("}"):
            continue  # a nested block (tags)
        body = _block(scenarios[match.start() :], match.group(0))
        out[match.group(1)] = {
            key: _js_value(value, script)
            for key, value in re.findall(r"^\s*(\w+):\s*(.+?)\s*$", body, re.M)
            if key not in ("exec", "tags")
        }
    return out


K6_KEYS = {"timeUnit": "time_unit", "preAllocatedVUs": "pre_allocated_vus", "maxVUs": "max_vus",
           "startTime": "start_time", "gracefulStop": "graceful_stop"}  # fmt: skip


def ours_as_k6(options: dict) -> dict[str, object]:
    spec = parse_scenario_options(
        {k: v for k, v in options.items() if k not in ("thresholds", "fleets", "tags")}
    )
    return {
        "executor": spec.spec.executor, "duration": spec.spec.duration, "rate": spec.spec.rate or None,
        "time_unit": spec.spec.time_unit, "pre_allocated_vus": spec.spec.pre_allocated_vus or None,
        "max_vus": spec.spec.max_vus or None, "vus": spec.spec.vus or None,
        "start_time": spec.spec.start_offset, "graceful_stop": spec.spec.graceful_stop,
    }  # fmt: skip


def seed_as_ours(seed: dict[str, tuple[object, str | None]]) -> dict[str, object]:
    values = {K6_KEYS.get(k, k): v for k, (v, _) in seed.items()}
    return ours_as_k6(values)


def our_marker(module, test_name: str) -> dict:
    (mark,) = [m for m in getattr(module, test_name).pytestmark if m.name == "certload"]
    return dict(mark.kwargs)


def test_scenario_options_are_the_scripts(seed_dir: Path) -> None:
    loadtest = _load_module(ROOT / "tests" / "api" / "test_loadtest.py")
    scale_tests = _load_module(ROOT / "tests" / "scale" / "test_scale.py")
    pairs = {name: (seed_dir / "k6.js", opts) for name, opts in loadtest.K6_JS.items()}
    pairs |= {
        "bulk_renewal": (seed_dir / "k6/bulk_renewal.js", our_marker(scale_tests, "test_bulk_renewal")),
        "agent_storm": (seed_dir / "k6/agent_storm.js", our_marker(scale_tests, "test_agent_storm")),
        "acme_burst": (seed_dir / "k6/acme_burst.js", our_marker(scale_tests, "test_acme_burst")),
        acme.FLOW_SCENARIO: (seed_dir / "k6/acme_flow.js", our_marker(scale_tests, "test_acme_flow")),
    }
    for name, (path, ours) in pairs.items():
        seed = seed_scenarios(path.read_text())[name]  # acme_flow.js's scenario is acme_directory_and_nonce
        assert ours_as_k6(ours) == seed_as_ours(seed), f"{name} differs from {path.name}"


def test_k6_js_thresholds_are_ported_as_written(seed_dir: Path) -> None:
    loadtest = _load_module(ROOT / "tests" / "api" / "test_loadtest.py")
    block = _block((seed_dir / "k6.js").read_text(), "thresholds:")
    seed = {k: set(re.findall(r"'([^']+)'", v)) for k, v in re.findall(r"'([^']+)':\s*\[([^\]]*)\]", block)}
    ours: dict[str, set[str]] = {}
    marks = [m for m in loadtest.test_make_loadtest.pytestmark if m.name == "certload"]
    for thresholds in [o["thresholds"] for o in loadtest.K6_JS.values()] + [marks[0].kwargs["thresholds"]]:
        for key, exprs in thresholds.items():
            ours.setdefault(key, set()).update(exprs)
    assert ours == seed


def test_check_metric_and_knob_names_are_the_scripts(seed_dir: Path) -> None:
    for script, names in SEED_CHECKS.items():
        text = (seed_dir / script).read_text()
        assert set(re.findall(r"['\"]([^'\"]+)['\"]\s*:\s*\(?r\)?\s*=>", text)) == names, script
    assert set(re.findall(r"new Trend\(['\"](\w+)", (seed_dir / "k6/acme_flow.js").read_text())) == set(
        acme.FLOW_TRENDS.values()
    )
    assert set(re.findall(r"new Trend\(['\"](\w+)", (seed_dir / "k6/acme_burst.js").read_text())) == set(
        acme.BURST_TRENDS.values()
    )
    knobs_in_scripts: dict[str, str] = {}
    for script in ("k6/agent_storm.js", "k6/acme_burst.js", "k6/acme_flow.js"):
        text = (seed_dir / script).read_text()
        knobs_in_scripts |= dict(re.findall(r"__ENV\.(K6_\w+)\s*\|\|\s*['\"]([^'\"]*)['\"]", text))
        assert "CERTCTL_ACME_DIRECTORY" in text or script == "k6/agent_storm.js"
    ours = {k.env: k.seed_default for k in seed_knobs.KNOBS.values() if k.env.startswith("K6_")}
    assert ours == knobs_in_scripts
