"""Split mode under pytest-xdist: every load scenario runs on every worker with a share of the load.

Most tests run a small pytest session in a subprocess (as test_plugin.py does) against the
calibration server (tests/plugin/calibration.py, its own process). The inner iterations write what
they did (worker, global iteration number, start time) to per-worker files, so the outer test checks
the shares against ground truth rather than against the plugin's own bookkeeping.
"""

from __future__ import annotations

import json
import os
import random
import sys
import textwrap
from itertools import pairwise
from pathlib import Path

import calibration  # tests/plugin/calibration.py
import numpy as np
import pytest

import pytest_certload
from pytest_certload.report.summary import build_summary
from pytest_certload.stats import Recorder
from pytest_certload.stats.samples import tagset
from pytest_certload.thresholds import evaluate, parse_thresholds
from pytest_certload.verdict import SPLIT_META_KEY as META_KEY
from pytest_certload.verdict import PhaseVerdict, ScenarioVerdict
from pytest_certload.xdist.merge import merge_worker_phases

pytest_plugins = ["pytester"]

# the code under test: inner pytest sessions (subprocesses, socket workers) import it, not whatever
# copy of the package happens to be installed
REPO = Path(pytest_certload.__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _inner_sessions_use_this_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


CALIBRATION_DIR = Path(__file__).resolve().parent

# The server (a subprocess) plus a controller-side dump of the merged records, so the outer test can
# compare merged samples with what the workers saw.
CONFTEST = textwrap.dedent(
    f"""
    import json, os, sys, time
    from pathlib import Path

    import pytest

    sys.path.insert(0, {str(CALIBRATION_DIR)!r})
    from calibration import start_server


    SERVER = []
    URL_FILE = Path(__file__).resolve().parent / "calibration-url.txt"


    def pytest_sessionstart(session):
        # one server for the whole run: started by the controller (or the only process) before
        # xdist spawns its workers, which inherit its address
        if not hasattr(session.config, "workerinput"):
            proc, url = start_server(session.config._tmp_path_factory.mktemp("calibration"))
            SERVER.append(proc)
            os.environ["CALIBRATION_URL"] = url
            URL_FILE.write_text(url)  # for workers that do not inherit our environment (--tx socket=)


    def pytest_unconfigure(config):
        for proc in SERVER:
            proc.stop()


    @pytest.fixture(scope="session")
    def server():
        return os.environ.get("CALIBRATION_URL") or URL_FILE.read_text()


    @pytest.fixture
    def log(request):
        '''Append one JSON line per event to seen-<worker>.jsonl (ground truth for the outer test).'''
        worker = os.environ.get("PYTEST_XDIST_WORKER", "single")
        with open(f"seen-{{worker}}.jsonl", "a") as out:
            def write(**fields):
                out.write(json.dumps({{"worker": worker, "test": request.node.name, **fields}}) + "\\n")
            yield write


    def pytest_sessionfinish(session):
        if hasattr(session.config, "workerinput"):
            return
        from pytest_certload.session import STATE

        dump = {{}}
        for record in session.config.stash[STATE].phases.values():
            result = record.samples
            dump[record.nodeid] = {{
                "meta": {{k: v for k, v in result.meta.items() if k != "parts"}},
                "parts": [p.get("{META_KEY}") for p in result.meta.get("parts", [])],
                "service_ns": result.select_trend("http_req_service_time").tolist(),
                "duration_ns": result.select_trend("http_req_duration").tolist(),
                "custom_ns": result.select_trend("custom_value").tolist(),
            }}
        with open("controller.json", "w") as out:
            json.dump(dump, out)
    """
)
RELAXED_HEALTH = calibration.RELAXED_HEALTH_INI


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(RELAXED_HEALTH)
    return pytester


def seen(pytester: pytest.Pytester) -> list[dict]:
    return [json.loads(line) for f in sorted(pytester.path.glob("seen-*.jsonl")) for line in f.open()]


def summary(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "s.json").read_text())


SPLIT_SUITE = """
import random
import pytest

@pytest.mark.certload(executor="constant-arrival-rate", rate=40, duration="1s", pre_allocated_vus=3,
                      max_vus=5, thresholds={"http_reqs": ["count==40"], "http_req_failed": ["rate==0"]})
def test_arrivals(certload, server, log):
    rng = random.Random()
    async def iteration(ctx):
        value = rng.randrange(1, 10**9)
        ctx.trend("custom_value", value)
        log(k=ctx.iteration, vu=ctx.vu, value=value)
        await ctx.request("GET", server + "/fast")
    certload.run(iteration).assert_thresholds()

@pytest.mark.certload(executor="constant-vus", vus=3, duration="1s",
                      thresholds={"http_req_failed": ["rate==0"]})
def test_vus(certload, server, log):
    async def iteration(ctx):
        log(k=ctx.iteration, vu=ctx.vu)
        await ctx.request("GET", server + "/fast")
        await ctx.sleep(0.05)
    certload.run(iteration).assert_thresholds()

@pytest.mark.certload(executor="constant-arrival-rate", rate=20, duration="1s", pre_allocated_vus=2,
                      thresholds={"http_reqs": ["count>=21"]})
def test_breached(certload, server, log):
    async def iteration(ctx):
        log(k=ctx.iteration)
        await ctx.request("GET", server + "/fast")
    certload.run(iteration).assert_thresholds()

@pytest.mark.parametrize("i", range(4))
def test_plain(i, log):
    log(k=-1)
"""


def test_split_mode_runs_each_scenario_once_across_the_workers(project):
    project.makepyfile(test_split=SPLIT_SUITE)
    result = project.runpytest_subprocess("-n", "2", "--certload-summary=s.json")
    # one report per load test: 3 load tests + 4 plain, not 3 x 2 + 4
    result.assert_outcomes(passed=6, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*1 failed, 6 passed*"])
    result.stdout.fnmatch_lines(
        ["*thresholds breached (merged over 2 workers)*", "*http_reqs{scenario:test_breached}: count>=21*"]
    )
    events = seen(project)
    plain = [e for e in events if e["test"].startswith("test_plain")]
    assert len(plain) == 4  # load-balanced, each once

    arrivals = [e for e in events if e["test"] == "test_arrivals"]
    by_worker = {w: sorted(e["k"] for e in arrivals if e["worker"] == w) for w in ("gw0", "gw1")}
    assert by_worker == {"gw0": list(range(0, 40, 2)), "gw1": list(range(1, 40, 2))}  # interleaved
    # each worker allocates at most its share of max_vus (5 -> 3 + 2; VU ids are per worker)
    assert max(e["vu"] for e in arrivals if e["worker"] == "gw0") <= 3
    assert max(e["vu"] for e in arrivals if e["worker"] == "gw1") <= 2

    vus = [e for e in events if e["test"] == "test_vus"]
    assert len({e["k"] for e in vus}) == len(vus)  # iteration numbers unique across the shares
    assert {e["vu"] for e in vus} == {1, 2, 3}  # 3 VUs split 2 + 1: VU ids are global, none twice
    assert {e["worker"] for e in vus if e["vu"] == 2} == {"gw1"}

    doc = summary(project)
    assert set(doc["scenarios"]) == {"test_arrivals", "test_vus", "test_breached"}
    assert doc["scenarios"]["test_arrivals"]["requests"] == 40
    assert doc["scenarios"]["test_arrivals"]["ok"] is True
    assert doc["scenarios"]["test_breached"]["requests"] == 20
    assert doc["scenarios"]["test_breached"]["thresholds"][0]["observed"] == 20
    health = [h for h in doc["generator_health"] if h["test"].endswith("test_arrivals")]
    assert len(health) == 1 and set(health[0]["workers"]) == {"gw0", "gw1"}

    # merged samples are the workers' samples, pooled: percentiles equal those of the pooled values
    dump = json.loads((project.path / "controller.json").read_text())["test_split.py::test_arrivals"]
    pooled = np.array([e["value"] for e in arrivals], dtype=np.int64)
    assert sorted(dump["custom_ns"]) == sorted(pooled.tolist())
    for q, key in ((50, "med"), (95, "p(95)"), (99, "p(99)")):
        assert doc["metrics"]["custom_value"]["values"][key] == float(np.percentile(pooled / 1e6, q))
    assert sorted((p["worker"], p["index"], p["count"]) for p in dump["parts"]) == [
        ("gw0", 0, 2),
        ("gw1", 1, 2),
    ]


def starts_of(events: list[dict], test: str, worker: str) -> list[tuple[int, float]]:
    return [(e["k"], e["t"]) for e in events if e["test"] == test and e["worker"] == worker]


def test_phases_never_overlap_and_shares_keep_one_schedule(project):
    """Load tests run back to back on every worker; within one, the shares' starts interleave."""
    project.makepyfile(
        test_order="""
        import time
        import pytest

        @pytest.mark.parametrize("name", [
            pytest.param(n, id=n, marks=pytest.mark.certload(
                executor="constant-arrival-rate", rate=50, duration="0.6s", pre_allocated_vus=2))
            for n in ("first", "second", "third")
        ])
        def test_phase(certload, server, log, name):
            async def iteration(ctx):
                log(k=ctx.iteration, t=time.time())
                await ctx.request("GET", server + "/fast")
            certload.run(iteration)
        """
    )
    result = project.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=3)
    events = seen(project)
    spans = []
    for name in ("test_phase[first]", "test_phase[second]", "test_phase[third]"):
        starts = sorted((e["k"], e["t"]) for e in events if e["test"] == name)
        assert [k for k, _ in starts] == list(range(30))
        assert {e["worker"] for e in events if e["test"] == name} == {"gw0", "gw1"}
        # arrival k is due at t0 + k/50 on whichever worker owns it, so t - k/50 is the same t0 on
        # both workers: a share started a slot (20 ms) off, or on its own clock, would show here
        offsets = {w: sorted(t - k / 50 for k, t in starts_of(events, name, w)) for w in ("gw0", "gw1")}
        medians = [o[len(o) // 2] for o in offsets.values()]
        assert abs(medians[0] - medians[1]) < 0.005, medians
        every = sorted(offsets["gw0"] + offsets["gw1"])
        assert every[int(0.9 * len(every))] - every[0] < 0.010  # 90 % start within 10 ms of the first
        spans.append((starts[0][1], max(t for _, t in starts)))
    for (_, end), (begin, _) in pairwise(spans):
        assert end < begin  # the next phase starts after the last arrival of the previous one


def test_one_failing_worker_fails_the_merged_report_with_its_message(project):
    project.makepyfile(
        test_fail="""
        import os
        import pytest

        @pytest.mark.certload(executor="constant-arrival-rate", rate=10, duration="0.5s", pre_allocated_vus=1)
        def test_half_broken(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/fast")
            certload.run(iteration)
            if os.environ["PYTEST_XDIST_WORKER"] == "gw1":
                raise RuntimeError("boom on the second generator")
        """
    )
    result = project.runpytest_subprocess("-n", "2")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*RuntimeError: boom on the second generator*",
            "*certload split*",
            "*per-worker outcome: gw0: passed; gw1: failed (shown above)*",
        ]
    )


def test_a_worker_that_dies_fails_its_test_once_and_the_next_phase_runs_without_it(project):
    project.makepyfile(
        test_crash="""
        import os
        import pytest

        MARK = pytest.mark.certload(executor="constant-arrival-rate", rate=20, duration="0.5s",
                                    pre_allocated_vus=2, thresholds={"http_reqs": ["count==10"]})

        @MARK
        def test_a_crash(certload, server):
            async def iteration(ctx):
                await ctx.request("GET", server + "/fast")
            result = certload.run(iteration)
            if os.environ["PYTEST_XDIST_WORKER"] == "gw1":
                os._exit(3)
            result.assert_thresholds()

        @MARK
        def test_b_after(certload, server, log):
            async def iteration(ctx):
                log(k=ctx.iteration)
                await ctx.request("GET", server + "/fast")
            certload.run(iteration).assert_thresholds()
        """
    )
    result = project.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=1, failed=1)  # one report for the crashed test, not xdist's + ours
    result.stdout.fnmatch_lines(
        ["*_ test_a_crash _*", "*worker 'gw1' crashed while running*", "*worker(s) gw1 died during the run*"]
    )
    after = [e for e in seen(project) if e["test"] == "test_b_after"]
    assert {e["worker"] for e in after} == {"gw0"} and sorted(e["k"] for e in after) == list(range(10))


def test_one_saturated_worker_makes_the_scenario_an_error_naming_it(project):
    project.makepyfile(
        test_sat="""
        import os
        import time
        import pytest

        @pytest.mark.certload(executor="constant-arrival-rate", rate=40, duration="1s", pre_allocated_vus=2)
        def test_saturated(certload, server):
            slow = os.environ["PYTEST_XDIST_WORKER"] == "gw1"
            async def iteration(ctx):
                if slow:
                    time.sleep(0.03)  # blocks this generator's event loop
                await ctx.request("GET", server + "/fast")
            certload.run(iteration)
        """
    )
    result = project.runpytest_subprocess(
        "-n", "2", "--certload-summary=s.json", "-o", "certload_max_lag_p99_ms=10"
    )
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*GeneratorSaturated: worker gw1: event-loop lag p99*"])
    assert "worker gw0" not in result.stdout.str()
    doc = summary(project)
    assert doc["scenarios"]["test_saturated"]["saturated"] is True
    assert doc["scenarios"]["test_saturated"]["requests"] > 0  # the merged record is still reported


CALIBRATED = """
import time
import pytest

@pytest.mark.certload(executor="constant-arrival-rate", rate=200, duration="3s", pre_allocated_vus=20,
                      max_vus=200, graceful_stop="5s")
def test_calibrated(certload, server, log):
    async def iteration(ctx):
        started = time.time()
        r = await ctx.request("GET", server + "/latency")
        log(k=ctx.iteration, t=started, injected=int(r.headers["x-injected-delay-ns"]))
    certload.run(iteration)
"""
TOLERANCE_MS = {50: 3.0, 95: 7.0, 99: 7.0}  # test_engine_accuracy.py's derivation


def _calibrated_run(pytester: pytest.Pytester, *args: str) -> tuple[dict, list[dict]]:
    for old in pytester.path.glob("seen-*.jsonl"):
        old.unlink()
    result = pytester.runpytest_subprocess(*args, "--certload-summary=s.json")
    result.assert_outcomes(passed=1)
    dump = json.loads((pytester.path / "controller.json").read_text())["test_cal.py::test_calibrated"]
    return dump, [e for e in seen(pytester) if e["test"] == "test_calibrated"]


def test_two_workers_at_2r_measure_what_one_process_measures_at_2r(project):
    """200 req/s for 3 s on /latency (log-normal delays, seeded): on one process, then on -n 2.

    The server starts afresh with the same seed in each session and draws one delay per request,
    so both runs are served the same 600 delays: the injected distribution is identical. Each run's
    merged service-time percentiles bracket the injected ones (the calibration tolerance of
    test_engine_accuracy.py), so the two runs agree within that tolerance; the combined rate a wall
    clock sees across both workers' starts is within 1 % of 200/s.
    """
    project.makepyfile(test_cal=CALIBRATED)
    single, single_seen = _calibrated_run(project)
    split, split_seen = _calibrated_run(project, "-n", "2")
    assert {e["worker"] for e in split_seen} == {"gw0", "gw1"}
    injected = {}
    for name, dump, events in (("single", single, single_seen), ("split", split, split_seen)):
        assert len(dump["service_ns"]) == len(events) == 600, name
        assert sorted(e["k"] for e in events) == list(range(600))
        starts = sorted(e["t"] for e in events)
        assert 599 / (starts[-1] - starts[0]) == pytest.approx(200.0, rel=0.01), name
        assert dump["meta"]["scenarios"]["test_calibrated"]["dropped_iterations"] == 0
        injected[name] = np.sort([e["injected"] for e in events]) / 1e6
        service = np.array(dump["service_ns"]) / 1e6
        for q, tolerance in TOLERANCE_MS.items():
            truth, measured = float(np.percentile(injected[name], q)), float(np.percentile(service, q))
            assert truth <= measured <= truth + tolerance, f"{name} p{q}: {truth:.2f} vs {measured:.2f} ms"
    assert np.array_equal(injected["single"], injected["split"])  # the same 600 delays were served
    for q, tolerance in TOLERANCE_MS.items():
        a = float(np.percentile(single["service_ns"], q)) / 1e6
        b = float(np.percentile(split["service_ns"], q)) / 1e6
        assert abs(a - b) <= tolerance, f"p{q}: one process {a:.2f} ms, two workers {b:.2f} ms"
    assert set(summary(project)["scenarios"]) == {"test_calibrated"}


def _worker_record(rng: random.Random, worker: str, index: int, count: int) -> PhaseVerdict:
    """A worker's record as plugin.Certload builds it: samples recorded, verdicts on its share."""
    recorder = Recorder()
    for _ in range(rng.randrange(1, 3000)):
        status = rng.choice(["200", "200", "200", "500"])
        tags = tagset({"scenario": "s", "status": status})
        recorder.add_trend("http_req_duration", tags, int(rng.lognormvariate(15, 1.2)))
        recorder.add_rate("http_req_failed", tags, status == "500")
        recorder.add_counter("http_reqs", tags)
    meta = {"scenarios": {"s": {"started_at": 1000.0 + rng.random(), "ended_at": 1003.0 + rng.random()}}}
    meta[META_KEY] = {"phase": 1, "index": index, "count": count, "worker": worker, "asserted": True}
    result = recorder.samples(meta)
    thresholds = parse_thresholds(
        {"http_req_duration": ["p(99)<1", "p(90)<100000"], "http_req_failed": ["rate<0.3"]}
    ).scoped("s")
    info = ScenarioVerdict("s", {"executor": "constant-arrival-rate"}, "constant-arrival-rate", 10.0, None)
    info.verdicts = evaluate(thresholds, result, 3.0)
    return PhaseVerdict(nodeid="t.py::test_s", samples=result, duration_s=3.0, scenarios=[info])


@pytest.mark.parametrize("seed", range(6))
def test_merged_percentiles_equal_pooled_percentiles_exactly(seed):
    """Randomised shares, serialised as a worker sends them and merged as the controller does."""
    rng = random.Random(seed)
    count = rng.randrange(2, 6)
    records = [_worker_record(rng, f"gw{i}", i, count) for i in range(count)]
    wire = {r.samples.meta[META_KEY]["worker"]: [json.loads(json.dumps(r.to_dict()))] for r in records}
    (merged,) = merge_worker_phases(wire)
    pooled = np.concatenate([r.samples.select_trend("http_req_duration") for r in records])
    stats = merged.samples.trend_stats("http_req_duration", {"scenario": "s"})
    assert stats["count"] == pooled.size
    for key, q in (("med", 50), ("p(90)", 90), ("p(95)", 95), ("p(99)", 99), ("p(99.9)", 99.9)):
        assert stats[key] == float(np.percentile(pooled.astype(np.float64) / 1e6, q))
    assert stats["max"] == pooled.max() / 1e6 and stats["min"] == pooled.min() / 1e6
    fails = sum(r.samples.select_rate("http_req_failed")[0] for r in records)
    assert merged.samples.select_rate("http_req_failed") == (fails, pooled.size)
    # the thresholds are judged again, on the pooled samples (not an average of the workers' verdicts)
    p99 = next(v for v in merged.scenarios[0].verdicts if v.expression == "p(99)<1")
    assert p99.observed == stats["p(99)"] and p99.count == pooled.size
    rate = next(v for v in merged.scenarios[0].verdicts if v.expression == "rate<0.3")
    assert rate.observed == fails / pooled.size
    doc = build_summary([merged], run_duration_s=4.0, machine={}, stack=None)
    assert doc["metrics"]["http_req_duration{scenario:s}"]["values"]["p(99)"] == stats["p(99)"]
    assert list(doc["scenarios"]) == ["s"]


def test_other_dist_modes_keep_whole_scenarios_on_one_worker(project):
    """--dist loadfile: xdist's own scheduler, no split (each load test runs whole on one worker)."""
    project.makepyfile(test_split=SPLIT_SUITE)
    result = project.runpytest_subprocess("-n", "2", "--dist", "loadfile", "--certload-summary=s.json")
    result.assert_outcomes(passed=6, failed=1)
    arrivals = [e for e in seen(project) if e["test"] == "test_arrivals"]
    assert len({e["worker"] for e in arrivals}) == 1 and len(arrivals) == 40
    result.stdout.fnmatch_lines(["*http_reqs{scenario:test_breached}: count>=21*"])


def test_explicit_tx_popen_specs_split_too(project):
    """``--tx 2*popen//python=...`` (generators on this host, a chosen interpreter): split as -n 2."""
    project.makepyfile(test_split=SPLIT_SUITE)
    result = project.runpytest_subprocess(
        "--tx", f"2*popen//python={sys.executable}", "--dist", "load", "--certload-summary=s.json"
    )
    result.assert_outcomes(passed=6, failed=1)
    arrivals = [e for e in seen(project) if e["test"] == "test_arrivals"]
    assert {e["worker"] for e in arrivals} == {"gw0", "gw1"} and len(arrivals) == 40


def test_tx_socket_generators_split_too(project, tmp_path):
    """Two ``--tx socket=HOST:PORT`` generators (execnet socket servers; here both on loopback, in
    the project directory, as a remote host would be with the project checked out there)."""
    import socket as socketlib

    from pytest_certload.stack.ports import free_port
    from pytest_certload.stack.process import ManagedProcess

    project.makepyfile(test_split=SPLIT_SUITE)
    servers, specs = [], []
    try:
        for i in range(2):
            port = free_port()
            argv = [sys.executable, "-m", "execnet.script.socketserver", f"127.0.0.1:{port}"]
            proc = ManagedProcess(f"execnet-{i}", argv, tmp_path / f"execnet-{i}.log", cwd=project.path)
            servers.append(proc.start())

            def listening(port: int = port) -> bool:
                with socketlib.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True

            proc.wait_ready(listening, timeout=15, what="listening")
            specs += ["--tx", f"socket=127.0.0.1:{port}//id=gw{i}//chdir={project.path}"]
        result = project.runpytest_subprocess(*specs, "--dist", "load", "--certload-summary=s.json")
    finally:
        for proc in servers:
            proc.stop()
    result.assert_outcomes(passed=6, failed=1)
    arrivals = [e for e in seen(project) if e["test"] == "test_arrivals"]
    assert {e["worker"] for e in arrivals} == {"gw0", "gw1"} and len(arrivals) == 40
    assert summary(project)["scenarios"]["test_arrivals"]["requests"] == 40


WHOLE_AND_UNMARKED_SUITE = """
import pytest

@pytest.mark.certload(executor="constant-arrival-rate", rate=20, duration="1s", pre_allocated_vus=2,
                      split=False)
def test_whole(certload, server, log):
    async def iteration(ctx):
        log(k=ctx.iteration)
        await ctx.request("GET", server + "/fast")
    result = certload.run(iteration)
    assert result.samples.select_counter("http_reqs") == 20  # all of it, on one worker

def test_unmarked_run_many(certload, server, log):
    async def iteration(ctx):
        log(k=ctx.iteration)
        await ctx.request("GET", server + "/fast")
    opts = {"executor": "constant-arrival-rate", "rate": 20, "duration": "1s", "pre_allocated_vus": 2}
    result = certload.run_many({"a": (iteration, opts)})
    # the test body sees the merged phase: every worker's share
    assert result.samples.select_counter("http_reqs", {"scenario": "a"}) == 20
"""


def test_split_false_runs_whole_on_one_worker_and_unmarked_load_tests_split(project):
    project.makepyfile(test_whole=WHOLE_AND_UNMARKED_SUITE)
    result = project.runpytest_subprocess(
        "-n", "2", "--certload-summary=s.json", "--certload-barrier-timeout=60"
    )
    result.assert_outcomes(passed=2)
    events = seen(project)
    whole = [e for e in events if e["test"] == "test_whole"]
    assert len({e["worker"] for e in whole}) == 1 and sorted(e["k"] for e in whole) == list(range(20))
    unmarked = [e for e in events if e["test"] == "test_unmarked_run_many"]
    assert {e["worker"] for e in unmarked} == {"gw0", "gw1"}  # split, not run whole on one worker
    assert sorted(e["k"] for e in unmarked) == list(range(20))  # each arrival once
